"""liveportrait-cluster, the one command on one machine, as a newcomer runs it: a local Ray instance on 127.0.0.1
with two CPUs, three CPU replicas (the default half CPU each), the bridge on its port; SIGTERM stops the bridge, the
replicas and Ray, leaving no Ray process behind. And the first tries that cannot work: replicas that do not fit,
Ray not installed: each one line saying what to do, at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import DATA, ROOT, free_port

RAY_DAEMONS = ("raylet", "gcs_server")


def ray_daemons() -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,comm="], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines() if any(d in line for d in RAY_DAEMONS)}


@pytest.mark.timeout(600)
def test_one_command_on_one_machine(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    port, command = free_port(), f"tcp://127.0.0.1:{free_port()}"
    before = ray_daemons()
    env = {**os.environ, "LP_MODELS_DIR": str(tmp_path / "models"), "LP_LOG_LEVEL": "WARNING"}
    env.pop("RAY_USAGE_STATS_ENABLED", None)  # the command sets it itself
    log = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen([sys.executable, "-m", "engine.cluster", "--replicas", "3", "--num-cpus", "2",
                             "--object-store-mb", "80", "--port", str(port),
                             "--command-addr", command, "--frame-addr", f"tcp://127.0.0.1:{free_port()}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "cluster.log").read_text()[-4000:]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        health = httpx.get(url + "/health")
        assert health.content == b'{"status": "ok"}'
        status = httpx.get(url + "/status").json()
        assert status["cluster"]["command_addr"] == command and len(status["cluster"]["replicas"]) == 3
        assert all(r["command_addr"].startswith("tcp://127.0.0.1:") for r in status["cluster"]["replicas"])
        rendered = httpx.post(url + "/api/render", timeout=120, data={"expression": "surprised"},
                              files={"source_image": ("photo", (DATA / "astronaut.jpg").read_bytes(), "image/jpeg")})
        assert rendered.status_code == 200 and rendered.content[:2] == b"\xff\xd8"
        assert ray_daemons() - before, "the command started its own Ray instance"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        log.close()
    assert code == 0, (tmp_path / "cluster.log").read_text()[-4000:]
    deadline = time.monotonic() + 30
    while ray_daemons() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ray_daemons() - before, "Ray processes left running"


def refused(args: list[str], code: str = "") -> tuple[int, str, float]:
    """Run liveportrait-cluster (or ``code`` before its main); exit status, what it printed, seconds taken."""
    started = time.monotonic()
    runner = [sys.executable, "-c", code + "import sys; from engine.cluster.__main__ import main; sys.exit(main())"]
    proc = subprocess.run([*runner, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def test_replicas_that_do_not_fit_are_refused_in_one_line_at_once() -> None:
    before = ray_daemons()
    code, out, took = refused(["--replicas", "3", "--cpus-per-replica", "1", "--num-cpus", "2", "--port", "0"])
    assert code == 2 and took < 10, (code, took, out)
    assert out.count("\n") == 1 and "Traceback" not in out, out
    for part in ("3 replica(s) asking 1 CPU", "need 3 CPUs", "has 2 CPUs", "room for 2", "--cpus-per-replica 0.65",
                 "--replicas 2"):
        assert part in out, out
    assert ray_daemons() == before, "nothing was started"


def test_without_the_cluster_extra_one_line_names_the_install() -> None:
    code, out, took = refused(["--replicas", "2"], code="import sys; sys.modules['ray'] = None; ")
    assert code == 2 and out.count("\n") == 1 and "Traceback" not in out, out
    assert 'pip install "liveportrait-engine[cluster]"' in out, out
