"""Real processes on loopback: an engine (python -m engine) and a bridge (python -m bridge), as in production."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgpack
import pytest
import zmq

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(addr: str, message: dict | bytes, timeout_ms: int = 20_000) -> dict:
    """One REQ round trip on a fresh socket (what a simple client does)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(addr)
    try:
        sock.send(message if isinstance(message, bytes) else msgpack.packb(message, use_bin_type=True))
        if not sock.poll(timeout_ms):
            raise TimeoutError(f"no reply from {addr} within {timeout_ms} ms")
        return msgpack.unpackb(sock.recv(), raw=False)
    finally:
        sock.close(0)


class EngineProcess:
    def __init__(self, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.command_addr = f"tcp://127.0.0.1:{free_port()}"
        self.frame_addr = f"tcp://127.0.0.1:{free_port()}"
        self.models_dir = tmp / "models"  # empty: the offline renderer and the dlib detector
        self.env = {**os.environ, "LP_MODELS_DIR": str(self.models_dir), **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = tmp / "engine.log"

    def start(self, wait: bool = True) -> EngineProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine", "--command-addr", self.command_addr, "--frame-addr", self.frame_addr],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                reply = request(self.command_addr, {"v": 1, "cmd": "health"}, timeout_ms=1000)
            except TimeoutError:
                continue
            if reply.get("status") == "ok":
                return reply
            assert reply.get("status") != "failed", reply
            time.sleep(0.2)
        raise TimeoutError(f"engine not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def request(self, message: dict | bytes, timeout_ms: int = 20_000) -> dict:
        return request(self.command_addr, message, timeout_ms)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: str = "term") -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill() if sig == "kill" else self.proc.terminate()
        return self.proc.wait(timeout=30)


class BridgeProcess:
    def __init__(self, tmp: Path, engine_addr: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.engine_addr = engine_addr
        self.log = tmp / "bridge.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> BridgeProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--port", str(self.port), "--engine-addr", self.engine_addr],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                httpx.get(self.url + "/expressions", timeout=1.0)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError(self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path_factory.mktemp("engine")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def bridge(engine: EngineProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    proc = BridgeProcess(tmp_path_factory.mktemp("bridge"), engine.command_addr,
                         env={"LP_MAX_UPLOAD_BYTES": "3000000"}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def portrait() -> bytes:
    return (DATA / "astronaut.jpg").read_bytes()
