"""One engine replica: a Ray actor that owns one engine process (the engine we have, unchanged) on its node.

The actor is what Ray schedules: it asks for the replica's GPUs (Ray sets CUDA_VISIBLE_DEVICES for it, and the
engine process inherits it) and it lives on a node Ray chose; the engine binds its ROUTER and PUB on that node's
address with ``:*`` ports and reports the ports it got through a pipe (engine/cluster/engine_proc.py), so the
cluster's router and every subscriber reach it directly and no port is ever chosen before it is bound. Commands
never pass through Ray: Ray places, starts, watches and stops replicas; the data plane stays ZMQ.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from typing import Any

from engine.client import EngineClient, EngineClientError

READY_TIMEOUT_S = 180.0


class EngineReplica:
    """The actor's class (``ray.remote(EngineReplica)`` in engine/cluster/service.py): plain Python otherwise."""

    def __init__(self, replica_id: str, engine_args: list[str], env: dict[str, str] | None = None) -> None:
        import ray

        self.id = replica_id
        self.node_ip = ray.util.get_node_ip_address()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.command_addr = self.frame_addr = ""  # known once the engine has bound them (wait_ready)
        self._report, write = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine.cluster.engine_proc", "--report-fd", str(write),
                 "--command-addr", f"tcp://{self.node_ip}:*", "--frame-addr", f"tcp://{self.node_ip}:*",
                 *engine_args],
                env={**os.environ, **(env or {})}, pass_fds=(write,))
        finally:
            os.close(write)  # the child holds the only write end: its exit before binding reads as EOF

    def node(self) -> str:
        """Answered as soon as Ray has placed and built the actor (the service's placement check)."""
        return self.node_ip

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Block until the engine answers health ``ok``; its info then. Raises when it exits or fails first."""
        deadline = time.monotonic() + timeout_s
        self._read_endpoints(deadline)
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

    def _read_endpoints(self, deadline: float) -> None:
        """The one line the engine writes once bound (engine_proc.py); EOF first: it exited before binding."""
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"engine of replica {self.id} did not bind its sockets in time")
            if not select.select([self._report], [], [], min(left, 1.0))[0]:
                continue
            chunk = os.read(self._report, 4096)
            if not chunk:
                code = self.proc.wait(timeout=10)
                raise RuntimeError(f"engine of replica {self.id} exited with {code} before binding its sockets")
            line += chunk
        os.close(self._report)
        bound = json.loads(line)
        self.command_addr, self.frame_addr = str(bound["command_addr"]), str(bound["frame_addr"])

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
