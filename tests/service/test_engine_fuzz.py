"""Hostile command messages, bounded and seeded (issue 12's adversarial run, kept in the suite).

Every message gets a reply, no reply is ``internal`` (that would be a bug reaching the client), and the engine is
alive and healthy afterwards with no thread dead. LP_FUZZ_N sets the count (default 1500; the issue's run: 10,000).
"""

from __future__ import annotations

import io
import os
import random

import msgpack
import numpy as np
import zmq
from PIL import Image

from engine.protocol import COMMANDS
from tests.service.conftest import EngineProcess

FIELDS = ("avatar", "image", "expression", "intensity", "transition_ms", "controls", "keyframes", "smooth",
          "enabled", "seed", "output", "quality", "fps", "t")


def _png(side: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 90, np.uint8)).save(out, format="PNG")
    return out.getvalue()


def hostile_values(rng: random.Random) -> list[object]:
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    return [None, True, False, -1, 0, 1, 2**64 - 1, -(2**63), 1e-10, 1e308, -1e308, float("nan"), float("inf"),
            "", "default", "x" * 5000, "\u202e\u0000", b"", b"\x00" * 64, rng.randbytes(300), _png(1), _png(40),
            [], [1] * 50, deep, {}, {"jawOpen": 2.0}, {"jawOpen": 0.5}, {"nope": 1}, {1: 2},
            [{"t": 1.0, "controls": {"jawOpen": 0.2}}], [{"t": -1}], "happy", "angry", "crop", 0.5, 61, 1e-3]


def message(rng: random.Random, values: list[object]) -> bytes | list[bytes]:
    kind = rng.random()
    if kind < 0.05:
        return rng.randbytes(rng.randint(0, 200))  # not msgpack, or something else
    if kind < 0.08:
        return [b"", msgpack.packb({"v": 1, "cmd": "health"}), b"extra"]  # more frames than one
    msg: dict[object, object] = {"v": 1 if rng.random() < 0.85 else rng.choice([True, 1.0, "1", None, 2]),
                                 "cmd": rng.choice(COMMANDS) if rng.random() < 0.9 else rng.choice(["dance", 7, None])}
    for name in rng.sample(FIELDS, rng.randint(0, 5)):
        msg[name] = rng.choice(values)
    if rng.random() < 0.1:
        msg[rng.choice([1, b"bin", 2.5])] = "odd key"
    return msgpack.packb(msg, use_bin_type=True)


def test_hostile_messages_get_typed_answers_and_hurt_nothing(engine: EngineProcess) -> None:
    rng = random.Random(12)
    values = hostile_values(rng)
    count = int(os.environ.get("LP_FUZZ_N", "1500"))
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(engine.command_addr)
    codes: dict[str, int] = {}
    try:
        for i in range(count):
            msg = message(rng, values)
            dealer.send_multipart(msg if isinstance(msg, list) else [b"", msg])
            assert dealer.poll(30_000), f"message {i} got no reply: {msg!r:.300}"
            reply = msgpack.unpackb(dealer.recv_multipart()[-1], raw=False, strict_map_key=False)
            code = "ok" if reply["ok"] else reply["error"]["code"]
            assert code not in ("internal", "render_failed"), (msg, reply)  # a bug reached the client
            codes[code] = codes.get(code, 0) + 1
    finally:
        dealer.close(0)
        engine.request({"v": 1, "cmd": "stream", "avatar": "default", "fps": 0})
    print(f"{count} hostile messages: {codes}")
    health = engine.request({"v": 1, "cmd": "health"})
    assert engine.alive() and health["status"] == "ok" and "dead_threads" not in health, health
    assert codes.get("bad_request", 0) > count // 3  # the fuzz mostly reached the field checks, as intended
