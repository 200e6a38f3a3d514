"""The router's side toward the replicas: one DEALER per replica and the requests in flight on each.

A request goes out as ``[request id, b"", body]`` (the replica's ROUTER keeps the id in the envelope) and its reply
comes back with the id, so many requests are in flight at once and a slow render on one replica holds up nothing
else. Every request is answered exactly once: by its reply, by ``busy`` at its deadline, or by ``busy`` when its
replica is removed. Whatever a reply holds, delivering it cannot raise out of here (``deliver``): one bad reply
costs that request, never the router's thread.

Used from the router's thread only (it owns these sockets).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from engine.errors import Busy, EngineError

log = logging.getLogger(__name__)

OnReply = Callable[[bytes | None, EngineError | None], None]


@dataclass
class Pending:
    replica: str
    on_reply: OnReply
    deadline: float


def deliver(on_reply: OnReply, raw: bytes | None, exc: EngineError | None) -> None:
    """Run one reply's callback; a callback that raises (a reply it could not read) is logged, not spread."""
    try:
        on_reply(raw, exc)
    except Exception:
        log.exception("a reply's callback failed (the request is lost, the router goes on)")


class Backends:
    def __init__(self, ctx: zmq.Context, poller: zmq.Poller, request_timeout_s: float) -> None:
        self._ctx, self._poller = ctx, poller
        self.request_timeout_s = request_timeout_s
        self.dealers: dict[str, zmq.Socket] = {}
        self.routed: dict[str, int] = {}  # replica id -> clients' commands sent to it (bench and tests read it)
        self._pending: dict[bytes, Pending] = {}
        self._ids = itertools.count(1)

    def add(self, replica: str, command_addr: str) -> None:
        dealer = self._ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(command_addr)
        self.dealers[replica] = dealer
        self._poller.register(dealer, zmq.POLLIN)
        self.routed.setdefault(replica, 0)

    def remove(self, replica: str, reason: str) -> None:
        """Stop sending to ``replica``; requests in flight there are answered busy (the client retries)."""
        dealer = self.dealers.pop(replica, None)
        if dealer is not None:
            self._poller.unregister(dealer)
            dealer.close(0)
        for rid, pending in list(self._pending.items()):
            if pending.replica == replica:
                del self._pending[rid]
                deliver(pending.on_reply, None, Busy(f"replica {replica} {reason} while answering; retry"))

    def forward(self, replica: str, body: bytes, on_reply: OnReply, timeout_s: float | None = None,
                count: bool = True) -> None:
        dealer = self.dealers.get(replica)
        if dealer is None:
            deliver(on_reply, None, Busy(f"replica {replica} is gone; retry"))
            return
        rid = next(self._ids).to_bytes(8, "big")
        try:
            dealer.send_multipart([rid, b"", body], zmq.NOBLOCK)
        except zmq.ZMQError:
            deliver(on_reply, None, Busy(f"replica {replica} is not accepting requests; retry"))
            return
        if count:
            self.routed[replica] = self.routed.get(replica, 0) + 1
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.request_timeout_s)
        self._pending[rid] = Pending(replica, on_reply, deadline)

    def reply(self, dealer: zmq.Socket) -> None:
        """One message from a replica: its request's callback gets the body (unread: callbacks check it)."""
        try:
            frames = dealer.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        if len(frames) != 3:
            log.warning("a replica sent a malformed reply (%d frames); dropped", len(frames))
            return
        pending = self._pending.pop(frames[0], None)
        if pending is not None:  # else: answered already (timed out, replica removed)
            deliver(pending.on_reply, frames[2], None)

    def sweep(self) -> None:
        """Requests past their deadline are answered busy: a wedged replica cannot hang a client."""
        now = time.monotonic()
        for rid, pending in list(self._pending.items()):
            if now > pending.deadline:
                del self._pending[rid]
                deliver(pending.on_reply, None, Busy(f"replica {pending.replica} did not answer in time; retry"))

    def close(self, reason: EngineError) -> None:
        for pending in self._pending.values():
            deliver(pending.on_reply, None, reason)
        self._pending.clear()
        for dealer in self.dealers.values():
            dealer.close(0)
        self.dealers.clear()
