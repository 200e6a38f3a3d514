"""Socket factories shared by the clients and the subscribers: linger 0, CURVE when keys are given, SUB filters."""

from __future__ import annotations

import math
import time
from typing import Any

import zmq

from engine.constants import FRAME_TOPIC
from engine.security import CurveClientKeys


def connect_socket(ctx: zmq.Context, kind: int, addr: str, curve: CurveClientKeys | None) -> Any:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        curve.apply(sock)
    sock.connect(addr)
    return sock


def poll_reply(sock: Any, timeout_ms: int) -> bool:
    """Wait for a reply for the whole timeout: ``zmq.poll`` may return up to a millisecond early (the kernel's
    timer rounds), and a timeout that gives up early makes a retry count a caller cannot rely on."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        left_ms = math.ceil((deadline - time.monotonic()) * 1000)
        if sock.poll(max(0, left_ms), zmq.POLLIN):
            return True
        if left_ms <= 0:
            return False


async def poll_reply_async(sock: Any, timeout_ms: int) -> bool:
    """``poll_reply`` for an asyncio socket."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        left_ms = math.ceil((deadline - time.monotonic()) * 1000)
        if await sock.poll(max(0, left_ms), zmq.POLLIN):
            return True
        if left_ms <= 0:
            return False


def frame_subscriber_socket(ctx: zmq.Context, addr: str | None, avatar: str | None, curve: CurveClientKeys | None,
                hwm: int) -> Any:
    """A SUB socket on ``frame.<avatar>`` (or every avatar), at most ``hwm`` frames queued, connected to ``addr``
    (None: the caller connects it, to as many publishers as it follows)."""
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, hwm)
    if curve is not None:
        curve.apply(sock)
    sock.subscribe(FRAME_TOPIC + (avatar.encode() if avatar else b""))
    if addr is not None:
        sock.connect(addr)
    return sock
