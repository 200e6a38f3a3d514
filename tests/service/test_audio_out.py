"""The speech audio on the PUB socket: a real engine, a real SUB socket on ``audio.<avatar>``, real espeak-ng speech.

What a subscriber needs to play the voice in sync with the frames: the PCM of each ``speak``/``append`` as sent,
stamped with the engine time its first sample is heard (the reply's ``start``, the frames' clock), and the cut of
a ``clear`` or of a replacing ``speak``.
"""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
import zmq

from engine.client import EngineClient
from engine.client import parse_audio as parse
from engine.constants import AUDIO_TOPIC
from tests.service.conftest import EngineProcess
from tests.service.test_speak import pcm_s16, sentence_wav  # noqa: F401 (the fixture)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def client(engine: EngineProcess) -> EngineClient:
    with EngineClient(engine.command_addr, timeout_ms=20_000, retries=0) as c:
        yield c


@pytest.fixture()
def sub(engine: EngineProcess, client: EngineClient) -> zmq.Socket:
    """A SUB on the default avatar's audio and frames (the slow joiner waited out with a probe cut)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    avatar = client.call("list_avatars")["default"]
    sock.subscribe(AUDIO_TOPIC + avatar.encode())
    sock.connect(engine.frame_addr)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # clear publishes a cut: once one arrives, the subscription is live
        client.call("clear", avatar=avatar)
        if sock.poll(200):
            drain(sock)
            break
    else:
        pytest.fail("no audio message reached the subscriber")
    yield sock
    sock.close(0)


def drain(sock: zmq.Socket, wait_ms: int = 0) -> list[list[bytes]]:
    out = []
    while sock.poll(wait_ms):
        out.append(sock.recv_multipart())
        wait_ms = 0
    return out


def recv(sock: zmq.Socket, n: int) -> list:
    got = []
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        if sock.poll(500):
            got.append(parse(sock.recv_multipart()))
    assert len(got) == n, got
    return got


def test_speak_publishes_its_pcm_at_the_engine_time_it_is_heard(sub, client, sentence_wav) -> None:  # noqa: F811
    avatar = client.call("list_avatars")["default"]
    reply = client.call("speak", avatar=avatar, audio=sentence_wav)
    cut, pcm = recv(sub, 2)
    assert cut.kind == "cut" and cut.ts <= reply["start"] + 1e-6  # a fresh utterance ends what was playing
    assert pcm.kind == "pcm" and pcm.avatar == avatar
    assert pcm.ts == pytest.approx(reply["start"], abs=1e-9)
    assert pcm.seq == cut.seq + 1
    raw, rate = pcm_s16(sentence_wav)
    assert pcm.sample_rate == rate
    sent = np.frombuffer(raw, "<i2").astype(np.int32)
    samples = np.frombuffer(pcm.pcm, "<i2")
    assert len(samples) == len(sent)
    assert np.abs(samples.astype(np.int32) - sent).max() <= 1  # the samples as sent (s16 -> float -> s16)
    assert pcm.duration == pytest.approx(reply["duration"], abs=1e-6)


def test_append_continues_at_the_end_and_clear_publishes_the_cut(sub, client, sentence_wav) -> None:  # noqa: F811
    avatar = client.call("list_avatars")["default"]
    first = client.call("speak", avatar=avatar, audio=sentence_wav)
    second = client.call("speak", avatar=avatar, audio=sentence_wav, append=True)
    cleared = client.call("clear", avatar=avatar)
    cut, a, b, end = recv(sub, 4)
    assert (cut.kind, a.kind, b.kind, end.kind) == ("cut", "pcm", "pcm", "cut")
    assert a.ts == pytest.approx(first["start"]) and b.ts == pytest.approx(second["start"])
    assert b.ts == pytest.approx(a.ts + a.duration, abs=1e-6)  # seamless: heard right after the first
    assert end.ts == pytest.approx(cleared["now"]) and a.ts <= end.ts < b.ts + b.duration


def test_audio_ts_and_frame_ts_share_the_engine_clock(engine: EngineProcess, sub, client,
                                                      sentence_wav) -> None:  # noqa: F811
    avatar = client.call("list_avatars")["default"]
    sub.subscribe(b"frame." + avatar.encode())
    client.call("stream", avatar=avatar, fps=10)
    try:
        frame_ts = None
        deadline = time.monotonic() + 20
        while frame_ts is None and time.monotonic() < deadline:
            if sub.poll(500):
                msg = sub.recv_multipart()
                if msg[0].startswith(b"frame."):
                    frame_ts = msgpack.unpackb(msg[1])["ts"]
        reply = client.call("speak", avatar=avatar, audio=sentence_wav)
        pcm = None
        deadline = time.monotonic() + 10
        while pcm is None and time.monotonic() < deadline:  # frames arrive in between
            if sub.poll(500):
                msg = sub.recv_multipart()
                if msg[0].startswith(AUDIO_TOPIC) and parse(msg).kind == "pcm":
                    pcm = parse(msg)
        assert pcm is not None
        assert frame_ts is not None
        assert 0 <= pcm.ts - frame_ts < 5.0  # the same clock: the speech starts just after a frame seen just before
        assert pcm.ts == pytest.approx(reply["start"])
    finally:
        client.call("stream", avatar=avatar, fps=0)
