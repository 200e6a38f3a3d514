"""Real processes on loopback: an engine (python -m engine) and a bridge (python -m bridge), as in production.

``Peer`` is a tiny ZMQ peer for what a real engine does not do on demand: stay silent, hold a render for ever,
speak CURVE.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import msgpack
import pytest
import zmq

from engine.client import EngineClient, EngineUnavailable

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(addr: str, message: dict | bytes, timeout_ms: int = 20_000) -> dict:
    """One round trip on a fresh socket, no retry (raw bytes allowed, for hostile-input tests); the reply map."""
    with EngineClient(addr, timeout_ms=timeout_ms, retries=0, context=zmq.Context.instance()) as client:
        try:
            return client.request(message)
        except EngineUnavailable:
            raise TimeoutError(f"no reply from {addr} within {timeout_ms} ms") from None


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


class Peer:
    """A REP peer on loopback that answers ``{"ok": true, "echo": cmd}`` after ignoring ``drop_first`` requests.

    A ROUTER underneath so it can stay silent (a REP socket must answer before it reads again): ``silent`` never
    answers, ``hold`` never answers those commands (a render that takes for ever) while health stays ``ok``.
    """

    def __init__(self, drop_first: int = 0, silent: bool = False, curve_secret: bytes | None = None,
                 hold: tuple[str, ...] = ()) -> None:
        self.addr = f"tcp://127.0.0.1:{free_port()}"
        self.drop_first, self.silent, self.hold, self.seen = drop_first, silent, hold, 0
        self.held = 0
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        if curve_secret is not None:
            self._sock.curve_server = True
            self._sock.curve_secretkey = curve_secret
        self._sock.bind(self.addr)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(50):
                continue
            ident, empty, body = self._sock.recv_multipart()
            self.seen += 1
            if self.silent or self.seen <= self.drop_first:
                continue
            request = msgpack.unpackb(body)
            if request.get("cmd") in self.hold:
                self.held += 1
                continue
            reply = {"ok": True, "renderer": "peer", "echo": request.get("cmd"), "now": 1.0, "status": "ok"}
            self._sock.send_multipart([ident, empty, msgpack.packb(reply)])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close(0)
        self._ctx.term()


@pytest.fixture
def peer_factory() -> Iterator[Callable[..., Peer]]:
    peers: list[Peer] = []

    def make(**kwargs: object) -> Peer:
        peers.append(Peer(**kwargs))  # type: ignore[arg-type]
        return peers[-1]

    yield make
    for p in peers:
        p.close()
