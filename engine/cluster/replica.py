"""One engine replica: a Ray actor that owns one engine process (the engine we have, unchanged) on its node.

The actor is what Ray schedules: it asks for the replica's GPUs (Ray sets CUDA_VISIBLE_DEVICES for it, and the
engine process inherits it) and it lives on a node Ray chose; the engine binds its ROUTER and PUB on that node's
address, on free ports, so the cluster's router and every subscriber reach it directly. Commands never pass
through Ray: Ray places, starts, watches and stops replicas; the data plane stays ZMQ.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

from engine.client import EngineClient, EngineClientError

READY_TIMEOUT_S = 180.0


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EngineReplica:
    """The actor's class (``ray.remote(EngineReplica)`` in engine/cluster/service.py): plain Python otherwise."""

    def __init__(self, replica_id: str, engine_args: list[str], env: dict[str, str] | None = None) -> None:
        import ray

        self.id = replica_id
        self.node_ip = ray.util.get_node_ip_address()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.command_addr = f"tcp://{self.node_ip}:{free_port(self.node_ip)}"
        self.frame_addr = f"tcp://{self.node_ip}:{free_port(self.node_ip)}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cluster.engine_proc", "--command-addr", self.command_addr,
             "--frame-addr", self.frame_addr, *engine_args],
            env={**os.environ, **(env or {})})

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Block until the engine answers health ``ok``; its info then. Raises when it exits or fails first."""
        deadline = time.monotonic() + timeout_s
        with EngineClient(self.command_addr, timeout_ms=1000, retries=0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"engine of replica {self.id} exited with {self.proc.returncode}")
                try:
                    health = client.health()
                except EngineClientError:
                    continue
                if health.status == "ok":
                    return self.info()
                if health.status == "failed":
                    raise RuntimeError(f"engine of replica {self.id} failed: {health.failure}")
                time.sleep(0.2)
        raise TimeoutError(f"engine of replica {self.id} not ready in {timeout_s} s")

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "node": self.node_id, "node_ip": self.node_ip, "pid": self.proc.pid,
                "actor_pid": os.getpid(), "command_addr": self.command_addr, "frame_addr": self.frame_addr}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM: the engine's graceful shutdown (streams stop, replies in flight go out); SIGKILL past the wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=5)
