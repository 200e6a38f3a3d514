"""Issue 17's and 23's "done when", on a real Ray cluster of three nodes (tests/cluster/conftest.py): three replicas,
nine avatars spread over them, every command reaching the replica that holds its avatar, one SUB for every avatar's
frames, the seed's HTTP contract through the cluster; and its faults: a replica added (exactly one, with
replacement on), a replica killed, two killed in a row, a replica drained, a bad reply to the router, a start that
fails part way.

Every test starts from the ``nine`` fixture (or needs nothing of the shared cluster), so they pass in any order.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import ray

from engine.avatars import avatar_id
from engine.client import ClusterFrameSubscriber, EngineClient, Frame, FrameSubscriber
from engine.cluster.placement import ReplicaInfo
from engine.cluster.service import ClusterConfig, ClusterService, ClusterStartError
from engine.errors import EngineError
from tests.cluster.conftest import SLOT, SLOTS, client, engine_env, homes
from tests.cluster.peers import BadReplica
from tests.service.conftest import BridgeProcess, free_port

STREAM_FPS = 2.0
FAILOVER_BOUND_S = 10.0  # the bound: a killed replica's avatars stream again on others within 10 s
NOTICE_BOUND_S = 3.0  # a death is noticed within a round or two of the loop (0.5 s each), moves or not


def frames_until(sub: ClusterFrameSubscriber, wanted: set[str], timeout_s: float,
                 accept: Callable[[Frame], bool] = lambda f: True) -> dict[str, Frame]:
    """The first accepted frame of each wanted avatar, or as many as came within the timeout."""
    seen: dict[str, Frame] = {}
    deadline = time.monotonic() + timeout_s
    while wanted - set(seen) and time.monotonic() < deadline:
        frame = sub.recv(timeout_ms=500)
        if frame is not None and frame.avatar in wanted and frame.avatar not in seen and accept(frame):
            seen[frame.avatar] = frame
    return seen


def stream_all(cluster: ClusterService, avatars: list[str]) -> None:
    with client(cluster) as c:
        for aid in avatars:
            assert c.stream(aid, STREAM_FPS).fps == STREAM_FPS


def test_nine_avatars_spread_over_three_replicas(cluster: ClusterService, nine: list[str]) -> None:
    placed = homes(cluster)
    assert set(placed) == set(nine)
    assert sorted(Counter(placed.values()).values()) == [3, 3, 3]
    nodes = {r["node"] for r in cluster.status()["replicas"]}
    assert len(nodes) == 3, "Ray spreads the three replicas over the three nodes"


def test_commands_reach_the_replica_that_holds_the_avatar(cluster: ClusterService, nine: list[str]) -> None:
    placed = homes(cluster)
    before = dict(cluster.router.routed)
    with client(cluster) as c:
        for aid in placed:
            for i in range(100):  # each would answer unknown_avatar on a replica that does not hold it
                if i % 2:
                    c.set_expression(aid, "happy", intensity=(i % 10) / 10)
                else:
                    c.set_controls(aid, {"jawOpen": (i % 7) / 7})
    sent = {rid: cluster.router.routed[rid] - before.get(rid, 0) for rid in set(placed.values())}
    assert sent == {rid: 300 for rid in sent}, sent
    for replica in cluster.status()["replicas"]:  # and the replicas themselves say where each avatar lives
        with EngineClient(replica["command_addr"], timeout_ms=10_000, retries=0) as direct:
            resident = set(direct.list_avatars().avatars)
        assert set(replica["avatars"]) <= resident
        assert not (set(placed) - set(replica["avatars"])) & resident


def test_the_clusters_avatar_list_has_every_replicas_turns(cluster: ClusterService, nine: list[str]) -> None:
    """list_avatars and health are answered by one replica; the turns of the avatars the others hold come from
    their last health poll (every poll_s, 0.5 s here), so the whole cluster's turns show within a few seconds."""
    want = {aid: ("listening", "thinking")[i % 2] for i, aid in enumerate(nine)}
    assert len({homes(cluster)[aid] for aid in nine}) == 3  # spread: no single replica knows them all
    with client(cluster) as c:
        try:
            for aid, state in want.items():
                assert c.set_turn(aid, state, transition_ms=0).turn == state
            deadline, seen = time.monotonic() + 15.0, {}
            while time.monotonic() < deadline:
                seen = {aid: c.list_avatars().turns.get(aid) for aid in nine}
                if seen == want:
                    break
                time.sleep(0.5)
            assert seen == want, seen
            assert {aid: c.health().turns.get(aid) for aid in nine} == want
        finally:
            for aid in nine:
                c.set_turn(aid, "idle", transition_ms=0)


def test_one_sub_receives_every_avatars_frames(cluster: ClusterService, nine: list[str]) -> None:
    stream_all(cluster, nine)
    with ClusterFrameSubscriber(cluster.config.command_addr) as sub:
        assert sub.addrs == {r["frame_addr"] for r in cluster.status()["replicas"]}
        seen = frames_until(sub, set(nine), 60)
    assert set(seen) == set(nine)
    assert all(f.jpeg[:2] == b"\xff\xd8" for f in seen.values())
    with FrameSubscriber(cluster.config.frame_addr or "") as relay:  # the relay: one address for simple clients
        frame = relay.recv(timeout_ms=30_000)
        assert frame is not None and frame.avatar in nine, "the frame relay forwards the replicas' frames"


def test_http_contract_through_the_cluster(cluster: ClusterService, nine: list[str], cluster_bridge: BridgeProcess,
                                           portraits: list[bytes]) -> None:
    health = httpx.get(cluster_bridge.url + "/health")
    assert health.status_code == 200 and health.content == b'{"status": "ok"}'
    assert health.headers["content-type"] == "application/json"
    expressions = httpx.get(cluster_bridge.url + "/expressions")
    assert expressions.content == (b'{"expressions": ["neutral", "happy", "sad", "surprised"], '
                                   b'"intensities": {"min": 0.0, "max": 1.0}}')
    rendered = httpx.post(cluster_bridge.url + "/api/render", timeout=60,
                          files={"source_image": ("photo", portraits[0], "image/jpeg")},
                          data={"expression": "happy", "intensity": "0.8"})
    assert rendered.status_code == 200 and rendered.headers["content-type"] == "image/jpeg"
    home = next(r for r in cluster.status()["replicas"] if homes(cluster)[avatar_id(portraits[0])] == r["id"])
    with EngineClient(home["command_addr"], timeout_ms=60_000, retries=0) as direct:  # the same bytes, direct
        assert direct.render(image=portraits[0], expression="happy", intensity=0.8).jpeg == rendered.content
    status = httpx.get(cluster_bridge.url + "/status").json()
    replicas = status["cluster"]["replicas"]
    assert status["cluster"]["command_addr"] == cluster.config.command_addr and len(replicas) == 3
    assert status["cluster"]["control"] == {"ok": True, "router": True, "reconcile": True, "replicas": 3,
                                            "target": 3}
    for replica in replicas:
        assert {"id", "node", "pid", "command_addr", "frame_addr", "avatars", "streams", "frames"} <= set(replica)
    assert sum(len(r["avatars"]) for r in replicas) == 9
    assert httpx.get(cluster_bridge.url + "/metrics").status_code == 200
    assert httpx.get(cluster_bridge.url + "/preview").status_code == 200


def test_a_bad_reply_leaves_the_router_alive(cluster: ClusterService, nine: list[str],
                                             portraits: list[bytes]) -> None:
    bad = BadReplica()
    cluster.router.add_replica("bad", bad.addr, f"tcp://127.0.0.1:{free_port()}")
    cluster.placement.add_replica(ReplicaInfo("bad", "nowhere", 0, bad.addr, ""))
    aid = ""
    try:
        with client(cluster) as c:
            photo = portraits[1][:-2] + b"\x00\xff\xd9"
            aid = avatar_id(photo)
            c.set_source(photo)  # to the least loaded: the bad one, which says ok
            assert homes(cluster)[aid] == "bad"
            cluster.placement.drain("bad")  # no other command goes there by chance
            assert c.call("stream", avatar=aid, fps=5.0)["fps"] == "fast"  # passed on; its callback read a text rate
        with pytest.raises(EngineError, match="not a msgpack map"):  # an unreadable reply: a typed error, at once
            cluster.router.call("bad", {"cmd": "health"}).result(timeout=5)
        assert cluster.router.alive()
        assert cluster.health() == {"ok": True, "router": True, "reconcile": True, "replicas": 4, "target": 3}
        with client(cluster) as c:  # and it still routes
            assert c.health().status == "ok"
            c.set_expression(nine[0], "happy")
    finally:
        cluster.router.remove_replica("bad", "removed by the test")
        cluster.placement.remove_replica("bad")
        cluster.placement.forget(aid)
        bad.close()


def test_an_added_replica_is_exactly_one_and_takes_new_avatars(cluster: ClusterService, nine: list[str],
                                                               portraits: list[bytes]) -> None:
    assert cluster.config.replace_dead  # the path where the loop could start a second one for the "missing" one
    started = cluster.reconciler.started
    new = cluster.add_replica()
    time.sleep(4 * cluster.config.poll_s)  # rounds in which a second start would show
    assert cluster.reconciler.started == started + 1
    assert len(cluster.placement.live()) == cluster.target == 4
    assert new in {r["id"] for r in cluster.status()["replicas"]}
    with client(cluster) as c:
        aid = c.set_source(portraits[0][:-2] + b"\x00\xff\xd9").avatar  # a tenth photo: the same JPEG, a new hash
    assert homes(cluster)[aid] == new


def look_of(cluster: ClusterService, avatars: set[str]) -> None:
    with client(cluster) as c:  # a look that must survive the move
        for aid in avatars:
            c.set_expression(aid, "surprised", 0.7)
            c.set_controls(aid, {"jawOpen": 0.4, "headYaw": 8.0}, transition_ms=0)
            c.set_idle(aid, False)


def test_killed_replica_avatars_stream_again_elsewhere(cluster: ClusterService, nine: list[str],
                                                       cluster_bridge: BridgeProcess) -> None:
    stream_all(cluster, nine)
    placed = homes(cluster)
    victim = next(r for r in cluster.status()["replicas"] if len(r["avatars"]) == 3)
    lost = set(victim["avatars"])
    look_of(cluster, lost)
    started = cluster.reconciler.started
    time.sleep(0.5)  # past the transitions: every frame from here on shows the look
    with ClusterFrameSubscriber(cluster.config.command_addr, refresh_s=0.5) as sub:
        before = frames_until(sub, lost, 30)
        epochs = {aid: frame.epoch for aid, frame in before.items()}
        killed = time.monotonic()
        os.kill(victim["actor_pid"], signal.SIGKILL)  # the replica's Ray actor; its engine follows it
        seen = frames_until(sub, lost, 30, accept=lambda f: f.epoch == epochs[f.avatar] + 1)
        took = time.monotonic() - killed
        assert httpx.get(cluster_bridge.url + "/health").status_code == 200  # the contract answered throughout
        settled = frames_until(sub, lost, 10, accept=lambda f: f.epoch == epochs[f.avatar] + 1 and f.seq >= 1)
    assert set(seen) == lost, f"moved in time: {sorted(seen)} of {sorted(lost)}"
    assert took < FAILOVER_BOUND_S, f"{took:.1f} s from the kill to the last moved avatar's first frame"
    assert set(before) == set(settled) == lost
    for aid, frame in settled.items():  # the same face on the new replica (look.py), not the neutral one
        old = before[aid].header
        assert (old["expression"], old["intensity"]) == ("surprised", 0.7), old
        assert (frame.header["expression"], frame.header["intensity"]) == ("surprised", 0.7), frame.header
        assert abs(old["jawOpen"] - 0.4) < 0.02 and abs(frame.header["jawOpen"] - 0.4) < 0.02, (old, frame.header)
    now = homes(cluster)
    assert victim["id"] not in {r["id"] for r in cluster.status()["replicas"]}
    assert set(now) == set(placed) and all(now[a] != victim["id"] for a in lost)
    with client(cluster) as c:  # commands reach them on their new replica
        for aid in lost:
            c.set_expression(aid, "sad")
    deadline = time.monotonic() + 60  # and one replacement (replace_dead), not more
    while len(cluster.placement.live()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(cluster.placement.live()) == 3 and cluster.reconciler.started == started + 1


def test_two_deaths_in_a_row_bring_both_sets_back(cluster: ClusterService, nine: list[str]) -> None:
    first, second = cluster.status()["replicas"][:2]
    sets = {first["id"]: set(first["avatars"]), second["id"]: set(second["avatars"])}
    lost = sets[first["id"]] | sets[second["id"]]
    stream_all(cluster, sorted(lost))
    epochs = {aid: cluster.placement.where(aid).epoch for aid in lost}
    arrivals: list[tuple[float, str, int]] = []  # (when, avatar, epoch) of every frame of a lost avatar
    with ClusterFrameSubscriber(cluster.config.command_addr, refresh_s=0.5) as sub:
        assert set(frames_until(sub, lost, 30)) == lost  # all streaming before
        kills = {}
        for replica in (first, second):  # the second dies while the first one's avatars are being moved
            kills[replica["id"]] = time.monotonic()
            os.kill(replica["actor_pid"], signal.SIGKILL)
            time.sleep(1.0)
        deadline = time.monotonic() + 2 * FAILOVER_BOUND_S
        noticed = None  # when the loop took the second replica out, while the first one's avatars were moving
        while time.monotonic() < deadline:
            if noticed is None and second["id"] not in {r.id for r in cluster.placement.live()}:
                noticed = time.monotonic()
            frame = sub.recv(timeout_ms=200)
            if frame is not None and frame.avatar in lost:
                arrivals.append((time.monotonic(), frame.avatar, frame.epoch))
            now = {aid: cluster.placement.where(aid) for aid in lost}
            current = {(a, e) for _, a, e in arrivals}
            if all(p is not None and p.replica is not None and (a, p.epoch) in current for a, p in now.items()):
                break
    assert noticed is not None and noticed - kills[second["id"]] < NOTICE_BOUND_S, "the moves held up the loop"
    final = {aid: cluster.placement.where(aid) for aid in lost}
    assert all(p is not None and p.replica is not None for p in final.values()), final
    for rid, avatars in sets.items():
        for aid in avatars:
            back = min((t for t, a, e in arrivals if a == aid and e == final[aid].epoch), default=None)
            assert back is not None, f"avatar {aid} of {rid}: no frame at its epoch {final[aid].epoch}"
            assert final[aid].epoch > epochs[aid]
            assert back - kills[rid] < FAILOVER_BOUND_S, f"{aid} of {rid}: back {back - kills[rid]:.1f} s after"
    with client(cluster) as c:
        for aid in lost:
            c.set_controls(aid, {"jawOpen": 0.2})


def test_scale_down_drains_before_the_replica_stops(cluster: ClusterService, nine: list[str]) -> None:
    stream_all(cluster, nine)
    before = homes(cluster)
    victim = max(cluster.status()["replicas"], key=lambda r: len(r["avatars"]))
    held = set(victim["avatars"])
    epochs = {aid: cluster.placement.where(aid).epoch for aid in held}
    with ClusterFrameSubscriber(cluster.config.command_addr, refresh_s=0.5) as sub:
        moved = cluster.remove_replica(victim["id"])
        seen = frames_until(sub, held, 30, accept=lambda f: f.epoch == epochs[f.avatar] + 1)
    assert set(moved) == held and set(seen) == held
    after = homes(cluster)
    assert set(after) == set(before) and victim["id"] not in after.values()
    assert cluster.target == 2 and len(cluster.placement.live()) == 2
    with client(cluster) as c:
        for aid in held:
            c.set_controls(aid, {"jawOpen": 0.5})


def engines_marked(mark: str) -> list[int]:
    """Engine processes started with LP_TEST_MARK=mark in their environment."""
    out = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and f"LP_TEST_MARK={mark}".encode() in Path(f"/proc/{pid}/environ").read_bytes():
                out.append(int(pid))
        except OSError:
            pass
    return out


def test_a_start_that_fails_for_the_third_replica_leaves_no_actor_behind(ray_nodes: object, tmp_path: Path) -> None:
    @ray.remote(num_cpus=0, resources={SLOT: 1})
    class Hog:  # someone else's actor holding one of the three slots: only two replicas can be placed
        def ping(self) -> int:
            return 1

    hog = Hog.remote()
    ray.get(hog.ping.remote(), timeout=60)
    mark = f"failed-start-{os.getpid()}"
    service = ClusterService(ClusterConfig(
        command_addr=f"tcp://127.0.0.1:{free_port()}", frame_addr=None, replicas=3, cpus_per_replica=0,
        resources={SLOT: 1}, engine_env={**engine_env(tmp_path), "LP_TEST_MARK": mark}, place_timeout_s=8))
    try:
        with pytest.raises(ClusterStartError, match="did not place replica r3"):
            service.start()  # the capacity check passes (3 slots exist); Ray cannot place the third now
        for rid in ("r1", "r2", "r3"):
            with pytest.raises(ValueError):
                ray.get_actor(service.reconciler.actor_name(rid))
        deadline = time.monotonic() + 30
        while (ray.available_resources().get(SLOT, 0) < SLOTS - 1 or engines_marked(mark)) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray.available_resources().get(SLOT, 0) == SLOTS - 1, "the started replicas gave their slots back"
        assert engines_marked(mark) == [], "no engine of the failed start is left running"
        assert not service.router.alive()
    finally:
        ray.kill(hog)
