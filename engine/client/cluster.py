"""Following a cluster's frames: one SUB connected to every replica's PUB, the list read from ``health``."""

from __future__ import annotations

import contextlib
import threading
import time

import zmq

from engine.client.errors import EngineClientError
from engine.client.messages import Frame, parse_frame
from engine.client.subscribers import FrameSubscriber
from engine.client.sync import EngineClient
from engine.security import CurveClientKeys


class ClusterFrameSubscriber(FrameSubscriber):
    """One SUB socket on every replica's PUB of a cluster (engine/cluster/, docs/scaling.md): the address list is
    ``health``'s ``cluster.replicas[].frame_addr`` on ``command_addr``; a new replica is connected, a gone one
    disconnected (a SUB may connect to many PUBs). A single engine's health has no ``cluster``: then
    ``fallback_addr`` is used. Frames of a moved avatar come with a higher ``epoch``.

    The list is read once at start, then every ``refresh_s`` on a background thread ("cluster-refresh"), so a
    slow or silent ``health`` (up to ``health_timeout_ms``) never holds up ``recv``: ``recv`` only applies the
    newest list read (the SUB socket stays on the caller's thread; ZMQ sockets are not thread-safe)."""

    def __init__(self, command_addr: str, avatar: str | None = None, *, refresh_s: float = 1.0,
                 fallback_addr: str | None = None, curve: CurveClientKeys | None = None, hwm: int = 16,
                 context: zmq.Context | None = None, health_timeout_ms: int = 2000) -> None:
        super().__init__(None, avatar, curve=curve, context=context, hwm=hwm)
        self._health = EngineClient(command_addr, timeout_ms=health_timeout_ms, retries=0, curve=curve,
                                    context=self._ctx)
        self.refresh_s, self.fallback_addr = refresh_s, fallback_addr
        self.addrs: set[str] = set()
        self._lock = threading.Lock()
        self._read: set[str] | None = None  # the newest list the refresher read, not applied yet
        self._stop = threading.Event()
        self.refresh()
        self._refresher = threading.Thread(target=self._refresh_loop, name="cluster-refresh", daemon=True)
        self._refresher.start()

    def _wanted(self) -> set[str] | None:
        """The frame addresses ``health`` names now; None when it does not answer (the list is kept)."""
        try:
            health = self._health.health()
        except EngineClientError:
            return None
        cluster = health.raw.get("cluster") or {}
        wanted = {r["frame_addr"] for r in cluster.get("replicas", []) if r.get("frame_addr")}
        if not cluster and self.fallback_addr:
            wanted = {self.fallback_addr}
        return wanted

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            wanted = self._wanted()
            if wanted is not None:
                with self._lock:
                    self._read = wanted

    def _apply(self, wanted: set[str]) -> None:
        """Caller's thread (the SUB socket's): connect the new publishers, disconnect the gone ones."""
        for addr in wanted - self.addrs:
            self._sock.connect(addr)
        for addr in self.addrs - wanted:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disconnect(addr)
        self.addrs = wanted

    def _apply_read(self) -> None:
        with self._lock:
            wanted, self._read = self._read, None
        if wanted is not None:
            self._apply(wanted)

    def refresh(self) -> set[str]:
        """Read the replica list now (blocking, up to ``health_timeout_ms``) and follow it; the frame addresses
        connected. A missed health keeps the list."""
        wanted = self._wanted()
        if wanted is not None:
            with self._lock:
                self._read = None  # older than this one
            self._apply(wanted)
        return self.addrs

    def recv(self, timeout_ms: int | None = None) -> Frame | None:
        """The next frame from any replica, or None after ``timeout_ms``; the newest list read is followed meanwhile
        (checked at least every ``refresh_s``, never waiting on ``health`` itself)."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while True:
            self._apply_read()
            wait = self.refresh_s if deadline is None else min(self.refresh_s, deadline - time.monotonic())
            if self._sock.poll(max(0, int(wait * 1000)), zmq.POLLIN):
                return parse_frame(self._sock.recv_multipart())
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def close(self) -> None:
        """Stop the refresher (it ends within one health timeout), then close the sockets."""
        self._stop.set()
        self._refresher.join(self._health.timeout_ms / 1000 + 1.0)
        self._health.close()
        super().close()
