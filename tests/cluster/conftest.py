"""A real Ray cluster of three nodes on this machine (ray.cluster_utils.Cluster, everything on 127.0.0.1), three
engine replicas on it behind the cluster's router (replacement of dead replicas on, as the command has it), and a
bridge (python -m bridge) pointed at the router.

Ray's own processes are started and stopped by the fixture (``ray_nodes``): the teardown shuts the cluster down and
checks that no raylet or GCS of its session is left. Tests share the one cluster of the module, but none depends on
what another left: each asks ``nine`` for its starting point (three replicas, nine avatars 3/3/3), which is
rebuilt only when a test before it changed it.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from engine.avatars import avatar_id
from engine.client import EngineClient, EngineReplyError
from engine.cluster.ray_setup import quiet_env
from tests.service.conftest import DATA, BridgeProcess, free_port

os.environ.update(quiet_env())  # before ray is imported anywhere: usage stats off, addresses on loopback

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from engine.cluster.service import ClusterConfig, ClusterService  # noqa: E402

NODES = 3
NODE_CPUS = 2  # Ray's count, not the machine's: room for 4 replicas of 0.5 CPU per node (scale-up, replacements)
OBJECT_STORE = 80 << 20
SLOT = "lp-test-slot"  # a custom resource only the head node has, 3 of it: the failed-start test's scarce resource
SLOTS = 3
REPLICAS = 3


def ray_pids(session_dir: str) -> list[int]:
    """Processes of this Ray session still running (matched by its session folder on their command line)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if session_dir in line]


@pytest.fixture(scope="module")
def ray_nodes() -> Iterator[Cluster]:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": NODE_CPUS, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "object_store_memory": OBJECT_STORE, "resources": {SLOT: SLOTS}})
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
        command_addr=f"tcp://127.0.0.1:{free_port()}", frame_addr=f"tcp://127.0.0.1:{free_port()}",
        replicas=REPLICAS, cpus_per_replica=0.5, engine_env=engine_env(tmp), poll_s=0.5, replace_dead=True))
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


def client(cluster: ClusterService) -> EngineClient:
    return EngineClient(cluster.config.command_addr, timeout_ms=60_000, retries=0)


def homes(cluster: ClusterService) -> dict[str, str]:
    """avatar -> replica id, as /status's cluster.replicas says."""
    return {aid: r["id"] for r in cluster.status()["replicas"] for aid in r["avatars"]}


def settle(cluster: ClusterService, replicas: int = REPLICAS, timeout_s: float = 60.0) -> None:
    """``replicas`` running (a drained one added back, replacements ready) and no avatar between replicas."""
    while cluster.target < replicas:
        cluster.add_replica()
    while cluster.target > replicas:  # the newest replica goes (it holds the fewest avatars)
        cluster.remove_replica(cluster.status()["replicas"][-1]["id"])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        moving = [a for a, p in list(cluster.placement.avatars.items()) if p.replica is None or p.moving_to]
        if len(cluster.placement.live()) == replicas and not moving:
            return
        time.sleep(0.2)
    raise AssertionError(f"the cluster did not settle: {cluster.status()}")


@pytest.fixture
def nine(cluster: ClusterService, portraits: list[bytes]) -> list[str]:
    """Three replicas holding the nine portraits' avatars 3/3/3; rebuilt (every avatar dropped, the nine uploaded
    again) only when the test before left something else. The avatar ids."""
    settle(cluster)
    ids = [avatar_id(p) for p in portraits]
    placed = homes(cluster)
    if set(placed) == set(ids) and sorted(Counter(placed.values()).values()) == [3, 3, 3]:
        return ids
    with client(cluster) as c:
        for aid in list(cluster.placement.avatars):
            with contextlib.suppress(EngineReplyError):  # unknown there already
                c.drop_source(aid)
        assert [c.set_source(image).avatar for image in portraits] == ids
    return ids
