"""The cluster's one command address: the engine's own msgpack messages, each sent on to the replica that holds its
avatar. One thread owns the command sockets (ZMQ sockets are not thread-safe); other threads hand it work through a
Mailbox, as the engine's command thread does.

- frontend: a ROUTER that speaks REP's envelope, like the engine's, so every existing client (REQ, DEALER, the
  bridge) talks to the cluster unchanged;
- backends (backends.py): one DEALER per replica, many requests in flight, each answered exactly once;
- routing (routing.py): which replica each command goes to and what its reply changes in the placement;
- optionally the frame relay (relay.py), on its own thread, for clients that want one frame address; heavy
  consumers (MediaBridge) connect to every replica's PUB directly.

Nothing a client or a replica sends may end this thread: each event is handled under a guard that costs one reply
at most, and ``alive()`` (part of the cluster's health) says whether the thread still runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import zmq

from engine import protocol as p
from engine.cluster.backends import Backends, deliver
from engine.cluster.placement import Placement
from engine.cluster.relay import FrameRelay
from engine.cluster.routing import Routes, read_reply
from engine.errors import Busy, EngineError
from engine.workers import Mailbox

log = logging.getLogger(__name__)

POLL_MS = 250
REQUEST_TIMEOUT_S = 120.0  # a replica that answers nothing this long: the request is answered busy
RENDERER = "cluster"  # the `renderer` of replies the router makes itself


def error_bytes(exc: EngineError) -> bytes:
    return p.pack(p.error(exc, RENDERER))


def reply_error(reply: dict[str, Any] | None) -> EngineError:
    """The typed error of an error reply (or of one that could not be read)."""
    if reply is None:
        failure = EngineError("the replica sent a reply that is not a msgpack map")
        failure.code = "internal"
        return failure
    err = reply.get("error") if isinstance(reply.get("error"), dict) else {}
    failure = EngineError(str(err.get("message", "error")))
    failure.code = str(err.get("code", "internal"))
    return failure


class Router:
    """Runs on its own thread (``start``); ``call``, ``add_replica``, ``remove_replica`` are safe from any thread."""

    def __init__(self, command_addr: str, placement: Placement, frame_addr: str | None = None,
                 max_message: int = 20_000_000 + 64 * 1024, request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.command_addr, self.frame_addr = command_addr, frame_addr
        self.placement = placement
        self._ctx = zmq.Context()
        self._front = self._ctx.socket(zmq.ROUTER)
        self._front.setsockopt(zmq.LINGER, 0)
        self._poller = zmq.Poller()
        self._backends = Backends(self._ctx, self._poller, request_timeout_s)
        self.routed = self._backends.routed  # replica id -> clients' commands sent to it (bench and tests read it)
        self.cluster_status: Callable[[], dict[str, Any]] = lambda: {}
        self._routes = Routes(placement, self._backends.forward, self._takers, lambda: self.cluster_status(),
                              max_message)
        self.relay = FrameRelay(self._ctx, frame_addr) if frame_addr is not None else None
        self._frame_addrs: dict[str, str] = {}
        self._mailbox = Mailbox()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-router", daemon=True)

    # -- any thread --

    def start(self) -> None:
        """Bind (errors surface here), then run the loop on the router thread and the relay on its own."""
        self._front.bind(self.command_addr)
        if self.relay is not None:
            self.relay.start()
        self._thread.start()

    def alive(self) -> bool:
        """The command thread runs (and the relay, where there is one)."""
        return self._thread.is_alive() and (self.relay is None or self.relay.alive())

    def stop(self) -> None:
        """Answer what is in flight (busy), close every socket. Safe before ``start`` and twice."""
        if self._ctx.closed:
            return
        self._stopping.set()
        self._mailbox.wake()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)
        else:  # never started: nothing closed them
            self._front.close(0)
            self._mailbox.close()
        if self.relay is not None:
            self.relay.stop()
        self._ctx.term()

    def add_replica(self, replica: str, command_addr: str, frame_addr: str) -> None:
        self._mailbox.post(lambda: self._add(replica, command_addr, frame_addr))

    def remove_replica(self, replica: str, reason: str) -> None:
        """Stop sending to ``replica``; requests in flight there are answered busy (the client retries)."""
        self._mailbox.post(lambda: self._remove(replica, reason))

    def call(self, replica: str, message: dict[str, Any], timeout_s: float | None = None) -> Future[dict[str, Any]]:
        """One request to one replica (the service's health polls and moves): the reply map, or the typed error
        for an error reply, an unreadable one, or none in time."""
        out: Future[dict[str, Any]] = Future()
        if self._stopping.is_set():
            out.set_exception(Busy("the cluster is shutting down"))
            return out

        def on_reply(raw: bytes | None, exc: EngineError | None) -> None:
            reply = read_reply(raw) if exc is None else None
            if exc is not None:
                out.set_exception(exc)
            elif reply is None or not reply.get("ok"):
                out.set_exception(reply_error(reply))
            else:
                out.set_result(reply)

        body = p.pack({"v": p.VERSION, **message})
        self._mailbox.post(lambda: self._backends.forward(replica, body, on_reply, timeout_s, count=False))
        return out

    # -- router thread --

    def _run(self) -> None:
        self._poller.register(self._front, zmq.POLLIN)
        self._poller.register(self._mailbox.fileno(), zmq.POLLIN)
        next_sweep = time.monotonic() + 1.0
        try:
            while not self._stopping.is_set():
                events = dict(self._poller.poll(POLL_MS))
                self._mailbox.run_pending()
                for sock in list(events):
                    self._guarded(sock)
                if time.monotonic() >= next_sweep:
                    self._backends.sweep()
                    next_sweep = time.monotonic() + 1.0
        finally:
            self._backends.close(Busy("the cluster is shutting down"))
            self._front.close(0)
            self._mailbox.close()

    def _guarded(self, sock: Any) -> None:
        try:
            if sock is self._front:
                self._client_request()
            elif isinstance(sock, zmq.Socket):
                self._backends.reply(sock)
        except Exception:  # a bug must cost one message, never the router
            log.exception("handling a message failed; the router goes on")

    def _add(self, replica: str, command_addr: str, frame_addr: str) -> None:
        self._backends.add(replica, command_addr)
        self._frame_addrs[replica] = frame_addr
        if self.relay is not None:
            self.relay.follow(frame_addr)

    def _remove(self, replica: str, reason: str) -> None:
        self._backends.remove(replica, reason)
        frame_addr = self._frame_addrs.pop(replica, None)
        if self.relay is not None and frame_addr is not None:
            self.relay.unfollow(frame_addr)

    def _takers(self) -> list[str]:
        """Replicas a command for no particular avatar may go to: live, not draining (any live one if all are)."""
        live = [r for r in self.placement.live() if r.id in self._backends.dealers]
        return [r.id for r in live if not r.draining] or [r.id for r in live]

    def _client_request(self) -> None:
        try:
            frames = self._front.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        envelope, body = p.split_envelope(frames)

        def respond(raw: bytes | None, exc: EngineError | None) -> None:
            try:
                self._front.send_multipart([*envelope, raw if exc is None and raw is not None
                                            else error_bytes(exc or EngineError("no reply"))], zmq.NOBLOCK)
            except zmq.ZMQError as err:  # the client went away
                log.debug("reply dropped: %s", err)

        try:
            self._routes.route(body, respond)
        except Exception as exc:  # a bug must cost one reply, never the router
            log.exception("routing failed")
            deliver(respond, None, EngineError(f"internal error in the cluster router: {exc!r}"))
