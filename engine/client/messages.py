"""What travels: typed replies, published frames and audio, keyframes, the clock offset; building and checking maps.

Pure functions of bytes and maps: no sockets here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import msgpack

from engine.client.errors import BadReply, EngineReplyError
from engine.constants import AUDIO_TOPIC, FRAME_TOPIC, PROTOCOL_VERSION


@dataclass(frozen=True)
class Reply:
    """Every reply names the renderer drawing the face; ``raw`` keeps the whole map for fields added later."""

    renderer: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class HealthReply(Reply):
    status: str = ""
    version: int = 0
    now: float = 0.0
    renderer_reason: str = ""
    renderer_info: dict[str, Any] = field(default_factory=dict)
    face_detector: str = ""
    face_detector_reason: str = ""
    avatars: int = 0
    default_avatar: str = ""
    streams: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, Any] = field(default_factory=dict)
    caches: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, Any] | None = None
    turns: dict[str, str] = field(default_factory=dict)  # avatar id -> turn state (idle, listening, ...)

    @property
    def ready(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ExpressionsReply(Reply):
    expressions: list[str] = field(default_factory=list)
    intensities: dict[str, float] = field(default_factory=dict)
    controls: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SourceReply(Reply):
    avatar: str = ""
    cached: bool = False
    faces: int = 0
    detector: str = ""
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class AvatarReply(Reply):
    avatar: str = ""
    now: float | None = None


@dataclass(frozen=True)
class TurnReply(AvatarReply):
    """set_turn, user_audio, user_speech, clear: the avatar's turn state after the command."""

    turn: str = ""


@dataclass(frozen=True)
class SpeakReply(Reply):
    """When the audio is heard on the engine clock (start, end) and how long it is (seconds)."""

    avatar: str = ""
    start: float = 0.0
    end: float = 0.0
    duration: float = 0.0


@dataclass(frozen=True)
class AvatarsReply(Reply):
    avatars: list[str] = field(default_factory=list)
    default: str = ""
    streams: dict[str, Any] = field(default_factory=dict)
    turns: dict[str, str] = field(default_factory=dict)  # avatar id -> turn state


@dataclass(frozen=True)
class RenderReply(Reply):
    avatar: str = ""
    cached: bool = False
    jpeg: bytes = b""
    header: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamReply(Reply):
    avatar: str = ""
    fps: float = 0.0
    topic: str = ""


@dataclass(frozen=True)
class AudioMessage:
    """One message of the engine's speech audio (PUB topic ``audio.<avatar>``, docs/protocol.md), parsed."""

    kind: str  # "pcm" | "cut"
    avatar: str
    seq: int
    ts: float  # engine seconds: when the first sample is heard (pcm), or from when nothing is heard (cut)
    sample_rate: int
    pcm: bytes  # little-endian int16 mono; empty for a cut

    @property
    def n_samples(self) -> int:
        return len(self.pcm) // 2

    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate if self.sample_rate else 0.0


def parse_audio(parts: Sequence[bytes]) -> AudioMessage:
    """A received ``[audio.<avatar>, header, pcm]`` -> AudioMessage; ValueError on anything malformed."""
    if len(parts) != 3 or not parts[0].startswith(AUDIO_TOPIC):
        raise ValueError("an audio message is [audio.<avatar>, header, pcm]")
    header = msgpack.unpackb(parts[1])
    if not isinstance(header, dict):
        raise ValueError("an audio header is a map")
    kind = header.get("kind")
    if kind not in ("pcm", "cut") or header.get("format", "s16le") != "s16le" or header.get("channels", 1) != 1:
        raise ValueError(f"unsupported audio message {header!r}")
    pcm = bytes(parts[2]) if kind == "pcm" else b""
    if len(pcm) % 2:
        raise ValueError("s16le audio has an odd byte count")
    return AudioMessage(kind, str(header["avatar"]), int(header["seq"]), float(header["ts"]),
                        int(header.get("sample_rate", 0)), pcm)


@dataclass(frozen=True)
class Frame:
    """One published frame: ``topic`` is ``frame.<avatar>``, ``header`` the engine's map (seq, ts, ...)."""

    topic: str
    header: dict[str, Any]
    jpeg: bytes

    @property
    def avatar(self) -> str:
        return self.topic[len(FRAME_TOPIC):]

    @property
    def seq(self) -> int:
        return int(self.header.get("seq", -1))

    @property
    def ts(self) -> float:
        return float(self.header.get("ts", 0.0))

    @property
    def epoch(self) -> int:
        """Raised each time a cluster moves the avatar to another replica (seq restarts there); 0 on one engine."""
        return int(self.header.get("epoch", 0))


@dataclass(frozen=True)
class ClockOffset:
    """``engine_time = client_time + offset`` (seconds, time.monotonic); ``rtt`` of the sample it came from."""

    offset: float
    rtt: float

    def to_engine(self, client_time: float | None = None) -> float:
        return (time.monotonic() if client_time is None else client_time) + self.offset


@dataclass(frozen=True)
class Keyframe:
    """A scheduled control set at an engine time (``set_controls``' ``keyframes``)."""

    t: float
    controls: dict[str, float]


R = TypeVar("R", bound=Reply)


def parse_reply(cls: type[R], reply: Mapping[str, Any]) -> R:
    """Build a typed reply from the fields it knows; unknown fields stay in ``raw``."""
    known = {f.name for f in fields(cls)} - {"raw"}
    return cls(**{k: v for k, v in reply.items() if k in known}, raw=dict(reply))


def check_reply(reply: Any) -> dict[str, Any]:
    """Raise the engine's own error for ``ok: false``; return the map otherwise."""
    if not isinstance(reply, dict):
        raise BadReply(f"the engine sent a {type(reply).__name__}, not a map")
    if not reply.get("ok"):
        err = reply.get("error")
        err = err if isinstance(err, dict) else {}
        raise EngineReplyError(str(err.get("code", "internal")), str(err.get("message", "engine error")), reply)
    return reply


def build_message(cmd: str, fields_: Mapping[str, Any]) -> dict[str, Any]:
    """``{"v": 1, "cmd": cmd, ...}``, leaving out fields given as None (the engine's defaults apply)."""
    message: dict[str, Any] = {"v": PROTOCOL_VERSION, "cmd": cmd}
    for key, value in fields_.items():
        if value is None:
            continue
        if key == "keyframes":
            value = [{"t": k.t, "controls": dict(k.controls)} if isinstance(k, Keyframe) else k for k in value]
        message[key] = value
    return message


def decode_reply(data: bytes) -> dict[str, Any]:
    try:
        reply = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise BadReply(f"the engine sent bytes that are not msgpack: {exc}") from None
    if not isinstance(reply, dict):
        raise BadReply(f"the engine sent a {type(reply).__name__}, not a map")
    return reply


def best_offset(samples: Sequence[tuple[float, float, float]]) -> ClockOffset:
    """The sample with the smallest round trip bounds the error best (Cristian's algorithm)."""
    sent, now, received = min(samples, key=lambda s: s[2] - s[0])
    return ClockOffset(now - (sent + received) / 2, received - sent)


def parse_frame(parts: list[bytes]) -> Frame:
    if len(parts) != 3:
        raise BadReply(f"a frame has 3 parts, this one {len(parts)}")
    try:
        header = msgpack.unpackb(parts[1], raw=False)
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise BadReply(f"a frame header that is not msgpack: {exc}") from None
    return Frame(parts[0].decode(), header if isinstance(header, dict) else {}, parts[2])
