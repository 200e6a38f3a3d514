"""Whether the replicas asked for can be placed at all, said in one line before anything waits on Ray.

Ray keeps an actor it cannot place pending forever; a cluster that asked for more CPUs or GPUs than its nodes have
would wait for it and then die with a timeout. Each replica needs its CPUs and GPUs on one node, so the count that
fits is summed per node. The check reads the nodes' totals (what could ever be placed), not what is free now:
capacity taken by someone else is waited for (up to ``ClusterConfig.place_timeout_s``), not refused here.

CPU-only replicas reserve half a CPU each by default (a 2-core machine holds four): a replica on the CPU is for
trying the cluster out, and its engine shares the cores like any process; a replica with a GPU reserves a whole CPU
beside it for its prep, encode and publish threads (docs/scaling.md, "Sizing").
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

CPU_ONLY_CPUS = 0.5
WITH_GPU_CPUS = 1.0
EPS = 1e-6


class CapacityError(RuntimeError):
    """The replicas asked for cannot be placed on this Ray cluster (the message says what to change)."""


def default_cpus(gpus_per_replica: float) -> float:
    return WITH_GPU_CPUS if gpus_per_replica > 0 else CPU_ONLY_CPUS


@dataclass
class Ask:
    replicas: int
    cpus: float
    gpus: float
    resources: dict[str, float] = field(default_factory=dict)  # Ray custom resources, per replica


def room(nodes: list[dict[str, float]], cpus: float, gpus: float, resources: dict[str, float] | None = None) -> int:
    """How many replicas of ``cpus``, ``gpus`` and ``resources`` each fit on these nodes (each on one node)."""
    need = {"CPU": cpus, "GPU": gpus, **(resources or {})}
    total = 0
    for node in nodes:
        per = [math.floor(node.get(name, 0.0) / amount + EPS) for name, amount in need.items() if amount > 0]
        total += min(per) if per else 1 << 20
    return total


def shortfall(ask: Ask, nodes: list[dict[str, float]]) -> str | None:
    """The one-line reason these replicas cannot be placed, or None when they fit."""
    fit = room(nodes, ask.cpus, ask.gpus, ask.resources)
    if fit >= ask.replicas:
        return None
    cpus = sum(n.get("CPU", 0.0) for n in nodes)
    gpus = sum(n.get("GPU", 0.0) for n in nodes)
    fix = []
    if ask.gpus > 0 and room(nodes, 0, ask.gpus) < ask.replicas:
        share = _largest(nodes, ask.replicas, "GPU")
        fix.append(f"--gpus-per-replica {share:g}" if share else "--gpus-per-replica 0 (or a node with GPUs)")
    if room(nodes, ask.cpus, 0) < ask.replicas:
        share = _largest(nodes, ask.replicas, "CPU")
        fix.append(f"--cpus-per-replica {share:g}" if share else "more CPUs (--num-cpus)")
    for name, amount in ask.resources.items():
        if room(nodes, 0, 0, {name: amount}) < ask.replicas:
            fix.append(f"nodes with more of the resource {name!r}")
    fewer = f", or --replicas {fit}" if fit else ""
    return (f"{ask.replicas} replica(s) asking {ask.cpus:g} CPU and {ask.gpus:g} GPU each need "
            f"{ask.replicas * ask.cpus:g} CPUs and {ask.replicas * ask.gpus:g} GPUs; this Ray cluster has "
            f"{cpus:g} CPUs and {gpus:g} GPUs on {len(nodes)} node(s), room for {fit}: pass "
            f"{' and '.join(fix)}{fewer}")


def _largest(nodes: list[dict[str, float]], replicas: int, name: str) -> float:
    """The largest share of ``name`` (in steps of 0.05) at which ``replicas`` fit; 0 when none does."""
    for hundredths in range(100, 0, -5):
        share = hundredths / 100
        if room(nodes, share if name == "CPU" else 0, share if name == "GPU" else 0) >= replicas:
            return share
    return 0.0


def local_nodes(num_cpus: int | None, num_gpus: int | None) -> list[dict[str, float]]:
    """The one node a local Ray instance will have (CPUs: Ray's default is every core here)."""
    return [{"CPU": float(num_cpus if num_cpus is not None else os.cpu_count() or 1),
             "GPU": float(num_gpus or 0)}]


def ray_nodes(ray: Any) -> list[dict[str, float]]:
    """The live nodes' total resources."""
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def check(ask: Ask, nodes: list[dict[str, float]]) -> None:
    reason = shortfall(ask, nodes)
    if reason is not None:
        raise CapacityError(reason)
