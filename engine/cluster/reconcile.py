"""The reconcile loop: the only code that starts, counts, replaces and stops replicas (service.py asks it).

Other threads post requests (``grow``, ``drain``) and wait on a Future; the loop never waits for a replica itself:
every Ray call it makes is checked with ``ray.wait(..., timeout=0)`` in a later round. Each round (``poll_s``):

- requests: scale up (``target`` + 1 per replica asked for) or drain one replica (``target`` - 1);
- starts in progress: placed by Ray within ``place_timeout_s``, then ready (the engine answers health) within
  ``ready_timeout_s``, or failed: everything the start created (its actor, and with it its engine) is killed; a
  start someone asked for answers them with the error (and ``target`` drops back), a replacement is tried again
  after ``retry_s`` (doubling up to a minute);
- running replicas: their health (stats for /status) and their actors' liveness; a death takes the replica out of
  the router and the placement and hands its avatars to a mover (mover.py, its own thread); without
  ``replace_dead`` the target drops by one;
- retiring replicas (drained): stopped gracefully, killed once stopped or past the wait;
- ``target`` minus running and starting replicas: that many starts (a replacement once the avatars of the death
  are moved, or 30 s after it: moves first).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.cluster.mover import Mover
from engine.cluster.placement import Moved, Placement, ReplicaInfo
from engine.cluster.replica import EngineReplica
from engine.cluster.router import Router

if TYPE_CHECKING:
    from engine.cluster.service import ClusterConfig

log = logging.getLogger(__name__)

ALIVE_WAIT_S = 10.0  # an actor that does not answer `alive` this long is busy, not dead (Ray says when it dies)
STOP_WAIT_S = 30.0
MAX_RETRY_S = 60.0
MOVES_FIRST_S = 30.0


class ClusterStartError(RuntimeError):
    """A replica the caller asked for could not be placed or started (everything it created is gone again)."""


@dataclass
class Handle:
    info: ReplicaInfo
    actor: Any
    alive_ref: Any = None  # the `alive` call in flight, and since when
    alive_since: float = 0.0
    health: Future[dict[str, Any]] | None = None  # the `health` call in flight (stats for /status)


@dataclass
class Starting:
    id: str
    actor: Any
    placed: Any  # ref of `node`: answered once Ray has placed and built the actor
    ready: Any  # ref of `wait_ready`
    since: float
    waiter: Future[str] | None  # someone asked for this replica (start, add_replica): they get its id or the error
    is_placed: bool = False


@dataclass
class Retiring:
    actor: Any
    stopped: Any  # ref of `stop`
    deadline: float


def kill(actor: Any) -> None:
    """End a replica's actor (its engine stops itself when its actor goes); nothing when it is gone already."""
    import ray

    with contextlib.suppress(Exception):
        ray.kill(actor, no_restart=True)


class Reconciler:
    def __init__(self, config: ClusterConfig, placement: Placement, router: Router, mover: Mover) -> None:
        self.config, self.placement, self.router, self.mover = config, placement, router, mover
        self.target = 0  # replicas kept running
        self.started = 0  # starts ever made (ids r1, r2, ...)
        self._handles: dict[str, Handle] = {}
        self._starting: dict[str, Starting] = {}
        self._draining: dict[str, Handle] = {}
        self._retiring: dict[str, Retiring] = {}
        self._drains: list[Future[list[str]]] = []
        self._waiters: list[Future[str]] = []
        self._retry_at, self._retry_s = 0.0, config.retry_s
        self._died_at = 0.0
        self._requests: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._token = uuid.uuid4().hex[:6]
        self._numbers = itertools.count(1)
        self._thread = threading.Thread(target=self._run, name="cluster-reconcile", daemon=True)

    # -- any thread --

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def actor_name(self, replica: str) -> str:
        """The Ray actor name of ``replica`` (``ray list actors`` shows it; ``ray.get_actor`` finds it)."""
        return f"liveportrait-{self._token}-{replica}"

    def grow(self, count: int) -> list[Future[str]]:
        """Ask for ``count`` replicas more; each Future gets its replica's id once ready, or the error."""
        waiters = [Future[str]() for _ in range(count)]
        self._post(lambda: self._grow(waiters))
        return waiters

    def drain(self, replica: str) -> Future[list[str]]:
        """Ask to drain ``replica`` (its avatars move, then it stops); the Future gets the avatars moved."""
        done: Future[list[str]] = Future()
        self._post(lambda: self._drain(replica, done))
        return done

    def stop(self) -> None:
        """End the loop, then stop every replica it created (gracefully, then killed), started or not."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        import ray

        running = [*self._handles.values(), *self._draining.values()]
        refs = [h.actor.stop.remote() for h in running]
        with contextlib.suppress(Exception):  # a dead actor: nothing to stop
            ray.wait(refs, num_returns=len(refs), timeout=STOP_WAIT_S)
        actors = [h.actor for h in running] + [s.actor for s in self._starting.values()] + \
            [r.actor for r in self._retiring.values()]
        for actor in actors:  # a start still waiting to be placed is cancelled by this too
            kill(actor)
        waiters = [*self._waiters, *(s.waiter for s in self._starting.values() if s.waiter is not None)]
        for waiter in [*waiters, *self._drains]:
            if not waiter.done():
                waiter.set_exception(ClusterStartError("the cluster is stopping"))
        for table in (self._handles, self._draining, self._starting, self._retiring):
            table.clear()
        self._waiters.clear()

    def _post(self, request: Callable[[], None]) -> None:
        self._requests.put(request)
        self._wake.set()

    # -- the loop's thread --

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._round()
            except Exception:  # a bug costs one round, never the loop
                log.exception("reconcile round failed")
            self._wake.wait(self.config.poll_s)
            self._wake.clear()

    def _round(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                break
            request()
        self._check_starts()
        self._check_running()
        self._check_retiring()
        missing = self.target - len(self._handles) - len(self._starting)
        if missing > 0 and time.monotonic() >= self._retry_at and not self._stopping.is_set():
            for _ in range(missing):
                if not self._waiters and self._moves_first():
                    break
                self._launch()

    def _moves_first(self) -> bool:
        """A replacement waits while avatars move (up to MOVES_FIRST_S after a death): a starting engine takes
        the CPU the moved avatars' preparation needs, and a replica that is not ready cannot take them anyway."""
        return self.mover.busy() and time.monotonic() - self._died_at < MOVES_FIRST_S

    def _grow(self, waiters: list[Future[str]]) -> None:
        self.target += len(waiters)
        self._waiters.extend(waiters)
        self._retry_at = 0.0  # asked for now: no back-off

    def _drain(self, replica: str, done: Future[list[str]]) -> None:
        handle = self._handles.pop(replica, None)
        if handle is None:
            done.set_exception(KeyError(f"no running replica {replica}"))
            return
        self.target -= 1
        self._draining[replica] = handle
        self._drains.append(done)
        moved = self.placement.drain(replica)
        self.mover.start(moved, replica, drain=True,
                         done=lambda _homes: self._post(lambda: self._drained(replica, moved, done)))

    def _drained(self, replica: str, moved: list[Moved], done: Future[list[str]]) -> None:
        handle = self._draining.pop(replica)
        self.placement.remove_replica(replica)
        self.router.remove_replica(replica, "stopped")
        try:
            self._retiring[replica] = Retiring(handle.actor, handle.actor.stop.remote(),
                                               time.monotonic() + STOP_WAIT_S)
        except Exception:  # dead already
            kill(handle.actor)
        self._drains.remove(done)
        done.set_result([m.avatar for m in moved])

    def _launch(self) -> None:
        import ray

        rid = f"r{next(self._numbers)}"
        self.started += 1
        actor = ray.remote(EngineReplica).options(
            name=self.actor_name(rid), num_cpus=self.config.cpus,
            num_gpus=self.config.gpus_per_replica, resources=dict(self.config.resources), max_restarts=0,
            scheduling_strategy="SPREAD",
        ).remote(rid, list(self.config.engine_args), dict(self.config.engine_env))
        placed = actor.node.remote()  # answered first: an actor runs its calls in order
        ready = actor.wait_ready.remote(self.config.ready_timeout_s)
        waiter = self._waiters.pop(0) if self._waiters else None
        self._starting[rid] = Starting(rid, actor, placed, ready, time.monotonic(), waiter)
        log.info("starting replica %s", rid)

    def _check_starts(self) -> None:
        import ray

        for start in list(self._starting.values()):
            try:
                if not start.is_placed:
                    if ray.wait([start.placed], timeout=0)[0]:
                        ray.get(start.placed)
                        start.is_placed = True
                    elif time.monotonic() - start.since > self.config.place_timeout_s:
                        raise ClusterStartError(self._unplaced(start))
                if start.is_placed and ray.wait([start.ready], timeout=0)[0]:
                    self._ready(start, ray.get(start.ready))
            except Exception as exc:
                self._failed(start, exc)

    def _unplaced(self, start: Starting) -> str:
        import ray

        free = ray.available_resources()
        return (f"Ray did not place replica {start.id} (asking {self.config.cpus:g} CPU and "
                f"{self.config.gpus_per_replica:g} GPU) within {self.config.place_timeout_s:g} s; free now: "
                f"{free.get('CPU', 0):g} CPUs, {free.get('GPU', 0):g} GPUs")

    def _ready(self, start: Starting, info: dict[str, Any]) -> None:
        del self._starting[start.id]
        replica = ReplicaInfo(start.id, info["node"], info["pid"], info["command_addr"], info["frame_addr"],
                              actor_pid=info["actor_pid"])
        self._handles[start.id] = Handle(replica, start.actor)
        self.router.add_replica(start.id, replica.command_addr, replica.frame_addr)
        self.placement.add_replica(replica)
        self._retry_s = self.config.retry_s
        log.info("replica %s ready on node %s (%s)", start.id, info["node_ip"], replica.command_addr)
        if start.waiter is not None:
            start.waiter.set_result(start.id)

    def _failed(self, start: Starting, exc: Exception) -> None:
        """Undo everything this start created; tell whoever asked, or try again later (a replacement)."""
        del self._starting[start.id]
        kill(start.actor)
        if start.waiter is not None:
            log.error("replica %s did not start: %s", start.id, exc)
            self.target -= 1  # the caller hears it; nobody retries behind their back
            start.waiter.set_exception(ClusterStartError(f"replica {start.id} did not start: {exc}"))
            return
        log.error("replacement replica %s did not start (again in %.0f s): %s", start.id, self._retry_s, exc)
        self._retry_at = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, MAX_RETRY_S)

    def _check_running(self) -> None:
        import ray

        now = time.monotonic()
        for handle in list(self._handles.values()):
            if handle.health is not None and handle.health.done():
                with contextlib.suppress(Exception):  # no answer this time: the last stats stay
                    handle.info.take_health(handle.health.result(timeout=0))
                handle.health = None
            if handle.health is None:
                handle.health = self.router.call(handle.info.id, {"cmd": "health"}, timeout_s=5.0)
            if handle.alive_ref is None:
                handle.alive_ref, handle.alive_since = handle.actor.alive.remote(), now
                continue
            if not ray.wait([handle.alive_ref], timeout=0)[0]:
                if now - handle.alive_since > ALIVE_WAIT_S:
                    log.warning("replica %s has not answered `alive` for %.0f s", handle.info.id,
                                now - handle.alive_since)
                continue
            try:
                alive = bool(ray.get(handle.alive_ref))
            except Exception:  # RayActorError and kin: the actor is gone
                alive = False
            handle.alive_ref = None
            if not alive:
                self._lost(handle)

    def _check_retiring(self) -> None:
        import ray

        for rid, retiring in list(self._retiring.items()):
            if ray.wait([retiring.stopped], timeout=0)[0] or time.monotonic() > retiring.deadline:
                del self._retiring[rid]
                kill(retiring.actor)

    def _lost(self, handle: Handle) -> None:
        rid = handle.info.id
        del self._handles[rid]
        moved = self.placement.remove_replica(rid)
        self.router.remove_replica(rid, "died")
        kill(handle.actor)
        self._died_at = time.monotonic()
        if not self.config.replace_dead:
            self.target -= 1
        log.warning("replica %s died holding %d avatar(s); placing them again", rid, len(moved))
        self.mover.start(moved, rid, drain=False)
