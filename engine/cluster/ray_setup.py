"""Ray, started or joined the way this project needs it: quiet, local unless told otherwise, nothing phoned home.

- ``RAY_USAGE_STATS_ENABLED=0``: Ray's usage-stats reporting is off (set here, before ``import ray``).
- a local instance binds to ``node_ip_address`` (127.0.0.1 by default), has no dashboard, a small object store
  (replicas pass no large objects through it: commands and frames are ZMQ), and a fixed CPU count.
- on loopback, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` too: with it on (Linux's default) Ray turns "127.0.0.1" in
  a bootstrap address into this machine's network address, so a second node on the same machine would look for
  the head there (measured: the GCS connection then times out). Off, every address stays 127.0.0.1.
"""

from __future__ import annotations

import os
from types import ModuleType

LOOPBACK = ("127.0.0.1", "localhost")


def quiet_env(node_ip_address: str = "127.0.0.1") -> dict[str, str]:
    """The environment variables a loopback Ray needs (set in os.environ by ``connect_ray``; tests set them too)."""
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    if node_ip_address in LOOPBACK:
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return env


def connect_ray(address: str | None, node_ip_address: str = "127.0.0.1", num_cpus: int | None = None,
                num_gpus: int | None = None, object_store_mb: int = 200) -> ModuleType:
    """Join the Ray cluster at ``address``, or start a local instance; the ``ray`` module, initialised."""
    os.environ.update(quiet_env(node_ip_address if address is None else "joined"))
    import ray

    if address is not None:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 object_store_memory=object_store_mb << 20, _node_ip_address=node_ip_address)
    return ray
