"""The blocking client: one REQ socket behind a lock, Lazy Pirate retries."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import msgpack
import zmq

from engine.client.commands import Command, ready_or_raise, with_command_helpers
from engine.client.errors import EngineUnavailable
from engine.client.messages import (
    ClockOffset,
    HealthReply,
    Reply,
    best_offset,
    build_message,
    check_reply,
    decode_reply,
    parse_reply,
)
from engine.client.sockets import connect_socket, poll_reply
from engine.client.subscribers import FrameSubscriber
from engine.security import CurveClientKeys

DEFAULT_TIMEOUT_MS = 20_000
R = TypeVar("R", bound=Reply)

@with_command_helpers
class EngineClient:
    """Blocking client: one REQ socket behind a lock (safe from several threads, one request at a time).

    A method per command of COMMANDS (health, expressions, list_avatars, set_source, drop_source, set_expression,
    set_controls, clear, set_idle, render, stream) returns its typed reply; ``call`` sends any command."""

    def __init__(self, addr: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, retries: int = 1,
                 curve: CurveClientKeys | None = None, context: zmq.Context | None = None) -> None:
        self.addr, self.timeout_ms, self.retries, self.curve = addr, timeout_ms, retries, curve
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._sock: zmq.Socket | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, message: Mapping[str, Any] | bytes, timeout_ms: int | None = None,
                retries: int | None = None) -> dict[str, Any]:
        """One round trip with Lazy Pirate retries; the reply map as sent (``ok`` true or false)."""
        payload = message if isinstance(message, bytes) else msgpack.packb(dict(message), use_bin_type=True)
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        tries = 1 + (self.retries if retries is None else retries)
        with self._lock:
            for _ in range(tries):
                if self._sock is None:
                    self._sock = connect_socket(self._ctx, zmq.REQ, self.addr, self.curve)
                try:
                    self._sock.send(payload)
                    if poll_reply(self._sock, timeout):
                        return decode_reply(self._sock.recv())
                except BaseException as exc:  # interrupted (a signal, Ctrl-C) mid-request: its state is unknown
                    self._drop()
                    if isinstance(exc, zmq.ZMQError):
                        raise EngineUnavailable(f"engine socket error: {exc}") from None
                    raise
                self._drop()  # Lazy Pirate: a REQ socket that missed its reply is unusable
        raise EngineUnavailable(f"no reply from the engine at {self.addr} within {timeout} ms ({tries} tries)")

    def _drop(self) -> None:
        """Close the REQ socket: the next request connects a fresh one (a REQ left between its send and its
        receive refuses every later send with EFSM)."""
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def call(self, cmd: str, timeout_ms: int | None = None, **fields_: Any) -> dict[str, Any]:
        """Any command, including ones without a helper yet (``speak``); raises EngineReplyError on ``ok: false``."""
        return check_reply(self.request(build_message(cmd, fields_), timeout_ms))

    def _send(self, spec: Command[Any, R], fields_: dict[str, Any]) -> R:
        return parse_reply(spec.reply, self.call(spec.name, **fields_))

    def wait_ready(self, timeout_s: float = 90.0, poll_s: float = 0.2) -> HealthReply:
        """Poll ``health`` until the engine says ``ok`` (it answers ``starting`` while models load)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise EngineUnavailable(f"the engine at {self.addr} was not ready within {timeout_s:g} s")
            with contextlib.suppress(EngineUnavailable):
                reply = self.health(timeout_ms=min(left_ms, 1000))
                if ready_or_raise(reply):
                    return reply
            time.sleep(poll_s)

    def clock_offset(self, samples: int = 5) -> ClockOffset:
        measured = []
        for _ in range(max(1, samples)):
            sent = time.monotonic()
            now = self.health().now
            measured.append((sent, now, time.monotonic()))
        return best_offset(measured)

    def subscribe(self, frame_addr: str, avatar: str | None = None) -> FrameSubscriber:
        return FrameSubscriber(frame_addr, avatar, curve=self.curve)  # own context: closes independently

    def close(self) -> None:
        with self._lock:
            self._drop()
        if self._own_ctx:
            self._ctx.term()
