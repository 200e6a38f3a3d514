"""What the RayService's control plane (serve_app.py) runs, from its settings, without importing Ray Serve: the
cluster's config from the manifest's LP_CLUSTER_* variables and the bridge's command line, pointed at the
configured addresses. tests/deploy reads the manifest through these, as the pod will.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from engine.cluster.service import ClusterConfig, local_addr

DEFAULT_COMMAND_ADDR = "tcp://0.0.0.0:5555"
DEFAULT_FRAME_ADDR = "tcp://0.0.0.0:5556"
DEFAULT_HTTP_PORT = "8081"
FRONT_RESOURCE = "liveportrait-front"  # the head node's custom resource: the control plane runs there
FRONT_CPUS = 0.5


def config_from(env: Mapping[str, str]) -> ClusterConfig:
    """The cluster's settings from LP_CLUSTER_* variables (the manifest's runtime_env)."""
    cpus = env.get("LP_CLUSTER_CPUS_PER_REPLICA")
    return ClusterConfig(
        command_addr=env.get("LP_CLUSTER_COMMAND_ADDR", DEFAULT_COMMAND_ADDR),
        frame_addr=env.get("LP_CLUSTER_FRAME_ADDR", DEFAULT_FRAME_ADDR) or None,
        replicas=int(env.get("LP_CLUSTER_REPLICAS", "1")),
        gpus_per_replica=float(env.get("LP_CLUSTER_GPUS_PER_REPLICA", "1")),
        cpus_per_replica=float(cpus) if cpus else None)


def http_port(env: Mapping[str, str]) -> str:
    return env.get("LP_CLUSTER_HTTP_PORT", DEFAULT_HTTP_PORT)


def bridge_command(config: ClusterConfig, port: str) -> list[str]:
    """The HTTP bridge, pointed at the router's command address and the frame relay, as configured."""
    frames = config.frame_addr or DEFAULT_FRAME_ADDR
    return [sys.executable, "-m", "bridge", "--host", "0.0.0.0", "--port", port,
            "--engine-addr", local_addr(config.command_addr), "--frame-addr", local_addr(frames)]
