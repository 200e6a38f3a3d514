"""Where each client command goes and what its reply changes, by the fields the engine itself reads.

- an upload (``set_source``, ``render``/``speak_clip`` with ``image``) goes where its hash lives or to the
  least-loaded replica, and its reply confirms (or undoes) the placement;
- a command naming a placed avatar goes to its replica: ``stream`` stamped with the avatar's ``epoch`` (its rate
  kept for a move), ``drop_source`` forgets it, the look commands it accepts are remembered (look.py);
- anything else goes to any replica, round robin; ``health`` and ``list_avatars`` replies are widened to the whole
  cluster: every replica's avatars, streams and turns (those of the other replicas as of their last health poll),
  and ``health`` gains ``cluster``.

Only what it routes by is parsed; every check of client input stays in the engine, so a malformed message gets
exactly the engine's error reply. A reply that cannot be read changes nothing here: it is passed on as it came
(the client's own reader says what is wrong with it), or, where the router would widen it, answered as an error.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import msgpack

from engine import protocol as p
from engine.avatars import DEFAULT_ALIAS, avatar_id
from engine.cluster.backends import OnReply
from engine.cluster.look import LOOK_COMMANDS
from engine.cluster.placement import Placement
from engine.errors import Busy, EngineError

UPLOADS = ("set_source", "render", "speak_clip")

Forward = Callable[[str, bytes, OnReply], None]


def read_reply(raw: bytes | None) -> dict[str, Any] | None:
    """A replica's reply as a map; None for anything else (garbage, not a map)."""
    try:
        reply = msgpack.unpackb(raw or b"", raw=False, strict_map_key=False)
    except Exception:  # msgpack raises several unrelated types for malformed input
        return None
    return reply if isinstance(reply, dict) else None


def ok(raw: bytes | None) -> bool:
    reply = read_reply(raw)
    return reply is not None and bool(reply.get("ok"))


def peek(body: list[bytes], max_bytes: int) -> dict[str, Any] | None:
    """The message as a map, for routing only; None when it is not one (the engine then answers the error)."""
    if len(body) != 1 or len(body[0]) > max_bytes:
        return None
    try:
        msg = msgpack.unpackb(body[0], raw=False, strict_map_key=False, max_bin_len=max_bytes)
    except Exception:
        return None
    return msg if isinstance(msg, dict) else None


class Routes:
    def __init__(self, placement: Placement, forward: Forward, takers: Callable[[], list[str]],
                 cluster_status: Callable[[], dict[str, Any]], max_message: int) -> None:
        self.placement = placement
        self._forward, self._takers, self._status = forward, takers, cluster_status
        self.max_message = max_message
        self._rr = itertools.count()

    def route(self, body: list[bytes], respond: OnReply) -> None:
        msg = peek(body, self.max_message)
        cmd = msg.get("cmd") if msg is not None else None
        image = msg.get("image") if msg is not None else None
        avatar = msg.get("avatar") if msg is not None else None
        raw = body[0] if len(body) == 1 else b""
        if cmd in UPLOADS and isinstance(image, bytes) and (cmd == "set_source" or avatar is None):
            self._upload(avatar_id(image), image, raw, respond)
            return
        if isinstance(avatar, str) and avatar != DEFAULT_ALIAS:
            placed = self.placement.where(avatar)
            if placed is not None:
                if placed.replica is None:
                    respond(None, Busy(f"avatar {avatar} is moving to another replica; retry shortly"))
                    return
                self._forward(placed.replica, *self._on_avatar(cmd, avatar, msg, raw, placed.epoch, respond))
                return
        takers = self._takers()
        if not takers:
            respond(None, Busy("no engine replica is running yet; retry shortly"))
            return
        target = takers[next(self._rr) % len(takers)]
        if cmd in ("health", "list_avatars"):
            self._forward(target, raw, lambda reply, exc: respond(*self._widen(cmd, reply, exc)))
        else:
            self._forward(target, raw, respond)

    def _upload(self, aid: str, image: bytes, raw: bytes, respond: OnReply) -> None:
        target = self.placement.home_for_upload(aid, image)
        if target is None:
            respond(None, Busy(f"avatar {aid} is moving to another replica (or none runs); retry shortly"))
            return

        def confirmed(reply: bytes | None, exc: EngineError | None) -> None:
            self.placement.confirm(aid, target, exc is None and ok(reply))
            respond(reply, exc)

        self._forward(target, raw, confirmed)

    def _on_avatar(self, cmd: Any, avatar: str, msg: dict[str, Any] | None, raw: bytes, epoch: int,
                   respond: OnReply) -> tuple[bytes, OnReply]:
        """The body to send for a placed avatar and what its reply changes in the placement."""
        if cmd == "stream" and msg is not None:
            def streamed(reply: bytes | None, exc: EngineError | None) -> None:
                answer = read_reply(reply) if exc is None else None
                if answer is not None and answer.get("ok"):
                    with contextlib.suppress(TypeError, ValueError):  # a reply without a rate changes nothing
                        self.placement.set_stream(avatar, float(answer.get("fps", 0.0)))
                    with contextlib.suppress(EngineError):  # the engine accepted it, so it parses: its framing
                        self.placement.remember(avatar, p.parse_request(raw, self.max_message))
                respond(reply, exc)

            return p.pack({**msg, "epoch": epoch}), streamed
        if cmd == "drop_source":
            def dropped(reply: bytes | None, exc: EngineError | None) -> None:
                if exc is None and ok(reply):
                    self.placement.forget(avatar)
                respond(reply, exc)

            return raw, dropped
        if cmd in LOOK_COMMANDS:
            def looked(reply: bytes | None, exc: EngineError | None) -> None:
                if exc is None and ok(reply):  # the engine accepted it, so it parses
                    with contextlib.suppress(EngineError):
                        self.placement.remember(avatar, p.parse_request(raw, self.max_message))
                respond(reply, exc)

            return raw, looked
        return raw, respond

    def _widen(self, cmd: str, reply: bytes | None, exc: EngineError | None) -> tuple[bytes | None, EngineError | None]:
        """health and list_avatars of one replica -> of the whole cluster."""
        if exc is not None:
            return reply, exc
        answer = read_reply(reply)
        if answer is None:
            return None, EngineError("a replica sent a reply that is not a msgpack map")
        if not answer.get("ok"):
            return reply, None
        status = self._status()
        placed = [aid for r in status.get("replicas", []) for aid in r.get("avatars", [])]
        streams = status.get("streams", {})
        # Every replica's avatars' turns (as of its last health poll), this replica's own as it answered now.
        own = answer.get("turns") if isinstance(answer.get("turns"), dict) else {}
        turns = {**status.get("turns", {}), **own}
        if cmd == "health":
            default = [answer["default_avatar"]] if answer.get("default_avatar") else []
            answer.update(avatars=len(set(placed) | set(default)), streams=streams, turns=turns, cluster=status)
        else:
            listed = answer.get("avatars") if isinstance(answer.get("avatars"), list) else []
            answer.update(avatars=list(dict.fromkeys([*listed, *placed])), streams=streams, turns=turns)
        return p.pack(answer), None
