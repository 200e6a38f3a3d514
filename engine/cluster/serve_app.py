"""The RayService entry point (deploy/rayservice.yaml): a Ray Serve application of one deployment, one replica,
that is the cluster's control plane: it runs the router and the reconcile loop (engine/cluster/service.py) and the
HTTP bridge, pinned to the head node (custom resource ``liveportrait-front``) so its ports are the head pod's.

Serve is used here for what KubeRay's RayService gives a Kubernetes user (apply one manifest, zero-downtime
upgrades of the whole Ray cluster, health checks), not for routing: commands go through our ZMQ router and the
engine replicas are Ray Core actors (docs/scaling.md says why). Settings come from LP_CLUSTER_* variables of the
manifest's runtime_env; the bridge connects to the command and frame addresses configured there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from ray import serve

from engine.cluster.service import ClusterConfig, ClusterService, local_addr

DEFAULT_COMMAND_ADDR = "tcp://0.0.0.0:5555"
DEFAULT_FRAME_ADDR = "tcp://0.0.0.0:5556"


def config_from(env: Mapping[str, str]) -> ClusterConfig:
    """The cluster's settings from LP_CLUSTER_* variables (the manifest's runtime_env)."""
    cpus = env.get("LP_CLUSTER_CPUS_PER_REPLICA")
    return ClusterConfig(
        command_addr=env.get("LP_CLUSTER_COMMAND_ADDR", DEFAULT_COMMAND_ADDR),
        frame_addr=env.get("LP_CLUSTER_FRAME_ADDR", DEFAULT_FRAME_ADDR) or None,
        replicas=int(env.get("LP_CLUSTER_REPLICAS", "1")),
        gpus_per_replica=float(env.get("LP_CLUSTER_GPUS_PER_REPLICA", "1")),
        cpus_per_replica=float(cpus) if cpus else None)


def bridge_command(config: ClusterConfig, port: str) -> list[str]:
    """The HTTP bridge, pointed at the router's command address and the frame relay, as configured."""
    frames = config.frame_addr or DEFAULT_FRAME_ADDR
    return [sys.executable, "-m", "bridge", "--host", "0.0.0.0", "--port", port,
            "--engine-addr", local_addr(config.command_addr), "--frame-addr", local_addr(frames)]


@serve.deployment(num_replicas=1, max_ongoing_requests=8, health_check_period_s=10,
                  ray_actor_options={"num_cpus": 0.5, "resources": {"liveportrait-front": 1}})
class ClusterFront:
    def __init__(self) -> None:
        config = config_from(os.environ)
        self.service = ClusterService(config)
        self.service.start()
        self.bridge = subprocess.Popen(bridge_command(config, os.environ.get("LP_CLUSTER_HTTP_PORT", "8081")))

    def check_health(self) -> None:
        """Serve restarts this replica (and so the control plane) when the bridge died, the router's or the reconcile
        loop's thread stopped, or no engine replica runs."""
        if self.bridge.poll() is not None:
            raise RuntimeError(f"the HTTP bridge exited with {self.bridge.returncode}")
        control = self.service.health()
        if not control["ok"]:
            raise RuntimeError(f"the cluster's control plane is unhealthy: {control}")

    async def __call__(self, _request: Any) -> dict[str, Any]:
        """Serve's own HTTP route (port 8000, /cluster): the cluster's status, as /status carries it."""
        return self.service.status()

    def __del__(self) -> None:
        if getattr(self, "bridge", None) is not None and self.bridge.poll() is None:
            self.bridge.terminate()
        if getattr(self, "service", None) is not None:
            self.service.stop()


app = ClusterFront.bind()
