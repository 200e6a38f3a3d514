"""The cluster: replicas on Ray, the router in front, the reconcile loop that owns the replicas, and the movers.

Ray does what it is good at: it places each replica's actor on a node with the CPUs and GPUs it asks for, starts
it, and tells us when it dies. What is ours is the table of which avatar lives where (placement.py), the one loop
that keeps the replicas as asked (reconcile.py), and what happens to an avatar when its replica goes (mover.py):

- a replica dies (its actor or its engine process): the router stops sending to it, requests in flight there are
  answered ``busy``; each avatar it held is prepared again on the least-loaded live replica from the photo the
  cluster kept, given the look it had (expression, controls, idle: look.py), and its stream resumes there with
  ``epoch`` raised by one. Until then commands for it answer ``busy`` (the bridge: 503 with Retry-After). A
  replacement replica is started when ``replace_dead``.
- a replica is added: it takes new avatars at once (it is the least loaded).
- a replica is removed (scale down): it drains: no new avatars; each avatar is prepared on another replica, its
  stream started there (epoch + 1) and only then stopped on the draining one; then the engine stops gracefully.

Starting the cluster (``start``) first checks that the replicas fit the Ray cluster at all (capacity.py: one line
naming what was asked, what is there and the flag to change), then waits for each to be ready; if one fails,
everything started is stopped and the error raised.
"""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, wait
from dataclasses import dataclass, field
from typing import Any, cast

from engine.cluster import capacity
from engine.cluster.mover import Mover
from engine.cluster.placement import Placement
from engine.cluster.reconcile import ClusterStartError, Reconciler
from engine.cluster.replica import READY_TIMEOUT_S
from engine.cluster.router import Router

__all__ = ["ClusterConfig", "ClusterService", "ClusterStartError", "local_addr"]


def local_addr(addr: str) -> str:
    """The address a process on this machine connects to for one bound here (0.0.0.0 or * -> 127.0.0.1)."""
    return addr.replace("0.0.0.0", "127.0.0.1").replace("//*:", "//127.0.0.1:")


@dataclass
class ClusterConfig:
    command_addr: str = "tcp://127.0.0.1:5555"
    frame_addr: str | None = "tcp://127.0.0.1:5556"  # the frame relay; None: no relay (subscribe to each replica)
    replicas: int = 1
    gpus_per_replica: float = 0.0
    cpus_per_replica: float | None = None  # None: capacity.default_cpus (half a CPU without a GPU, one with)
    resources: dict[str, float] = field(default_factory=dict)  # Ray custom resources per replica (a node group)
    engine_args: list[str] = field(default_factory=list)
    engine_env: dict[str, str] = field(default_factory=dict)
    poll_s: float = 0.5  # the reconcile loop's round: liveness and stats of every replica
    replace_dead: bool = True  # start a new replica for each that died, to keep ``replicas`` running
    source_store_mb: float = 256.0  # photos kept to prepare avatars again after a fault
    place_timeout_s: float = 60.0  # Ray must place a replica's actor within this (capacity taken by others)
    ready_timeout_s: float = READY_TIMEOUT_S
    retry_s: float = 5.0  # first pause before a failed replacement is tried again (doubling up to a minute)

    @property
    def cpus(self) -> float:
        """CPUs each replica asks Ray for."""
        if self.cpus_per_replica is not None:
            return self.cpus_per_replica
        return capacity.default_cpus(self.gpus_per_replica)

    @property
    def start_timeout_s(self) -> float:
        return self.place_timeout_s + self.ready_timeout_s + 30


class ClusterService:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.placement = Placement(int(config.source_store_mb * (1 << 20)))
        self.router = Router(config.command_addr, self.placement, config.frame_addr)
        self.router.cluster_status = self.status
        self.mover = Mover(self.placement, self.router)
        self.failovers = self.mover.failovers  # one entry per replica lost: what moved, how long it took
        self.reconciler = Reconciler(config, self.placement, self.router, self.mover)

    @property
    def target(self) -> int:
        return self.reconciler.target

    def start(self) -> None:
        """Check the replicas fit, bind the router, start the loop, wait until every replica is ready. Ray must be
        initialised. Raises ``capacity.CapacityError`` (nothing started) or ``ClusterStartError`` (all stopped)."""
        import ray

        capacity.check(capacity.Ask(self.config.replicas, self.config.cpus, self.config.gpus_per_replica,
                                    self.config.resources), capacity.ray_nodes(ray))
        self.router.start()
        waiters = self.reconciler.grow(self.config.replicas)
        self.reconciler.start()
        try:  # the first failure ends the wait: the others are stopped with it
            done, pending = wait(waiters, timeout=self.config.start_timeout_s, return_when=FIRST_EXCEPTION)
            for waiter in done:
                waiter.result()  # raises the failure
            if pending:
                raise TimeoutError(f"replicas not ready in {self.config.start_timeout_s:g} s")
        except Exception as exc:
            self.stop()
            raise ClusterStartError(f"the cluster did not start: {exc}") from exc

    def stop(self) -> None:
        """Stop the moves, the loop and every replica it created, then the router (what is in flight: busy)."""
        self.mover.halt()
        self.reconciler.stop()
        self.router.stop()
        self.mover.join()

    def add_replica(self, timeout_s: float | None = None) -> str:
        """One replica more; its id once it is ready. Raises ``ClusterStartError`` when it cannot start."""
        (waiter,) = self.reconciler.grow(1)
        return waiter.result(timeout=timeout_s if timeout_s is not None else self.config.start_timeout_s)

    def remove_replica(self, replica: str, timeout_s: float = 120.0) -> list[str]:
        """Scale down by one: drain ``replica`` (its avatars and streams move), then stop it. The avatars moved."""
        return self.reconciler.drain(replica).result(timeout=timeout_s)

    def health(self) -> dict[str, Any]:
        """The control plane's own liveness (the router's threads, the reconcile loop) and replicas vs target."""
        router, loop = self.router.alive(), self.reconciler.alive()
        live = len(self.placement.live())
        return {"ok": router and loop and live > 0, "router": router, "reconcile": loop, "replicas": live,
                "target": self.target}

    def status(self) -> dict[str, Any]:
        """``/status``'s ``cluster``: the command address, every replica, the control plane's health, and every
        stream and avatar turn as the replicas' last health replies gave them (a placed avatar's turn from its home)."""
        replicas = self.placement.status()
        home = {aid: str(r["id"]) for r in replicas for aid in cast(list[str], r["avatars"])}
        streams: dict[str, Any] = {}
        turns: dict[str, str] = {}
        for info in self.placement.live():
            streams.update(info.stream_table)
            turns.update({aid: turn for aid, turn in info.turn_table.items() if home.get(aid, info.id) == info.id})
        return {"command_addr": self.config.command_addr, "frame_addr": self.config.frame_addr,
                "replicas": replicas, "streams": streams, "turns": turns, "target": self.target,
                "control": self.health()}
