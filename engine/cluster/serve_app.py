"""The RayService entry point (deploy/rayservice.yaml): a Ray Serve application of one deployment, one replica,
that is the cluster's control plane: it runs the router and the supervisor (engine/cluster/service.py) and the
HTTP bridge, pinned to the head node (custom resource ``liveportrait-front``) so its ports are the head pod's.

Serve is used here for what KubeRay's RayService gives a Kubernetes user (apply one manifest, zero-downtime
upgrades of the whole Ray cluster, health checks), not for routing: commands go through our ZMQ router and the
engine replicas are Ray Core actors (docs/scaling.md says why). Settings come from LP_CLUSTER_* variables of the
manifest's runtime_env.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from ray import serve

from engine.cluster.service import ClusterConfig, ClusterService


@serve.deployment(num_replicas=1, max_ongoing_requests=8, health_check_period_s=10,
                  ray_actor_options={"num_cpus": 0.5, "resources": {"liveportrait-front": 1}})
class ClusterFront:
    def __init__(self) -> None:
        env = os.environ
        self.service = ClusterService(ClusterConfig(
            command_addr=env.get("LP_CLUSTER_COMMAND_ADDR", "tcp://0.0.0.0:5555"),
            frame_addr=env.get("LP_CLUSTER_FRAME_ADDR", "tcp://0.0.0.0:5556") or None,
            replicas=int(env.get("LP_CLUSTER_REPLICAS", "1")),
            gpus_per_replica=float(env.get("LP_CLUSTER_GPUS_PER_REPLICA", "1")),
            cpus_per_replica=float(env.get("LP_CLUSTER_CPUS_PER_REPLICA", "1"))))
        self.service.start()
        self.bridge = subprocess.Popen([sys.executable, "-m", "bridge", "--host", "0.0.0.0",
                                        "--port", env.get("LP_CLUSTER_HTTP_PORT", "8081"),
                                        "--engine-addr", "tcp://127.0.0.1:5555",
                                        "--frame-addr", "tcp://127.0.0.1:5556"])

    def check_health(self) -> None:
        """Serve restarts this replica (and so the control plane) when the bridge died or no engine replica runs."""
        if self.bridge.poll() is not None:
            raise RuntimeError(f"the HTTP bridge exited with {self.bridge.returncode}")
        if not self.service.placement.live():
            raise RuntimeError("no engine replica is running")

    async def __call__(self, _request: Any) -> dict[str, Any]:
        """Serve's own HTTP route (port 8000, /cluster): the cluster's status, as /status carries it."""
        return self.service.status()

    def __del__(self) -> None:
        if getattr(self, "bridge", None) is not None and self.bridge.poll() is None:
            self.bridge.terminate()
        if getattr(self, "service", None) is not None:
            self.service.stop()


app = ClusterFront.bind()
