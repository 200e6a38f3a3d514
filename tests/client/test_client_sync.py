"""engine.client.EngineClient against a real engine: every helper, typed replies, typed errors, frames, clock."""

from __future__ import annotations

import signal
import time

import pytest

from engine.client import (
    AvatarReply,
    ClusterFrameSubscriber,
    EngineClient,
    EngineReplyError,
    EngineUnavailable,
    FrameSubscriber,
    HealthReply,
    Keyframe,
    RenderReply,
)
from engine.codec import decode_jpeg
from engine.errors import ConfigError
from engine.security import CurveClientKeys
from tests.service.conftest import DATA, EngineProcess


def test_every_helper_against_a_real_engine(engine: EngineProcess) -> None:
    portrait = (DATA / "s1.jpg").read_bytes()  # not the bundled default portrait, which cannot be dropped
    with EngineClient(engine.command_addr, timeout_ms=30_000) as client:
        health = client.health()
        assert isinstance(health, HealthReply) and health.ready and health.renderer == "offline"
        assert health.raw["status"] == "ok" and health.default_avatar
        assert client.expressions().expressions == ["neutral", "happy", "sad", "surprised"]
        source = client.set_source(portrait)
        assert len(source.avatar) == 16 and source.faces >= 1 and source.width > 0
        avatar = source.avatar
        assert avatar in client.list_avatars().avatars
        reply = client.set_expression(avatar, "happy", 0.8, transition_ms=0)
        assert isinstance(reply, AvatarReply) and reply.avatar == avatar and reply.now is not None
        now = reply.now
        client.set_controls(avatar, {"jawOpen": 0.4}, transition_ms=50)
        client.set_controls(avatar, keyframes=[Keyframe(now + 1.0, {"jawOpen": 0.6}), {"t": now + 1.1,
                                                                                       "controls": {"jawOpen": 0.1}}])
        client.clear(avatar)
        client.set_idle(avatar, False, seed=3)
        frame = client.render(avatar=avatar, expression="surprised", intensity=0.5, output="crop")
        assert isinstance(frame, RenderReply) and frame.header["expression"] == "surprised"
        assert decode_jpeg(frame.jpeg).shape == (512, 512, 3)
        assert client.drop_source(avatar).avatar == avatar
        assert avatar not in client.list_avatars().avatars


def test_errors_carry_the_wire_code(engine: EngineProcess) -> None:
    with EngineClient(engine.command_addr) as client:
        with pytest.raises(EngineReplyError) as err:
            client.call("no_such_command")
        assert err.value.code == "unknown_command" and err.value.message
        with pytest.raises(EngineReplyError) as err:
            client.set_expression("0123456789abcdef", "happy")
        assert err.value.code == "unknown_avatar"
        with pytest.raises(EngineReplyError) as err:
            client.render(image=b"GIF89a not an image")
        assert err.value.code == "invalid_image"
        assert client.health().ready  # the socket is still usable after errors


def test_stream_and_subscribe(engine: EngineProcess) -> None:
    with EngineClient(engine.command_addr) as client:
        avatar = client.health().default_avatar
        with client.subscribe(engine.frame_addr, avatar) as frames:
            stream = client.stream(avatar, fps=20)
            assert stream.topic == f"frame.{avatar}" and stream.fps == 20.0
            try:
                got = [frames.recv(timeout_ms=5000) for _ in range(4)]
            finally:
                client.stream(avatar, fps=0)
        assert all(f is not None for f in got)
        seqs = [f.seq for f in got]  # type: ignore[union-attr]
        assert seqs == sorted(seqs) and len(set(seqs)) == 4
        first = got[0]
        assert first is not None and first.avatar == avatar and decode_jpeg(first.jpeg).ndim == 3
        assert got[-1].ts > first.ts  # type: ignore[union-attr]


def test_a_cluster_subscriber_follows_the_list_and_never_waits_on_a_slow_health(engine: EngineProcess,
                                                                                  peer_factory) -> None:
    """The replica list is read on a background thread: frames flow from the list read, and a silent ``health``
    (here a peer that never answers, 1.5 s timeout, a refresh due every 50 ms) costs ``recv`` nothing."""
    with EngineClient(engine.command_addr) as client:
        avatar = client.health().default_avatar
        with ClusterFrameSubscriber(engine.command_addr, avatar, refresh_s=0.05,
                                    fallback_addr=engine.frame_addr) as sub:  # one engine: no `cluster` in health
            assert sub.addrs == {engine.frame_addr}
            client.stream(avatar, fps=20)
            try:
                frame = sub.recv(timeout_ms=5000)
            finally:
                client.stream(avatar, fps=0)
        assert frame is not None and frame.avatar == avatar
    silent = peer_factory(silent=True)
    with ClusterFrameSubscriber(silent.addr, refresh_s=0.05, health_timeout_ms=1500) as sub:
        assert sub.addrs == set()  # the first read missed: nothing to follow yet
        for _ in range(3):  # a refresh is due (and a health in flight) during each of these
            started = time.monotonic()
            assert sub.recv(timeout_ms=200) is None
            assert time.monotonic() - started < 1.0, "recv waited on the health call"


def test_clock_offset_is_near_zero_on_one_machine(engine: EngineProcess) -> None:
    # engine and test share the system's monotonic clock, so the true offset is 0: the estimate is within its rtt
    with EngineClient(engine.command_addr) as client:
        offset = client.clock_offset(samples=5)
        assert offset.rtt > 0
        assert abs(offset.offset) <= offset.rtt / 2 + 0.002
        assert abs(offset.to_engine(10.0) - 10.0 - offset.offset) < 1e-9


def test_lazy_pirate_reopens_the_socket_and_retries(peer_factory) -> None:
    peer = peer_factory(drop_first=1)
    with EngineClient(peer.addr, timeout_ms=300, retries=1) as client:
        assert client.call("health")["echo"] == "health"
        assert peer.seen == 2
        assert client.call("expressions")["echo"] == "expressions"  # the fresh socket carries on


class Interrupted(Exception):
    """What the test's signal handler raises inside the client's poll (as Ctrl-C raises KeyboardInterrupt)."""


def test_a_request_interrupted_in_its_poll_leaves_the_client_usable(peer_factory) -> None:
    """A signal handler that raises while the REQ socket waits for its reply: the socket is left between send and
    receive, so the client must drop it, or every later request fails with EFSM."""
    peer = peer_factory(hold=("render",))  # never answers render; answers health

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with EngineClient(peer.addr, timeout_ms=10_000, retries=0) as client:
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(Interrupted):
                client.call("render")  # interrupted in poll, well before its 10 s timeout
            assert peer.held == 1  # the request was sent: the socket was mid-request
            assert client.call("health")["echo"] == "health"
            assert client.call("health")["echo"] == "health"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_no_engine_raises_unavailable_after_the_retries(peer_factory) -> None:
    peer = peer_factory(silent=True)
    with EngineClient(peer.addr, timeout_ms=200, retries=2) as client:
        started = time.monotonic()
        with pytest.raises(EngineUnavailable):
            client.health()
        assert time.monotonic() - started >= 0.6 and peer.seen == 3


def test_curve_keys(peer_factory, tmp_path) -> None:
    import zmq.auth

    server_public, server_secret = zmq.curve_keypair()
    peer = peer_factory(curve_secret=server_secret)
    with EngineClient(peer.addr, timeout_ms=2000, curve=CurveClientKeys.generate(server_public)) as client:
        assert client.call("health")["echo"] == "health"
    with EngineClient(peer.addr, timeout_ms=300, retries=0) as plain, pytest.raises(EngineUnavailable):
        plain.call("health")  # the CURVE server ignores an unauthenticated peer
    _, client_secret_file = zmq.auth.create_certificates(str(tmp_path), "client")
    server_file = tmp_path / "server.key"
    server_file.write_text(f'metadata\ncurve\n    public-key = "{server_public.decode()}"\n')
    keys = CurveClientKeys.from_env({"LP_CURVE_SERVER_KEY_FILE": str(server_file),
                               "LP_CURVE_CLIENT_SECRET_FILE": client_secret_file})
    assert keys is not None and keys.server_public == server_public
    with EngineClient(peer.addr, timeout_ms=2000, curve=keys) as client:
        assert client.call("health")["echo"] == "health"
    assert CurveClientKeys.from_env({}) is None
    z85 = CurveClientKeys.from_env({"LP_CURVE_SERVER_KEY": server_public.decode(),
                                    "LP_CURVE_CLIENT_SECRET_KEY": keys.keys.secret.decode()})
    assert z85 == keys  # a z85 key and its certificate file are the same keys
    with pytest.raises(ConfigError, match="half configured"):
        CurveClientKeys.from_env({"LP_CURVE_SERVER_KEY_FILE": str(server_file)})


def test_subscriber_recv_times_out(engine: EngineProcess) -> None:
    with FrameSubscriber(engine.frame_addr, "0000000000000000") as frames:
        assert frames.recv(timeout_ms=100) is None


def test_wait_ready(engine: EngineProcess, peer_factory) -> None:
    with EngineClient(engine.command_addr) as client:
        assert client.wait_ready(timeout_s=5).ready
    peer = peer_factory(silent=True)
    with EngineClient(peer.addr, retries=0) as client:
        started = time.monotonic()
        with pytest.raises(EngineUnavailable):
            client.wait_ready(timeout_s=0.8)
        assert time.monotonic() - started < 4.0  # gives up at its deadline
