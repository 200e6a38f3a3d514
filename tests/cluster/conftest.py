"""A real Ray cluster of three nodes on this machine (ray.cluster_utils.Cluster, everything on 127.0.0.1), three
engine replicas on it behind the cluster's router, and a bridge (python -m bridge) pointed at the router.

Ray's own processes are started and stopped by the fixture (``ray_nodes``): the teardown shuts the cluster down and
checks that no raylet or GCS of its session is left.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from engine.cluster.ray_setup import quiet_env
from tests.service.conftest import DATA, BridgeProcess, free_port

os.environ.update(quiet_env())  # before ray is imported anywhere: usage stats off, addresses on loopback

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from engine.cluster.service import ClusterConfig, ClusterService  # noqa: E402

NODES = 3
NODE_CPUS = 2  # Ray's count, not the machine's: room for 4 replicas of 0.5 CPU per node (scale-up, replacements)
OBJECT_STORE = 80 << 20


def ray_pids(session_dir: str) -> list[int]:
    """Processes of this Ray session still running (matched by its session folder on their command line)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if session_dir in line]


@pytest.fixture(scope="module")
def ray_nodes() -> Iterator[Cluster]:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": NODE_CPUS, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "object_store_memory": OBJECT_STORE})
    for _ in range(NODES - 1):
        cluster.add_node(num_cpus=NODE_CPUS, node_ip_address="127.0.0.1", object_store_memory=OBJECT_STORE)
    ray.init(address=cluster.address, log_to_driver=False)
    session = ray._private.worker._global_node.get_session_dir_path()
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    assert ray_pids(session) == [], "Ray processes left running"


def engine_env(tmp: Path) -> dict[str, str]:
    (tmp / "models").mkdir(exist_ok=True)  # empty: the offline renderer and the dlib detector, as tests/service
    return {"LP_MODELS_DIR": str(tmp / "models"), "LP_LOG_LEVEL": "WARNING", "LP_DEFAULT_FPS": "5"}


@pytest.fixture(scope="module")
def cluster(ray_nodes: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterService]:
    tmp = tmp_path_factory.mktemp("cluster")
    service = ClusterService(ClusterConfig(
        command_addr=f"tcp://127.0.0.1:{free_port()}", frame_addr=f"tcp://127.0.0.1:{free_port()}", replicas=3,
        cpus_per_replica=0.5, engine_env=engine_env(tmp), poll_s=0.5, replace_dead=False))
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def cluster_bridge(cluster: ClusterService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    proc = BridgeProcess(tmp_path_factory.mktemp("bridge"), cluster.config.command_addr,
                         env={"LP_FRAME_ADDR": cluster.config.frame_addr or ""}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def portraits() -> list[bytes]:
    """Nine photos of one face with nine hashes (the astronaut re-encoded at nine JPEG qualities): nine avatars."""
    image = Image.open(DATA / "astronaut.jpg").convert("RGB")
    out = []
    for quality in range(80, 89):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out
