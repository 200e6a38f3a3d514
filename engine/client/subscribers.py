"""Frame subscribers: SUB sockets on ``frame.<avatar>`` (or every avatar), blocking and asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Self

import zmq
import zmq.asyncio

from engine.client.messages import Frame, parse_frame
from engine.client.sockets import frame_subscriber_socket
from engine.security import CurveClientKeys


class FrameSubscriber:
    """SUB socket for ``frame.<avatar>`` (or every avatar): ``recv`` with a timeout, or iterate forever."""

    def __init__(self, addr: str | None, avatar: str | None = None, *, curve: CurveClientKeys | None = None,
                 context: zmq.Context | None = None, hwm: int = 4) -> None:
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._sock = frame_subscriber_socket(self._ctx, addr, avatar, curve, hwm)

    def recv(self, timeout_ms: int | None = None) -> Frame | None:
        """The next frame, or None after ``timeout_ms`` (None: wait for ever)."""
        if timeout_ms is not None and not self._sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return parse_frame(self._sock.recv_multipart())

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.recv()
            if frame is not None:
                yield frame

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close(linger=0)
        if self._own_ctx:
            self._ctx.term()


class AsyncFrameSubscriber:
    """``async for frame in sub`` over ``frame.<avatar>`` (or every avatar); ``recv`` takes a timeout."""

    def __init__(self, addr: str, avatar: str | None = None, *, curve: CurveClientKeys | None = None,
                 context: zmq.asyncio.Context | None = None, hwm: int = 4) -> None:
        self._own_ctx = context is None
        self._ctx = context or zmq.asyncio.Context()
        self._sock = frame_subscriber_socket(self._ctx, addr, avatar, curve, hwm)

    async def recv(self, timeout_ms: int | None = None) -> Frame | None:
        if timeout_ms is not None and not await self._sock.poll(timeout_ms, zmq.POLLIN):
            return None
        return parse_frame(await self._sock.recv_multipart())

    async def recv_latest(self, timeout_ms: int | None = None) -> Frame | None:
        """The newest frame already queued (older ones dropped): a slow consumer (a browser) then sees a lower
        rate, never a growing delay. Raises BadReply for a malformed newest frame."""
        if timeout_ms is not None and not await self._sock.poll(timeout_ms, zmq.POLLIN):
            return None
        parts = await self._sock.recv_multipart()
        while True:
            try:
                parts = await self._sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return parse_frame(parts)

    def __aiter__(self) -> AsyncIterator[Frame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[Frame]:
        while True:
            frame = await self.recv()
            if frame is not None:
                yield frame

    async def __aenter__(self) -> AsyncFrameSubscriber:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._sock.close(linger=0)
        if self._own_ctx:
            await asyncio.to_thread(self._ctx.term)

