"""The cluster's one command address: the engine's own msgpack messages, each sent on to the replica that holds its
avatar. One thread owns every socket here (ZMQ sockets are not thread-safe); other threads hand it work through a
Mailbox, as the engine's command thread does.

- frontend: a ROUTER that speaks REP's envelope, like the engine's, so every existing client (REQ, DEALER, the
  bridge) talks to the cluster unchanged;
- one DEALER per replica: a request goes out as ``[request id, b"", body]`` (the replica's ROUTER keeps the id in
  the envelope) and its reply comes back with the id, so many requests are in flight at once and a slow render
  on one replica holds up nothing else;
- optionally a frame relay (XSUB connected to every replica's PUB, XPUB bound on the cluster's frame address) for
  clients that want one frame address; heavy consumers (MediaBridge) connect to every replica's PUB directly.

Routing (by the fields the engine itself reads): an upload (``set_source``, ``render``/``speak_clip`` with
``image``) goes where its hash lives or to the least-loaded replica; a command naming an avatar goes to its
replica, with ``stream`` stamped with the avatar's ``epoch`` (and the look commands it accepts remembered for a
move: engine/cluster/look.py); anything else goes to any replica, round robin. Replies
are forwarded as the replica's bytes, except ``health`` and ``list_avatars``, which are widened to the whole
cluster (``health`` gains ``cluster``). The router parses only what it routes by; every check of client input stays
in the engine, so a malformed message gets exactly the engine's error reply.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import msgpack
import zmq

from engine import protocol as p
from engine.avatars import DEFAULT_ALIAS, avatar_id
from engine.cluster.look import LOOK_COMMANDS
from engine.cluster.placement import Placement
from engine.errors import Busy, EngineError
from engine.workers import Mailbox

log = logging.getLogger(__name__)

POLL_MS = 250
REQUEST_TIMEOUT_S = 120.0  # a replica that answers nothing this long: the request is answered busy
UPLOADS = ("set_source", "render", "speak_clip")
RENDERER = "cluster"  # the `renderer` of replies the router makes itself

OnReply = Callable[[bytes | None, EngineError | None], None]


@dataclass
class Pending:
    replica: str
    on_reply: OnReply
    deadline: float


def error_bytes(exc: EngineError) -> bytes:
    return p.pack(p.error(exc, RENDERER))


class Router:
    """Runs on its own thread (``start``); ``call``, ``add_replica``, ``remove_replica`` are safe from any thread."""

    def __init__(self, command_addr: str, placement: Placement, frame_addr: str | None = None,
                 max_message: int = 20_000_000 + 64 * 1024, request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.command_addr, self.frame_addr = command_addr, frame_addr
        self.placement = placement
        self.max_message = max_message
        self.request_timeout_s = request_timeout_s
        self.routed: dict[str, int] = {}  # replica id -> clients' commands sent to it (bench and tests read it)
        self._ctx = zmq.Context()
        self._front = self._ctx.socket(zmq.ROUTER)
        self._front.setsockopt(zmq.LINGER, 0)
        self._dealers: dict[str, zmq.Socket] = {}
        self._frame_addrs: dict[str, str] = {}
        self._xsub: zmq.Socket | None = None
        self._xpub: zmq.Socket | None = None
        self._pending: dict[bytes, Pending] = {}
        self._ids = itertools.count(1)
        self._rr = itertools.count()
        self._mailbox = Mailbox()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-router", daemon=True)
        self.cluster_status: Callable[[], dict[str, Any]] = lambda: {}

    # -- any thread --

    def start(self) -> None:
        """Bind (errors surface here), then run the loop on the router thread."""
        self._front.bind(self.command_addr)
        if self.frame_addr is not None:
            self._xsub, self._xpub = self._ctx.socket(zmq.XSUB), self._ctx.socket(zmq.XPUB)
            for sock in (self._xsub, self._xpub):
                sock.setsockopt(zmq.LINGER, 0)
            self._xpub.bind(self.frame_addr)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._mailbox.wake()
        self._thread.join(timeout=10)

    def add_replica(self, replica: str, command_addr: str, frame_addr: str) -> None:
        self._mailbox.post(lambda: self._add(replica, command_addr, frame_addr))

    def remove_replica(self, replica: str, reason: str) -> None:
        """Stop sending to ``replica``; requests in flight there are answered busy (the client retries)."""
        self._mailbox.post(lambda: self._remove(replica, reason))

    def call(self, replica: str, message: dict[str, Any], timeout_s: float | None = None) -> Future[dict[str, Any]]:
        """One request to one replica (the supervisor's health polls and re-placements); the reply map, or the
        typed error for an error reply or no answer."""
        out: Future[dict[str, Any]] = Future()

        def on_reply(raw: bytes | None, exc: EngineError | None) -> None:
            if exc is not None:
                out.set_exception(exc)
                return
            reply = msgpack.unpackb(raw or b"\x80", raw=False)
            if not reply.get("ok"):
                err = reply.get("error") or {}
                failure = EngineError(str(err.get("message", "error")))
                failure.code = str(err.get("code", "internal"))
                out.set_exception(failure)
            else:
                out.set_result(reply)

        body = p.pack({"v": p.VERSION, **message})
        self._mailbox.post(lambda: self._forward(replica, body, on_reply, timeout_s, count=False))
        return out

    # -- router thread --

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._front, zmq.POLLIN)
        poller.register(self._mailbox.fileno(), zmq.POLLIN)
        if self._xsub is not None and self._xpub is not None:
            poller.register(self._xsub, zmq.POLLIN)
            poller.register(self._xpub, zmq.POLLIN)
        self._poller = poller
        next_sweep = time.monotonic() + 1.0
        try:
            while not self._stopping.is_set():
                events = dict(poller.poll(POLL_MS))
                self._mailbox.run_pending()
                for sock in list(events):
                    if sock is self._front:
                        self._client_request()
                    elif sock is self._xsub:
                        self._relay(self._xsub, self._xpub)
                    elif sock is self._xpub:
                        self._relay(self._xpub, self._xsub)
                    elif isinstance(sock, zmq.Socket):
                        self._replica_reply(sock)
                if time.monotonic() >= next_sweep:
                    self._sweep()
                    next_sweep = time.monotonic() + 1.0
        finally:
            for pending in self._pending.values():
                pending.on_reply(None, Busy("the cluster is shutting down"))
            self._pending.clear()
            for sock in [self._front, *self._dealers.values(), self._xsub, self._xpub]:
                if sock is not None:
                    sock.close(0)
            self._ctx.term()
            self._mailbox.close()

    def _add(self, replica: str, command_addr: str, frame_addr: str) -> None:
        dealer = self._ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(command_addr)
        self._dealers[replica] = dealer
        self._poller.register(dealer, zmq.POLLIN)
        self._frame_addrs[replica] = frame_addr
        if self._xsub is not None:
            self._xsub.connect(frame_addr)
        self.routed.setdefault(replica, 0)

    def _remove(self, replica: str, reason: str) -> None:
        dealer = self._dealers.pop(replica, None)
        if dealer is not None:
            self._poller.unregister(dealer)
            dealer.close(0)
        frame_addr = self._frame_addrs.pop(replica, None)
        if self._xsub is not None and frame_addr is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._xsub.disconnect(frame_addr)
        for rid, pending in list(self._pending.items()):
            if pending.replica == replica:
                del self._pending[rid]
                pending.on_reply(None, Busy(f"replica {replica} {reason} while answering; retry"))

    def _relay(self, src: zmq.Socket | None, dst: zmq.Socket | None) -> None:
        assert src is not None and dst is not None
        with contextlib.suppress(zmq.ZMQError):  # nothing there, or a full subscriber: PUB semantics, drop
            dst.send_multipart(src.recv_multipart(zmq.NOBLOCK), zmq.NOBLOCK)

    def _sweep(self) -> None:
        """Requests past their deadline are answered busy: a wedged replica cannot hang a client."""
        now = time.monotonic()
        for rid, pending in list(self._pending.items()):
            if now > pending.deadline:
                del self._pending[rid]
                pending.on_reply(None, Busy(f"replica {pending.replica} did not answer in time; retry"))

    def _forward(self, replica: str, body: bytes, on_reply: OnReply, timeout_s: float | None = None,
                 count: bool = True) -> None:
        dealer = self._dealers.get(replica)
        if dealer is None:
            on_reply(None, Busy(f"replica {replica} is gone; retry"))
            return
        rid = next(self._ids).to_bytes(8, "big")
        try:
            dealer.send_multipart([rid, b"", body], zmq.NOBLOCK)
        except zmq.ZMQError:
            on_reply(None, Busy(f"replica {replica} is not accepting requests; retry"))
            return
        if count:
            self.routed[replica] = self.routed.get(replica, 0) + 1
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.request_timeout_s)
        self._pending[rid] = Pending(replica, on_reply, deadline)

    def _replica_reply(self, dealer: zmq.Socket) -> None:
        try:
            frames = dealer.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        pending = self._pending.pop(frames[0], None) if len(frames) == 3 else None
        if pending is not None:  # else: answered already (timed out, replica removed)
            pending.on_reply(frames[2], None)

    def _client_request(self) -> None:
        try:
            frames = self._front.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        envelope, body = p.split_envelope(frames)

        def respond(raw: bytes | None, exc: EngineError | None) -> None:
            try:
                self._front.send_multipart([*envelope, raw if exc is None else error_bytes(exc)], zmq.NOBLOCK)
            except zmq.ZMQError as err:  # the client went away
                log.debug("reply dropped: %s", err)

        try:
            self._route(body, respond)
        except Exception as exc:  # a bug must cost one reply, never the router
            log.exception("routing failed")
            respond(None, EngineError(f"internal error in the cluster router: {exc!r}"))

    def _any(self) -> str | None:
        live = [r.id for r in self.placement.live() if r.id in self._dealers]
        takers = [r.id for r in self.placement.live() if r.id in self._dealers and not r.draining] or live
        return takers[next(self._rr) % len(takers)] if takers else None

    def _route(self, body: list[bytes], respond: OnReply) -> None:
        msg = _peek(body, self.max_message)
        cmd = msg.get("cmd") if msg is not None else None
        image = msg.get("image") if msg is not None else None
        avatar = msg.get("avatar") if msg is not None else None
        raw = body[0] if len(body) == 1 else b""
        if cmd in UPLOADS and isinstance(image, bytes) and (cmd == "set_source" or avatar is None):
            aid = avatar_id(image)
            target = self.placement.home_for_upload(aid, image)
            if target is None:
                respond(None, Busy(f"avatar {aid} is moving to another replica (or none runs); retry shortly"))
                return

            def confirmed(reply: bytes | None, exc: EngineError | None) -> None:
                self.placement.confirm(aid, target, exc is None and _ok(reply))
                respond(reply, exc)

            self._forward(target, raw, confirmed)
            return
        if isinstance(avatar, str) and avatar != DEFAULT_ALIAS:
            placed = self.placement.where(avatar)
            if placed is not None:
                if placed.replica is None:
                    respond(None, Busy(f"avatar {avatar} is moving to another replica; retry shortly"))
                    return
                self._forward(placed.replica, *self._on_avatar(cmd, avatar, msg, raw, placed.epoch, respond))
                return
        target = self._any()
        if target is None:
            respond(None, Busy("no engine replica is running yet; retry shortly"))
            return
        if cmd in ("health", "list_avatars"):
            self._forward(target, raw, lambda reply, exc: respond(*self._widen(cmd, reply, exc)))
        else:
            self._forward(target, raw, respond)

    def _on_avatar(self, cmd: Any, avatar: str, msg: dict[str, Any] | None, raw: bytes, epoch: int,
                   respond: OnReply) -> tuple[bytes, OnReply]:
        """The body to send for a placed avatar and what its reply changes in the placement."""
        if cmd == "stream" and msg is not None:
            def streamed(reply: bytes | None, exc: EngineError | None) -> None:
                if exc is None and reply is not None:
                    answer = msgpack.unpackb(reply, raw=False)
                    if answer.get("ok"):
                        self.placement.set_stream(avatar, float(answer.get("fps", 0.0)))
                respond(reply, exc)

            return p.pack({**msg, "epoch": epoch}), streamed
        if cmd == "drop_source":
            def dropped(reply: bytes | None, exc: EngineError | None) -> None:
                if exc is None and _ok(reply):
                    self.placement.forget(avatar)
                respond(reply, exc)

            return raw, dropped
        if cmd in LOOK_COMMANDS:
            def looked(reply: bytes | None, exc: EngineError | None) -> None:
                if exc is None and _ok(reply):  # the engine accepted it, so it parses
                    with contextlib.suppress(EngineError):
                        self.placement.remember(avatar, p.parse_request(raw, self.max_message))
                respond(reply, exc)

            return raw, looked
        return raw, respond

    def _widen(self, cmd: str, reply: bytes | None, exc: EngineError | None) -> tuple[bytes | None, EngineError | None]:
        """health and list_avatars of one replica -> of the whole cluster."""
        if exc is not None or reply is None:
            return reply, exc
        answer = msgpack.unpackb(reply, raw=False)
        if not answer.get("ok"):
            return reply, None
        status = self.cluster_status()
        placed = [aid for r in status.get("replicas", []) for aid in r.get("avatars", [])]
        streams = status.get("streams", {})
        if cmd == "health":
            default = [answer["default_avatar"]] if answer.get("default_avatar") else []
            answer.update(avatars=len(set(placed) | set(default)), streams=streams, cluster=status)
        else:
            answer.update(avatars=list(dict.fromkeys([*answer.get("avatars", []), *placed])), streams=streams)
        return p.pack(answer), None


def _peek(body: list[bytes], max_bytes: int) -> dict[str, Any] | None:
    """The message as a map, for routing only; None when it is not one (the engine then answers the error)."""
    if len(body) != 1 or len(body[0]) > max_bytes:
        return None
    try:
        msg = msgpack.unpackb(body[0], raw=False, strict_map_key=False, max_bin_len=max_bytes)
    except Exception:  # msgpack raises several unrelated types for malformed input
        return None
    return msg if isinstance(msg, dict) else None


def _ok(reply: bytes | None) -> bool:
    try:
        return bool(reply) and bool(msgpack.unpackb(reply, raw=False).get("ok"))  # type: ignore[arg-type]
    except Exception:
        return False
