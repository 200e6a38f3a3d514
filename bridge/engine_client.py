"""A reliable request/reply client for the engine: the zguide's Lazy Pirate over a small pool of REQ sockets.

A REQ socket that times out is stuck (it expects a reply that may never come), so it is closed with linger 0 and a
fresh one is connected before retrying. A pool lets concurrent HTTP requests each hold their own socket; a bounded
wait beyond the pool answers Overloaded instead of queuing without end.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgpack
import zmq
import zmq.asyncio


class EngineUnavailable(Exception):
    """The engine did not answer within the timeout, after the retries."""


class Overloaded(Exception):
    """Too many requests are already waiting for an engine socket."""


class EngineClient:
    def __init__(self, addr: str, timeout_ms: int = 20_000, retries: int = 1, pool_size: int = 4,
                 max_waiting: int = 32) -> None:
        self.addr = addr
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.max_waiting = max_waiting
        self._ctx = zmq.asyncio.Context()
        self._free: asyncio.Queue[zmq.asyncio.Socket | None] = asyncio.Queue()
        for _ in range(pool_size):
            self._free.put_nowait(None)  # sockets are made on first use
        self._waiting = 0

    def _connect(self) -> zmq.asyncio.Socket:
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.addr)
        return sock

    async def request(self, message: dict[str, Any], timeout_ms: int | None = None,
                      retries: int | None = None) -> dict[str, Any]:
        """Send one request and return the engine's reply map (``ok`` true or false)."""
        if self._waiting >= self.max_waiting:
            raise Overloaded(f"{self._waiting} requests are already waiting for the engine")
        self._waiting += 1
        try:
            sock = await self._free.get()
        finally:
            self._waiting -= 1
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        tries = 1 + (self.retries if retries is None else retries)
        payload = msgpack.packb(message, use_bin_type=True)
        try:
            for _ in range(tries):
                if sock is None:
                    sock = self._connect()
                await sock.send(payload)
                if await sock.poll(timeout, zmq.POLLIN):
                    reply = msgpack.unpackb(await sock.recv(), raw=False)
                    if not isinstance(reply, dict):
                        raise EngineUnavailable("the engine sent a reply that is not a map")
                    return reply
                sock.close(linger=0)  # Lazy Pirate: a REQ socket that missed its reply is unusable
                sock = None
            raise EngineUnavailable(f"no reply from the engine at {self.addr} within {timeout} ms ({tries} tries)")
        except BaseException:
            if sock is not None:
                sock.close(linger=0)
                sock = None
            raise
        finally:
            self._free.put_nowait(sock)

    def close(self) -> None:
        while not self._free.empty():
            sock = self._free.get_nowait()
            if sock is not None:
                with contextlib.suppress(zmq.ZMQError):
                    sock.close(linger=0)
        self._ctx.term()
