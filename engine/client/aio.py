"""The asyncio client: a pool of REQ sockets, a bounded wait for one, Lazy Pirate retries, cancellation-safe."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import msgpack
import zmq
import zmq.asyncio

from engine.client.commands import Command, ready_or_raise, with_command_helpers
from engine.client.errors import EngineUnavailable, Overloaded
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
from engine.client.sockets import connect_socket, poll_reply_async
from engine.client.subscribers import AsyncFrameSubscriber
from engine.client.sync import DEFAULT_TIMEOUT_MS
from engine.security import CurveClientKeys

R = TypeVar("R", bound=Reply)

@with_command_helpers
class AsyncEngineClient:
    """asyncio client: a pool of REQ sockets (made on first use), a bounded wait with a deadline beyond it.

    The same command methods as EngineClient (one table, COMMANDS), awaitable.

    ``wait_ms`` bounds how long a caller waits for a free socket (default: the request timeout), ``max_waiting``
    how many may wait at once; past either, ``Overloaded``. Close with ``await aclose()``: it closes every socket
    and terminates the context off the event loop.
    """

    def __init__(self, addr: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, retries: int = 1, pool_size: int = 4,
                 max_waiting: int = 32, wait_ms: int | None = None, curve: CurveClientKeys | None = None,
                 context: zmq.asyncio.Context | None = None) -> None:
        self.addr, self.timeout_ms, self.retries, self.curve = addr, timeout_ms, retries, curve
        self.max_waiting = max_waiting
        self.wait_ms = timeout_ms if wait_ms is None else wait_ms
        self._own_ctx = context is None
        self._ctx = context or zmq.asyncio.Context()
        self._free: asyncio.LifoQueue[zmq.asyncio.Socket | None] = asyncio.LifoQueue()
        for _ in range(pool_size):
            self._free.put_nowait(None)
        self._open: set[zmq.asyncio.Socket] = set()
        self._waiting = 0
        self._closed = False

    async def __aenter__(self) -> AsyncEngineClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _connect(self) -> zmq.asyncio.Socket:
        sock = connect_socket(self._ctx, zmq.REQ, self.addr, self.curve)
        self._open.add(sock)
        return sock

    def _discard(self, sock: zmq.asyncio.Socket) -> None:
        self._open.discard(sock)
        sock.close(linger=0)

    async def _acquire(self, wait_ms: int) -> zmq.asyncio.Socket | None:
        if self._closed:
            raise EngineUnavailable("the client is closed")
        if self._free.empty() and self._waiting >= self.max_waiting:
            raise Overloaded(f"{self._waiting} requests are already waiting for the engine")
        self._waiting += 1
        try:
            return await asyncio.wait_for(self._free.get(), wait_ms / 1000)
        except TimeoutError:
            raise Overloaded(f"no engine socket free within {wait_ms} ms") from None
        finally:
            self._waiting -= 1

    async def request(self, message: Mapping[str, Any] | bytes, timeout_ms: int | None = None,
                      retries: int | None = None, wait_ms: int | None = None) -> dict[str, Any]:
        """One round trip with Lazy Pirate retries on a pooled socket; the reply map as sent."""
        payload = message if isinstance(message, bytes) else msgpack.packb(dict(message), use_bin_type=True)
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        tries = 1 + (self.retries if retries is None else retries)
        sock = await self._acquire(self.wait_ms if wait_ms is None else wait_ms)
        try:
            for _ in range(tries):
                if sock is None:
                    sock = self._connect()
                await sock.send(payload)
                if await poll_reply_async(sock, timeout):
                    return decode_reply(await sock.recv())
                self._discard(sock)  # Lazy Pirate: a REQ socket that missed its reply is unusable
                sock = None
            raise EngineUnavailable(f"no reply from the engine at {self.addr} within {timeout} ms ({tries} tries)")
        except zmq.ZMQError as exc:  # the socket was closed under us (aclose) or the context terminated
            if sock is not None:
                self._discard(sock)
                sock = None
            raise EngineUnavailable(f"engine socket error: {exc}") from None
        except BaseException as exc:  # cancelled mid-request: the socket's state is unknown, so drop it
            if sock is not None:
                self._discard(sock)
                sock = None
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and self._closed and task is not None and not task.cancelling():
                # pyzmq cancels the poll of a socket closed by aclose(); the caller's task itself was not cancelled
                raise EngineUnavailable("the client was closed while the request waited") from None
            raise
        finally:
            if not self._closed:
                self._free.put_nowait(sock)

    async def call(self, cmd: str, timeout_ms: int | None = None, **fields_: Any) -> dict[str, Any]:
        """Any command, including ones without a helper yet (``speak``); raises EngineReplyError on ``ok: false``."""
        return check_reply(await self.request(build_message(cmd, fields_), timeout_ms))

    async def _send(self, spec: Command[Any, R], fields_: dict[str, Any]) -> R:
        return parse_reply(spec.reply, await self.call(spec.name, **fields_))

    async def wait_ready(self, timeout_s: float = 90.0, poll_s: float = 0.2) -> HealthReply:
        """Poll ``health`` until the engine says ``ok`` (it answers ``starting`` while models load)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise EngineUnavailable(f"the engine at {self.addr} was not ready within {timeout_s:g} s")
            with contextlib.suppress(EngineUnavailable):
                reply = await self.health(timeout_ms=min(left_ms, 1000))
                if ready_or_raise(reply):
                    return reply
            await asyncio.sleep(poll_s)

    async def clock_offset(self, samples: int = 5) -> ClockOffset:
        measured = []
        for _ in range(max(1, samples)):
            sent = time.monotonic()
            now = (await self.health()).now
            measured.append((sent, now, time.monotonic()))
        return best_offset(measured)

    def subscribe(self, frame_addr: str, avatar: str | None = None) -> AsyncFrameSubscriber:
        return AsyncFrameSubscriber(frame_addr, avatar, curve=self.curve)  # own context: closes independently

    async def aclose(self) -> None:
        """Close every socket (also those held by requests in flight), then term the context off the loop."""
        self._closed = True
        for sock in list(self._open):
            self._discard(sock)
        if self._own_ctx:
            await asyncio.to_thread(self._ctx.term)
