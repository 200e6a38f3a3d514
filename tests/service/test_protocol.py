"""Protocol v1 parsing in isolation: every field check, without sockets."""

from __future__ import annotations

import msgpack
import pytest

from engine import protocol as p
from engine.cache import ByteLRU
from engine.errors import BadRequest, UnknownCommand, UnsupportedVersion


def parse(message: dict) -> p.Request:
    return p.parse_request(msgpack.packb(message, use_bin_type=True), max_bytes=1 << 20)


def test_every_command_parses_with_its_defaults() -> None:
    assert isinstance(parse({"v": 1, "cmd": "health"}), p.Health)
    assert parse({"v": 1, "cmd": "set_source", "image": b"x"}) == p.SetSource(b"x")
    assert parse({"v": 1, "cmd": "set_expression", "avatar": "a", "expression": "happy"}) == p.SetExpression(
        "a", "happy", 1.0, 250.0)
    assert parse({"v": 1, "cmd": "render", "avatar": "a"}) == p.Render(avatar="a")
    assert parse({"v": 1, "cmd": "stream", "avatar": "a"}) == p.Stream("a", None)
    assert parse({"v": 1, "cmd": "stream", "avatar": "a", "fps": 0}) == p.Stream("a", 0.0)
    sc = parse({"v": 1, "cmd": "set_controls", "avatar": "a", "controls": {"jawOpen": 1},
                "keyframes": [{"t": 5, "controls": {"eyeBlink": 1.0}}]})
    assert sc.controls == {"jawOpen": 1.0} and sc.keyframes == (p.Keyframe(5.0, {"eyeBlink": 1.0}),)
    assert parse({"v": 1, "cmd": "set_turn", "avatar": "a", "state": "thinking"}) == p.SetTurn("a", "thinking", 250.0)
    assert parse({"v": 1, "cmd": "user_audio", "avatar": "a", "audio": b"\x00\x01" * 160, "sample_rate": 16000}
                 ) == p.UserAudio("a", b"\x00\x01" * 160, 16000, False)
    assert parse({"v": 1, "cmd": "user_speech", "avatar": "a", "speaking": True, "interrupt": True}
                 ) == p.UserSpeech("a", True, True)


@pytest.mark.parametrize(("message", "error"), [
    ({"cmd": "health"}, UnsupportedVersion),
    ({"v": 1}, UnknownCommand),
    ({"v": 1, "cmd": "render", "avatar": "a", "image": b"x"}, BadRequest),
    ({"v": 1, "cmd": "render", "avatar": ""}, BadRequest),
    ({"v": 1, "cmd": "render", "avatar": "a", "intensity": True}, BadRequest),
    ({"v": 1, "cmd": "render", "avatar": "a", "output": "poster"}, BadRequest),
    ({"v": 1, "cmd": "set_controls", "avatar": "a"}, BadRequest),
    ({"v": 1, "cmd": "set_controls", "avatar": "a", "controls": [1]}, BadRequest),
    ({"v": 1, "cmd": "set_controls", "avatar": "a", "keyframes": [{"t": 2, "controls": {}},
                                                                  {"t": 1, "controls": {}}]}, BadRequest),
    ({"v": 1, "cmd": "set_idle", "avatar": "a", "enabled": "yes"}, BadRequest),
    ({"v": 1, "cmd": "set_idle", "avatar": "a", "enabled": True, "seed": -1}, BadRequest),
    ({"v": 1, "cmd": "stream", "avatar": "a", "fps": -1}, BadRequest),
    ({"v": 1, "cmd": "stream", "avatar": "a", "fps": 1e-10}, BadRequest),
    ({"v": 1, "cmd": "stream", "avatar": "a", "fps": 61}, BadRequest),
    ({"v": 1, "cmd": "set_turn", "avatar": "a", "state": "dreaming"}, BadRequest),
    ({"v": 1, "cmd": "set_turn", "avatar": "a", "state": "idle", "transition_ms": -1}, BadRequest),
    ({"v": 1, "cmd": "user_audio", "avatar": "a", "audio": b"\x00" * 3, "sample_rate": 16000}, BadRequest),
    ({"v": 1, "cmd": "user_audio", "avatar": "a", "audio": b"", "sample_rate": 16000}, BadRequest),
    ({"v": 1, "cmd": "user_audio", "avatar": "a", "audio": b"\x00" * 2, "sample_rate": 96000}, BadRequest),
    ({"v": 1, "cmd": "user_audio", "avatar": "a", "audio": b"\x00" * 16002, "sample_rate": 16000}, BadRequest),
    ({"v": 1, "cmd": "user_audio", "avatar": "a", "audio": "text", "sample_rate": 16000}, BadRequest),
    ({"v": 1, "cmd": "user_speech", "avatar": "a", "speaking": 1}, BadRequest),
    ({"v": 1, "cmd": "user_speech", "avatar": "a", "speaking": True, "interrupt": "yes"}, BadRequest),
    ({"v": True, "cmd": "health"}, UnsupportedVersion),
    ({"v": 1.0, "cmd": "health"}, UnsupportedVersion),
])
def test_refusals(message: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse(message)


def test_size_limit_and_garbage() -> None:
    with pytest.raises(BadRequest, match="limit"):
        p.parse_request(b"\x80" * 100, max_bytes=10)
    for raw in (b"", b"\xc1", msgpack.packb("text"), msgpack.packb({"v": 1, "cmd": "health"})[:-3]):
        with pytest.raises(BadRequest):
            p.parse_request(raw, max_bytes=100)


def test_lru_is_bounded_in_bytes_and_counts() -> None:
    lru: ByteLRU[bytes] = ByteLRU(10, len, pinned=lambda key: key == "pin")
    lru.put("pin", b"1234")
    lru.put("a", b"1234")
    assert lru.get("a") == b"1234" and lru.get("zz") is None
    evicted = lru.put("b", b"1234")  # 12 bytes > 10: the oldest unpinned ("a") goes
    assert evicted == ["a"] and lru.list_keys() == ["pin", "b"]
    assert lru.put("huge", b"x" * 11) == [] and lru.peek("huge") is None
    stats = lru.stats()
    assert (stats.hits, stats.misses, stats.evictions, stats.bytes) == (1, 1, 1, 8)
