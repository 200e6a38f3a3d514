"""Following a cluster's frames: one SUB connected to every replica's PUB, the list read from ``health``."""

from __future__ import annotations

import contextlib
import time

import zmq

from engine.client.errors import EngineClientError
from engine.client.messages import Frame, parse_frame
from engine.client.subscribers import FrameSubscriber
from engine.client.sync import EngineClient
from engine.security import CurveClientKeys


class ClusterFrameSubscriber(FrameSubscriber):
    """One SUB socket on every replica's PUB of a cluster (engine/cluster/, docs/scaling.md): the address list is
    ``health``'s ``cluster.replicas[].frame_addr`` on ``command_addr``, read again every ``refresh_s``; a new replica
    is connected, a gone one disconnected (a SUB may connect to many PUBs). A single engine's health has no
    ``cluster``: then ``fallback_addr`` is used. Frames of a moved avatar come with a higher ``epoch``."""

    def __init__(self, command_addr: str, avatar: str | None = None, *, refresh_s: float = 1.0,
                 fallback_addr: str | None = None, curve: CurveClientKeys | None = None, hwm: int = 16,
                 context: zmq.Context | None = None) -> None:
        super().__init__(None, avatar, curve=curve, context=context, hwm=hwm)
        self._health = EngineClient(command_addr, timeout_ms=2000, retries=0, curve=curve, context=self._ctx)
        self.refresh_s, self.fallback_addr = refresh_s, fallback_addr
        self.addrs: set[str] = set()
        self._next_refresh = 0.0
        self.refresh()

    def refresh(self) -> set[str]:
        """Read the replica list now and follow it; the frame addresses connected. A missed health keeps the list."""
        self._next_refresh = time.monotonic() + self.refresh_s
        try:
            health = self._health.health()
        except EngineClientError:
            return self.addrs
        cluster = health.raw.get("cluster") or {}
        wanted = {r["frame_addr"] for r in cluster.get("replicas", []) if r.get("frame_addr")}
        if not cluster and self.fallback_addr:
            wanted = {self.fallback_addr}
        for addr in wanted - self.addrs:
            self._sock.connect(addr)
        for addr in self.addrs - wanted:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disconnect(addr)
        self.addrs = wanted
        return self.addrs

    def recv(self, timeout_ms: int | None = None) -> Frame | None:
        """The next frame from any replica, or None after ``timeout_ms``; the list is followed meanwhile."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            now = time.monotonic()
            if now >= self._next_refresh:
                self.refresh()
            wait = self._next_refresh - now if deadline is None else min(self._next_refresh, deadline) - now
            if self._sock.poll(max(0, int(wait * 1000)), zmq.POLLIN):
                return parse_frame(self._sock.recv_multipart())
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        self._health.close()
        super().close()
