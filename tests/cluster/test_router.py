"""The router alone, on real sockets, against a peer that never answers (no Ray needed): nothing a dead or wedged
replica does can hang a client, and the placement rules that keep avatars spread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from engine.client import EngineClient, EngineReplyError
from engine.cluster.placement import Placement, ReplicaInfo
from engine.cluster.router import Router
from tests.cluster.peers import FlakyReplica, SilentReplica
from tests.service.conftest import free_port


@pytest.fixture
def wedged() -> Iterator[tuple[Router, SilentReplica]]:
    peer = SilentReplica()
    placement = Placement()
    placement.add_replica(ReplicaInfo("a", "node", 1, peer.addr, f"tcp://127.0.0.1:{free_port()}"))
    router = Router(f"tcp://127.0.0.1:{free_port()}", placement, request_timeout_s=3.0)
    router.start()
    router.add_replica("a", peer.addr, placement.replicas["a"].frame_addr)
    yield router, peer
    router.stop()
    peer.close()


def ask(router: Router, message: dict, timeout_ms: int = 10_000) -> tuple[str, float]:
    started = time.monotonic()
    fields = dict(message)
    with EngineClient(router.command_addr, timeout_ms=timeout_ms, retries=0) as client, \
            pytest.raises(EngineReplyError) as err:
        client.call(fields.pop("cmd"), **fields)
    return err.value.code, time.monotonic() - started


def test_a_request_in_flight_on_a_dying_replica_gets_a_typed_error(wedged: tuple[Router, SilentReplica]) -> None:
    router, peer = wedged
    threading.Timer(0.5, lambda: router.remove_replica("a", "died")).start()
    code, took = ask(router, {"cmd": "expressions"})
    assert peer.received == 1
    assert code == "busy" and took < 2.5  # answered when the replica was declared dead, not at the deadline


def test_a_wedged_replica_cannot_hang_a_client(wedged: tuple[Router, SilentReplica]) -> None:
    router, _ = wedged
    code, took = ask(router, {"cmd": "expressions"})
    assert code == "busy" and 2.0 < took < 8.0  # the router's deadline (3 s), swept once a second


def test_no_replica_and_a_moving_avatar_answer_busy_at_once(wedged: tuple[Router, SilentReplica]) -> None:
    router, _ = wedged
    router.placement.home_for_upload("feedfacefeedface", b"photo")
    router.placement.confirm("feedfacefeedface", "a", ok=True)
    router.placement.remove_replica("a")  # its avatar has no home until the supervisor places it again
    code, took = ask(router, {"cmd": "set_expression", "avatar": "feedfacefeedface", "expression": "happy"})
    assert code == "busy" and took < 1.0
    code, took = ask(router, {"cmd": "health"})
    assert code == "busy" and took < 1.0


def test_placement_spreads_new_and_moved_avatars() -> None:
    placement = Placement()
    for rid in "abc":
        placement.add_replica(ReplicaInfo(rid, "n", 1, "", ""))
    homes = [placement.home_for_upload(f"{i:016x}", b"x") for i in range(6)]
    assert sorted(homes) == ["a", "a", "b", "b", "c", "c"]
    for i in range(6):
        placement.confirm(f"{i:016x}", homes[i], ok=True)
    placement.drain("c")
    assert placement.least_loaded() in ("a", "b")
    placement.add_replica(ReplicaInfo("d", "n", 1, "", ""))
    assert placement.home_for_upload("new-avatar-00000", b"y") == "d"  # a replica added takes new avatars
    moved = placement.remove_replica("a")
    assert {m.avatar for m in moved} == {f"{i:016x}" for i in range(6) if homes[i] == "a"}
    targets = []
    for m in moved:  # what the supervisor does: each counts where it is going, so they do not pile up
        target = placement.least_loaded(exclude="a")
        placement.moving(m.avatar, target)
        targets.append(target)
    assert len(set(targets)) == 2
    placement.confirm("new-avatar-00000", "d", ok=False)  # a failed upload is forgotten
    assert placement.where("new-avatar-00000") is None


def test_a_look_is_remembered_as_the_engine_applies_it_and_rebuilt_in_order() -> None:
    from engine import protocol as p
    from engine.cluster.look import Look

    def parsed(msg: dict) -> p.Request:
        return p.parse_request(p.pack({"v": 1, **msg}), 1 << 20)

    look = Look()
    look.apply(parsed({"cmd": "set_controls", "avatar": "a", "controls": {"jawOpen": 0.3, "headYaw": 5.0}}))
    look.apply(parsed({"cmd": "set_expression", "avatar": "a", "expression": "happy", "intensity": 0.5}))
    look.apply(parsed({"cmd": "set_controls", "avatar": "a", "controls": {"eyeBlinkLeft": 1.0}}))  # ARKit name
    look.apply(parsed({"cmd": "set_idle", "avatar": "a", "enabled": False, "seed": 3}))
    look.apply(parsed({"cmd": "speak", "avatar": "a", "audio": bytes(320), "format": "pcm_s16le",
                       "sample_rate": 16000}))  # a moment, not a look
    messages = look.messages("a")
    assert [m["cmd"] for m in messages] == ["set_expression", "set_controls", "set_idle"]
    assert messages[0] == {"cmd": "set_expression", "avatar": "a", "expression": "happy", "intensity": 0.5,
                           "transition_ms": 0}
    controls = messages[1]["controls"]
    assert "jawOpen" not in controls and controls["headYaw"] == 5.0  # the expression reset the face, not the head
    assert set(controls) - {"headYaw"}, controls  # the blink, under our own name
    assert messages[2] == {"cmd": "set_idle", "avatar": "a", "enabled": False, "seed": 3}
    for message in messages:  # each one the engine accepts as it stands
        parsed(message)

    placement = Placement()
    placement.add_replica(ReplicaInfo("r", "n", 1, "", ""))
    placement.home_for_upload("a", b"x")
    placement.confirm("a", "r", ok=True)
    placement.remember("a", parsed({"cmd": "set_expression", "avatar": "a", "expression": "sad"}))
    placement.remove_replica("r")
    assert not placement.place("a", "gone", 1, 25.0)  # a replica that went away meanwhile takes nothing
    placement.add_replica(ReplicaInfo("s", "n", 1, "", ""))
    assert placement.place("a", "s", 1, 25.0)  # moved: the look went with it
    assert placement.look("a").messages("a")[0]["expression"] == "sad"


def test_a_look_keeps_the_conversation_settings_and_the_stream_framing() -> None:
    """A moved avatar keeps its speech-motion gain, its turn (not `speaking`, which lasts only while its speech
    plays) and its stream's framing."""
    from engine import protocol as p
    from engine.cluster.look import Look

    def parsed(msg: dict) -> p.Request:
        return p.parse_request(p.pack({"v": 1, **msg}), 1 << 20)

    look = Look()
    assert look.stream_fields() == {}  # the full photo: the stream command as before
    look.apply(parsed({"cmd": "set_speech_motion", "avatar": "a", "speech_motion": 0.4}))
    look.apply(parsed({"cmd": "set_turn", "avatar": "a", "state": "thinking"}))
    look.apply(parsed({"cmd": "stream", "avatar": "a", "fps": 25, "framing": "head", "width": 512, "height": 512}))
    messages = look.messages("a")
    assert messages == [{"cmd": "set_speech_motion", "avatar": "a", "speech_motion": 0.4},
                        {"cmd": "set_turn", "avatar": "a", "state": "thinking", "transition_ms": 0}]
    assert look.stream_fields() == {"framing": "head", "width": 512, "height": 512}
    for message in [*messages, {"cmd": "stream", "avatar": "a", "fps": 25, **look.stream_fields()}]:
        parsed(message)  # each one the engine accepts as it stands
    look.apply(parsed({"cmd": "set_turn", "avatar": "a", "state": "speaking"}))
    assert [m["cmd"] for m in look.copy().messages("a")] == ["set_speech_motion"]


@pytest.mark.parametrize("bad", [-1, True, 1.5, "1", 2**31])
def test_stream_epoch_is_checked(bad: object) -> None:
    from engine import protocol as p
    from engine.errors import BadRequest

    good = p.parse_request(p.pack({"v": 1, "cmd": "stream", "avatar": "a1", "fps": 5, "epoch": 3}), 1 << 20)
    assert good == p.Stream("a1", 5.0, 3)
    assert p.parse_request(p.pack({"v": 1, "cmd": "stream", "avatar": "a1"}), 1 << 20).epoch == 0
    with pytest.raises(BadRequest, match="epoch"):
        p.parse_request(p.pack({"v": 1, "cmd": "stream", "avatar": "a1", "epoch": bad}), 1 << 20)


def test_health_says_when_the_router_has_stopped() -> None:
    from engine.cluster.service import ClusterConfig, ClusterService

    service = ClusterService(ClusterConfig(command_addr=f"tcp://127.0.0.1:{free_port()}",
                                           frame_addr=f"tcp://127.0.0.1:{free_port()}"))
    service.router.start()
    assert service.health()["router"] is True
    assert service.health()["reconcile"] is False and service.health()["ok"] is False  # no loop, no replica
    service.router.relay.stop()  # the relay's thread is part of the router's liveness
    assert service.health()["router"] is False
    service.router.stop()
    assert service.status()["control"]["router"] is False


def test_capacity_counts_per_node_and_names_what_to_change() -> None:
    from engine.cluster import capacity as c

    assert c.default_cpus(0) == 0.5 and c.default_cpus(1) == 1.0
    assert c.room([{"CPU": 2}], 0.5, 0) == 4
    assert c.room([{"CPU": 8, "GPU": 1}, {"CPU": 8, "GPU": 1}], 1, 0.6) == 2  # 0.6 GPU: one per node, not three
    assert c.shortfall(c.Ask(3, 0.5, 0), [{"CPU": 2}]) is None  # a newcomer's --replicas 3 on two cores fits
    reason = c.shortfall(c.Ask(4, 1, 0.6), [{"CPU": 8, "GPU": 1}, {"CPU": 8, "GPU": 1}])
    assert reason is not None and "\n" not in reason
    for part in ("4 replica(s) asking 1 CPU and 0.6 GPU", "need 4 CPUs and 2.4 GPUs", "has 16 CPUs and 2 GPUs",
                 "room for 2", "--gpus-per-replica 0.5", "--replicas 2"):
        assert part in reason, reason
    reason = c.shortfall(c.Ask(1, 1, 1), [{"CPU": 4}])
    assert reason is not None and "room for 0" in reason and "--gpus-per-replica 0" in reason
    assert "resource 'slot'" in (c.shortfall(c.Ask(2, 0, 0, {"slot": 1}), [{"CPU": 2, "slot": 1}]) or "")


def test_a_failed_replay_is_logged_and_sent_again(caplog: pytest.LogCaptureFixture) -> None:
    from engine import protocol as p
    from engine.cluster.mover import Mover

    peer = FlakyReplica()
    placement = Placement()
    placement.add_replica(ReplicaInfo("old", "n", 1, "", ""))
    placement.home_for_upload("a1", b"photo")
    placement.confirm("a1", "old", ok=True)
    placement.remember("a1", p.parse_request(p.pack({"v": 1, "cmd": "set_expression", "avatar": "a1",
                                                     "expression": "sad"}), 1 << 20))
    placement.set_stream("a1", 5.0)
    router = Router(f"tcp://127.0.0.1:{free_port()}", placement)
    router.start()
    try:
        placement.add_replica(ReplicaInfo("new", "n", 2, peer.addr, ""))
        router.add_replica("new", peer.addr, f"tcp://127.0.0.1:{free_port()}")
        (moved,) = placement.remove_replica("old")
        with caplog.at_level("WARNING", logger="engine.cluster.mover"):
            assert Mover(placement, router).move_one(moved, "old", drain=False) == "new"
        assert peer.received == ["set_source", "set_expression", "set_expression", "stream"]
        assert "set_expression for avatar a1 on replica new failed (try 1 of 3)" in caplog.text
        placed = placement.where("a1")
        assert placed is not None and (placed.replica, placed.epoch, placed.fps) == ("new", 1, 5.0)
    finally:
        router.stop()
        peer.close()
