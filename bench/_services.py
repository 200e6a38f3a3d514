"""A real engine + bridge on free loopback ports for the benches (offline renderer unless LP_MODELS_DIR is set)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServicesNotReady(RuntimeError):
    """The engine or the bridge exited, or /health never answered 200: nothing worth measuring."""


@dataclass(frozen=True)
class Services:
    command_addr: str
    frame_addr: str
    url: str


@contextlib.contextmanager
def services(ready_s: float = 120.0) -> Iterator[Services]:
    """Start both processes, wait until the bridge's /health answers 200, stop both on the way out.

    A service that exits or is not healthy within ``ready_s`` raises ServicesNotReady: a bench must never measure
    the 503s of an engine that did not start."""
    cmd, frames, http = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}", free_port()
    env = {**os.environ, "LP_MODELS_DIR": os.environ.get("LP_MODELS_DIR", "/nonexistent"), "LP_LOG_LEVEL": "WARNING",
           "LP_COMMAND_ADDR": cmd, "LP_FRAME_ADDR": frames, "LP_ENGINE_ADDR": cmd, "LP_BRIDGE_PORT": str(http)}
    procs = {module: subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env)
             for module in ("engine", "bridge")}
    url = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + ready_s
        last = "no answer"
        while True:
            dead = [f"{module} exited {proc.returncode}" for module, proc in procs.items() if proc.poll() is not None]
            if dead:
                raise ServicesNotReady(", ".join(dead))
            with contextlib.suppress(httpx.TransportError):
                health = httpx.get(url + "/health", timeout=2)
                if health.status_code == 200:
                    break
                last = f"{health.status_code} {health.text[:200]}"
            if time.monotonic() > deadline:
                raise ServicesNotReady(f"{url}/health not 200 within {ready_s:.0f} s (last: {last})")
            time.sleep(0.3)
        yield Services(cmd, frames, url)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=30)
