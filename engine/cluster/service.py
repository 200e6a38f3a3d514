"""The cluster: replicas on Ray, the router in front, and the supervisor thread that keeps the two in step.

Ray does what it is good at: it places each replica's actor on a node with the GPUs it asks for, starts it, and
tells us when it dies. What is ours is the table of which avatar lives where (placement.py) and what happens to an
avatar when its replica goes (here):

- a replica dies (its actor or its engine process): the router stops sending to it, requests in flight there are
  answered ``busy``; each avatar it held is prepared again on the least-loaded live replica from the photo the
  cluster kept, given the look it had (expression, controls, idle: look.py), and its stream resumes there with
  ``epoch`` raised by one. Until then commands for it answer ``busy`` (the bridge: 503 with Retry-After). A
  replacement replica is started when ``replace_dead``.
- a replica is added: it takes new avatars at once (it is the least loaded).
- a replica is removed (scale down): it drains: no new avatars; each avatar is prepared on another replica, its
  stream started there (epoch + 1) and only then stopped on the draining one; then the engine stops gracefully.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from engine.cluster.placement import Moved, Placement, ReplicaInfo
from engine.cluster.replica import READY_TIMEOUT_S, EngineReplica
from engine.cluster.router import Router

log = logging.getLogger(__name__)

MOVE_TIMEOUT_S = 60.0  # preparing one avatar again (decode, detect, prepare) on a loaded machine


@dataclass
class ClusterConfig:
    command_addr: str = "tcp://127.0.0.1:5555"
    frame_addr: str | None = "tcp://127.0.0.1:5556"  # the frame relay; None: no relay (subscribe to each replica)
    replicas: int = 1
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0
    engine_args: list[str] = field(default_factory=list)
    engine_env: dict[str, str] = field(default_factory=dict)
    poll_s: float = 0.5  # the supervisor's round: liveness and stats of every replica
    replace_dead: bool = True  # start a new replica for each that died, to keep ``replicas`` running
    source_store_mb: float = 256.0  # photos kept to prepare avatars again after a fault


@dataclass
class Handle:
    info: ReplicaInfo
    actor: Any


class ClusterService:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.placement = Placement(int(config.source_store_mb * (1 << 20)))
        self.router = Router(config.command_addr, self.placement, config.frame_addr)
        self.router.cluster_status = self.status
        self.target = config.replicas
        self._handles: dict[str, Handle] = {}
        self._lock = threading.Lock()
        self._token = uuid.uuid4().hex[:6]
        self._numbers = itertools.count(1)
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="cluster-supervisor", daemon=True)
        self._starting = 0
        self.failovers: list[dict[str, Any]] = []  # one entry per replica lost: what moved, how long it took

    # -- life cycle --

    def start(self) -> None:
        """Bind the router, start the replicas (in parallel), then supervise. Ray must be initialised."""
        self.router.start()
        self._start_replicas(self.config.replicas)
        self._supervisor.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor.is_alive():
            self._supervisor.join(timeout=10)
        import ray

        handles = list(self._handles.values())
        refs = [h.actor.stop.remote() for h in handles]
        with contextlib.suppress(Exception):  # a dead actor: nothing to stop
            ray.wait(refs, num_returns=len(refs), timeout=30)
        for handle in handles:
            ray.kill(handle.actor, no_restart=True)
        self._handles.clear()
        self.router.stop()

    def status(self) -> dict[str, Any]:
        """``/status``'s ``cluster``: the command address and every replica."""
        replicas = self.placement.status()
        streams: dict[str, Any] = {}
        for info in self.placement.live():
            streams.update(info.stream_table)
        return {"command_addr": self.config.command_addr, "frame_addr": self.config.frame_addr,
                "replicas": replicas, "streams": streams, "target": self.target}

    # -- scaling --

    def add_replica(self) -> str:
        """Start one replica; it takes new avatars once it answers. Its id."""
        self.target += 1
        return self._start_replicas(1)[0]

    def remove_replica(self, replica: str) -> list[str]:
        """Scale down by one: drain ``replica`` (its avatars and streams move), then stop it. The avatars moved."""
        self.target -= 1
        moved = self.placement.drain(replica)
        self._move(moved, exclude=replica, old=replica)
        with self._lock:
            handle = self._handles.pop(replica, None)
        self.placement.remove_replica(replica)
        self.router.remove_replica(replica, "stopped")
        if handle is not None:
            import ray

            try:
                ray.get(handle.actor.stop.remote(), timeout=30)
            except Exception as exc:
                log.warning("replica %s did not stop cleanly: %s", replica, exc)
            ray.kill(handle.actor, no_restart=True)
        return [m.avatar for m in moved]

    def _start_replicas(self, count: int) -> list[str]:
        import ray

        remote = ray.remote(EngineReplica)
        started = []
        for _ in range(count):
            rid = f"r{next(self._numbers)}"
            actor = remote.options(name=f"liveportrait-{self._token}-{rid}", num_cpus=self.config.cpus_per_replica,
                                   num_gpus=self.config.gpus_per_replica, max_restarts=0,
                                   scheduling_strategy="SPREAD").remote(rid, list(self.config.engine_args),
                                                                        dict(self.config.engine_env))
            started.append((rid, actor, actor.wait_ready.remote()))
        ids = []
        for rid, actor, ready in started:
            info = ray.get(ready, timeout=READY_TIMEOUT_S + 30)
            replica = ReplicaInfo(rid, info["node"], info["pid"], info["command_addr"], info["frame_addr"],
                                  actor_pid=info["actor_pid"])
            with self._lock:
                self._handles[rid] = Handle(replica, actor)
            self.router.add_replica(rid, replica.command_addr, replica.frame_addr)
            self.placement.add_replica(replica)
            log.info("replica %s ready on node %s (%s)", rid, info["node_ip"], replica.command_addr)
            ids.append(rid)
        return ids

    # -- the supervisor --

    def _supervise(self) -> None:
        import ray

        while not self._stopping.wait(self.config.poll_s):
            with self._lock:
                handles = list(self._handles.values())
            checks = [(h, h.actor.alive.remote(), self.router.call(h.info.id, {"cmd": "health"}, timeout_s=5.0))
                      for h in handles]
            for handle, alive_ref, health in checks:
                try:
                    alive = ray.get(alive_ref, timeout=10)
                except ray.exceptions.GetTimeoutError:
                    alive = True  # busy, not known dead; the engine's own health says more
                except Exception:  # RayActorError and kin: the actor is gone
                    alive = False
                if not alive:
                    self._lost(handle)
                    continue
                self._take_stats(handle.info, health)
            missing = self.target - len(self._handles) - self._starting
            if self.config.replace_dead and missing > 0 and not self._stopping.is_set():
                self._starting += missing
                threading.Thread(target=self._replace, args=(missing,), daemon=True).start()

    def _replace(self, count: int) -> None:
        try:
            self._start_replicas(count)
        except Exception as exc:
            log.error("could not start %d replacement replica(s): %s", count, exc)
        finally:
            self._starting -= count

    def _take_stats(self, info: ReplicaInfo, health: Future[dict[str, Any]]) -> None:
        try:
            reply = health.result(timeout=5.0)
        except (FutureTimeout, Exception):
            return
        info.stream_table = dict(reply.get("streams") or {})
        info.streams = len(info.stream_table)
        info.frames = int((reply.get("frames") or {}).get("published", 0))

    def _lost(self, handle: Handle) -> None:
        rid = handle.info.id
        died = time.monotonic()
        with self._lock:
            self._handles.pop(rid, None)
        moved = self.placement.remove_replica(rid)
        self.router.remove_replica(rid, "died")
        log.warning("replica %s died holding %d avatar(s); placing them again", rid, len(moved))
        import ray

        ray.kill(handle.actor, no_restart=True)
        placed = self._move(moved, exclude=rid, old=None)
        self.failovers.append({"replica": rid, "avatars": [m.avatar for m in moved], "placed": placed,
                               "seconds": time.monotonic() - died})

    def _move(self, moved: list[Moved], exclude: str, old: str | None) -> dict[str, str]:
        """Prepare each avatar on another replica, point its commands there, resume its stream (epoch + 1), and
        stop it on ``old`` (a draining replica). Avatars with no photo kept, or no replica to take them, are
        forgotten (a client's next set_source places them again). Returns avatar -> new replica."""
        prepared: list[tuple[Moved, str, Future[dict[str, Any]]]] = []
        for m in moved:
            target = self.placement.least_loaded(exclude=exclude)
            if target is None or m.image is None:
                log.error("avatar %s cannot be placed again (%s)", m.avatar,
                          "no replica left" if target is None else "its photo is no longer kept")
                self.placement.forget(m.avatar)
                continue
            self.placement.moving(m.avatar, target)
            prepared.append((m, target, self.router.call(target, {"cmd": "set_source", "image": m.image},
                                                         MOVE_TIMEOUT_S)))
        homes: dict[str, str] = {}
        for m, target, future in prepared:
            try:
                future.result(timeout=MOVE_TIMEOUT_S + 5)
            except Exception as exc:
                log.error("avatar %s could not be prepared on %s: %s", m.avatar, target, exc)
                self.placement.forget(m.avatar)
                continue
            epoch = m.epoch + 1
            # the same face there: queued on the replica's DEALER before place() sends clients' commands there too
            look = self.placement.look(m.avatar)
            for message in look.messages(m.avatar) if look else []:
                self.router.call(target, message)
            self.placement.place(m.avatar, target, epoch, m.fps)
            homes[m.avatar] = target
            if m.fps > 0:
                self.router.call(target, {"cmd": "stream", "avatar": m.avatar, "fps": m.fps, "epoch": epoch})
                if old is not None:
                    self.router.call(old, {"cmd": "stream", "avatar": m.avatar, "fps": 0})
        return homes
