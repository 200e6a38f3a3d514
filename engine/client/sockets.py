"""Socket factories shared by the clients and the subscribers: linger 0, CURVE when keys are given, SUB filters."""

from __future__ import annotations

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
