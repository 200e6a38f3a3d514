"""The RayService entry point (deploy/rayservice.yaml): a Ray Serve application of one deployment, one replica,
that is the cluster's control plane: it runs the router and the reconcile loop (engine/cluster/service.py) and the
HTTP bridge, pinned to the head node (custom resource ``liveportrait-front``) so its ports are the head pod's.

Serve is used here for what KubeRay's RayService gives a Kubernetes user (apply one manifest, zero-downtime
upgrades of the whole Ray cluster, health checks), not for routing: commands go through our ZMQ router and the
engine replicas are Ray Core actors (docs/scaling.md says why). Settings come from LP_CLUSTER_* variables of the
manifest's runtime_env (front.py); the bridge connects to the command and frame addresses configured there.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from ray import serve

from engine.cluster.front import FRONT_CPUS, FRONT_RESOURCE, bridge_command, config_from, http_port
from engine.cluster.service import ClusterService


@serve.deployment(num_replicas=1, max_ongoing_requests=8, health_check_period_s=10,
                  ray_actor_options={"num_cpus": FRONT_CPUS, "resources": {FRONT_RESOURCE: 1}})
class ClusterFront:
    def __init__(self) -> None:
        config = config_from(os.environ)
        self.service = ClusterService(config)
        self.service.start()
        self.bridge = subprocess.Popen(bridge_command(config, http_port(os.environ)))

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
