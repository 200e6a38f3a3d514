"""Wire protocol v1: msgpack maps in, msgpack maps out. Every check of client input lives here.

A request is ``{"v": 1, "cmd": <name>, ...fields}``; a reply is ``{"ok": true, ...}`` or
``{"ok": false, "error": {"code", "message"}}``. ``parse_request`` turns bytes into one of the dataclasses below or
raises a typed ``EngineError``; nothing past this module sees unchecked input. docs/protocol.md has an example of
every message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from engine.animation.arkit import parse_controls as parse_arkit_controls
from engine.animation.marks import MAX_MARKS, Mark
from engine.animation.speech import validate_speech_motion
from engine.animation.timeline import DEFAULT_TRANSITION_MS, MAX_TRANSITION_MS, Keyframe
from engine.animation.turn import DEFAULT_TURN_MS, STATES
from engine.constants import (  # noqa: F401  (AUDIO_FORMATS, FRAME_TOPIC, MAX_AUDIO_SECONDS: re-exported)
    AUDIO_FORMATS,
    FRAME_TOPIC,
    MAX_AUDIO_SECONDS,
    MAX_CLIP_FPS,
    MIN_CLIP_FPS,
    PROTOCOL_VERSION,
    validate_expression,
    validate_intensity,
)
from engine.errors import BadRequest, EngineError, UnknownCommand, UnsupportedVersion

VERSION = PROTOCOL_VERSION
OUTPUTS = ("full", "crop")
MAX_KEYFRAMES = 10_000
DEFAULT_MAX_FPS = 60.0  # the default of the engine's --max-fps; the engine passes its setting to parse_request
MIN_FPS = 0.1  # slower than this is a still, not a stream (and keeps every clock wait short)


@dataclass(frozen=True)
class Health:
    pass


@dataclass(frozen=True)
class Expressions:
    pass


@dataclass(frozen=True)
class ListAvatars:
    pass


@dataclass(frozen=True)
class SetSource:
    image: bytes


@dataclass(frozen=True)
class DropSource:
    avatar: str


@dataclass(frozen=True)
class SetExpression:
    avatar: str
    expression: str
    intensity: float = 1.0
    transition_ms: float = DEFAULT_TRANSITION_MS


@dataclass(frozen=True)
class SetControls:
    avatar: str
    controls: dict[str, float] = field(default_factory=dict)
    transition_ms: float = DEFAULT_TRANSITION_MS
    smooth: bool = False
    keyframes: tuple[Keyframe, ...] = ()
    unrendered: tuple[str, ...] = ()  # ARKit names accepted but not drawn (told once in the reply)


@dataclass(frozen=True)
class Clear:
    avatar: str


@dataclass(frozen=True)
class SetIdle:
    avatar: str
    enabled: bool
    seed: int | None = None


@dataclass(frozen=True)
class Render:
    avatar: str | None = None
    image: bytes | None = None
    expression: str | None = None  # with intensity/controls: a one-off static state; none: the avatar's animation
    intensity: float = 1.0
    controls: dict[str, float] = field(default_factory=dict)
    output: str | None = None
    quality: int | None = None


@dataclass(frozen=True)
class Stream:
    avatar: str
    fps: float | None = None  # None: the engine's default rate; 0 stops
    epoch: int = 0  # the frame header's `epoch`: a cluster raises it each time the avatar moves to another replica


@dataclass(frozen=True)
class Speak:
    avatar: str
    audio: bytes
    format: str = "wav"
    sample_rate: int | None = None
    start: float | None = None  # engine time the first sample is heard; None: now
    append: bool = False
    speech_motion: float | None = None  # this audio's head/brow/blink gain; None: the avatar's
    marks: tuple[Mark, ...] = ()


@dataclass(frozen=True)
class SpeakClip:
    audio: bytes
    avatar: str | None = None
    image: bytes | None = None
    format: str = "wav"
    sample_rate: int | None = None
    expression: str = "neutral"
    intensity: float = 1.0
    fps: float = 25.0
    clip: str | None = None  # the caller's id for this clip, so that cancel_clip can stop it
    speech_motion: float | None = None
    marks: tuple[Mark, ...] = ()


@dataclass(frozen=True)
class SetSpeechMotion:
    avatar: str
    speech_motion: float


@dataclass(frozen=True)
class CancelClip:
    clip: str


@dataclass(frozen=True)
class SetTurn:
    avatar: str
    state: str  # one of turn.STATES
    transition_ms: float = DEFAULT_TURN_MS


@dataclass(frozen=True)
class UserAudio:
    """One chunk of the user's microphone: analysed on arrival, then dropped (never stored, never published)."""

    avatar: str
    samples: bytes = field(repr=False)  # little-endian int16 mono PCM, an even number of bytes
    sample_rate: int
    interrupt: bool = False


@dataclass(frozen=True)
class UserSpeech:
    avatar: str
    speaking: bool
    interrupt: bool = False


Request = (Health | Expressions | ListAvatars | SetSource | DropSource | SetExpression | SetControls | Clear | SetIdle
           | Render | Stream | Speak | SpeakClip | CancelClip | SetTurn | UserAudio | UserSpeech
           | SetSpeechMotion)


# --- field readers: each raises BadRequest naming the field --------------------------------------------------------

def _get(msg: Mapping[str, Any], name: str, default: Any = ..., ) -> Any:
    if name in msg:
        return msg[name]
    if default is ...:
        raise BadRequest(f"missing field '{name}'")
    return default


def _number(msg: Mapping[str, Any], name: str, default: Any = ..., lo: float | None = None,
            hi: float | None = None) -> float:
    value = _get(msg, name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"'{name}' must be a number, not {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise BadRequest(f"'{name}' must be finite, not {value}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise BadRequest(f"'{name}' must be within {lo}..{hi}, not {value}")
    return value


def _string(msg: Mapping[str, Any], name: str, default: Any = ..., choices: tuple[str, ...] | None = None) -> str:
    value = _get(msg, name, default)
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string, not {type(value).__name__}")
    if choices is not None and value not in choices:
        raise BadRequest(f"'{name}' must be one of {', '.join(choices)}, not {value!r}")
    return value


def _bytes(msg: Mapping[str, Any], name: str) -> bytes:
    value = _get(msg, name)
    if not isinstance(value, bytes):
        raise BadRequest(f"'{name}' must be binary (msgpack bin), not {type(value).__name__}")
    return value


def _bool(msg: Mapping[str, Any], name: str, default: Any = ...) -> bool:
    value = _get(msg, name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false, not {type(value).__name__}")
    return value


def _avatar(msg: Mapping[str, Any]) -> str:
    value = _string(msg, "avatar")
    if not 0 < len(value) <= 64:
        raise BadRequest("'avatar' must be a non-empty id of at most 64 characters")
    return value


def parse_controls(value: Any, name: str = "controls") -> dict[str, float]:
    """A map of control name -> value, each known, finite and inside its range (no silent clamping)."""
    return parse_controls_arkit(value, name)[0]


def parse_controls_arkit(value: Any, name: str = "controls") -> tuple[dict[str, float], tuple[str, ...]]:
    """Our controls and ARKit's 52 blendshape names -> (control values, ARKit names accepted but not drawn)."""
    if not isinstance(value, Mapping):
        raise BadRequest(f"'{name}' must be a map of control name to number")
    return parse_arkit_controls(value)


def _transition(msg: Mapping[str, Any]) -> float:
    return _number(msg, "transition_ms", DEFAULT_TRANSITION_MS, 0.0, MAX_TRANSITION_MS)


def _keyframes(value: Any) -> tuple[tuple[Keyframe, ...], list[str]]:
    if not isinstance(value, list | tuple) or len(value) > MAX_KEYFRAMES:
        raise BadRequest(f"'keyframes' must be a list of at most {MAX_KEYFRAMES} maps {{t, controls}}")
    frames, unrendered = [], []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise BadRequest(f"keyframes[{i}] must be a map {{t, controls}}")
        controls, skipped = parse_controls_arkit(_get(item, "controls"), f"keyframes[{i}]")
        frames.append(Keyframe(_number(item, "t", lo=0.0), controls))
        unrendered.extend(skipped)
    if any(b.t < a.t for a, b in zip(frames, frames[1:], strict=False)):
        raise BadRequest("keyframes must be in time order")
    return tuple(frames), unrendered


def _set_controls(m: Mapping[str, Any]) -> SetControls:
    if "controls" not in m and "keyframes" not in m:
        raise BadRequest("set_controls needs 'controls' or 'keyframes'")
    controls, unrendered = parse_controls_arkit(m.get("controls", {}))
    keyframes, more = _keyframes(m.get("keyframes", []))
    return SetControls(_avatar(m), controls, _transition(m), _bool(m, "smooth", False), keyframes,
                       tuple(dict.fromkeys([*unrendered, *more])))


def _audio_fields(m: Mapping[str, Any]) -> tuple[bytes, str, int | None]:
    """audio bytes, format and (raw PCM only) sample rate; the bytes themselves are checked when decoded."""
    audio = _bytes(m, "audio")
    fmt = _string(m, "format", "wav", AUDIO_FORMATS)
    rate = m.get("sample_rate")
    if fmt == "wav":
        if rate is not None:
            raise BadRequest("'sample_rate' is for raw PCM only; a WAV carries its own")
        return audio, fmt, None
    if isinstance(rate, bool) or not isinstance(rate, int) or not 8000 <= rate <= 192_000:
        raise BadRequest(f"'{fmt}' needs 'sample_rate', an integer in 8000..192000, not {rate!r}")
    return audio, fmt, rate


def _speech_motion(m: Mapping[str, Any]) -> float | None:
    return validate_speech_motion(m["speech_motion"]) if m.get("speech_motion") is not None else None


def parse_marks(value: Any) -> tuple[Mark, ...]:
    """``marks``: a list of maps {t, expression, intensity?, controls?, transition_ms?}; t >= 0 here, and within
    the audio once it is decoded (``check_marks``)."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or len(value) > MAX_MARKS:
        raise BadRequest(f"'marks' must be a list of at most {MAX_MARKS} maps {{t, expression, intensity?, "
                         "controls?, transition_ms?}")
    marks = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise BadRequest(f"marks[{i}] must be a map {{t, expression, intensity?, controls?, transition_ms?}}")
        unknown = set(item) - {"t", "expression", "intensity", "controls", "transition_ms"}
        if unknown:
            raise BadRequest(f"marks[{i}] has unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        try:
            t = _number(item, "t", lo=0.0)
            expression = validate_expression(_get(item, "expression"))
            intensity = validate_intensity(item.get("intensity", 1.0))
            controls = parse_controls(item["controls"]) if item.get("controls") is not None else {}
            ms = _number(item, "transition_ms", lo=0.0, hi=MAX_TRANSITION_MS) \
                if item.get("transition_ms") is not None else None
        except BadRequest as exc:
            raise BadRequest(f"marks[{i}]: {exc.message}") from None
        marks.append(Mark(t, expression, intensity, controls, ms))
    return tuple(sorted(marks, key=lambda k: k.t))


def check_marks(marks: tuple[Mark, ...], duration: float) -> None:
    """Every mark's t within its audio (0..duration s): known only once the audio is decoded."""
    for mark in marks:
        if mark.t > duration + 1e-9:
            raise BadRequest(f"a mark at t={mark.t:g} s is past the end of its audio ({duration:.3f} s)")


def _speak(m: Mapping[str, Any]) -> Speak:
    audio, fmt, rate = _audio_fields(m)
    start = _number(m, "start", lo=0.0) if m.get("start") is not None else None
    return Speak(_avatar(m), audio, fmt, rate, start, _bool(m, "append", False), _speech_motion(m),
                 parse_marks(m.get("marks")))


def _speak_clip(m: Mapping[str, Any]) -> SpeakClip:
    if ("avatar" in m) == ("image" in m):
        raise BadRequest("speak_clip takes 'avatar' or 'image' (one of them)")
    audio, fmt, rate = _audio_fields(m)
    return SpeakClip(audio, _avatar(m) if "avatar" in m else None, _bytes(m, "image") if "image" in m else None,
                     fmt, rate, validate_expression(m.get("expression", "neutral")),
                     validate_intensity(m.get("intensity", 1.0)), _number(m, "fps", 25.0, MIN_CLIP_FPS, MAX_CLIP_FPS),
                     _clip_id(m) if m.get("clip") is not None else None, _speech_motion(m),
                     parse_marks(m.get("marks")))


MAX_CLIP_ID = 64


def _clip_id(m: Mapping[str, Any]) -> str:
    clip = _get(m, "clip")
    if not isinstance(clip, str) or not 1 <= len(clip) <= MAX_CLIP_ID or not clip.isprintable():
        raise BadRequest(f"'clip' must be a printable string of 1..{MAX_CLIP_ID} characters")
    return clip


def _render(m: Mapping[str, Any]) -> Render:
    if "avatar" in m and "image" in m:
        raise BadRequest("render takes 'avatar' or 'image', not both")
    quality = m.get("quality")
    return Render(
        avatar=_avatar(m) if "avatar" in m else None,
        image=_bytes(m, "image") if "image" in m else None,
        expression=validate_expression(m["expression"]) if m.get("expression") is not None else None,
        intensity=validate_intensity(m.get("intensity", 1.0)),
        controls=parse_controls(m.get("controls", {})),
        output=_string(m, "output", None, OUTPUTS) if m.get("output") is not None else None,
        quality=int(_number(m, "quality", 1, 1, 100)) if quality is not None else None,
    )


def _epoch(m: Mapping[str, Any]) -> int:
    epoch = m.get("epoch", 0)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < 2**31:
        raise BadRequest("'epoch' must be an integer in 0..2**31-1")
    return epoch


def _set_idle(m: Mapping[str, Any]) -> SetIdle:
    seed = m.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise BadRequest("'seed' must be a non-negative integer")
    return SetIdle(_avatar(m), _bool(m, "enabled"), seed)


USER_AUDIO_RATES = (8000, 48_000)
MAX_USER_AUDIO_S = 0.5  # one chunk of the user's microphone: 10-500 ms (analysed on the command thread, ~1 ms)


def _user_audio(m: Mapping[str, Any]) -> UserAudio:
    audio = _bytes(m, "audio")
    rate = m.get("sample_rate")
    lo, hi = USER_AUDIO_RATES
    if isinstance(rate, bool) or not isinstance(rate, int) or not lo <= rate <= hi:
        raise BadRequest(f"'sample_rate' must be an integer in {lo}..{hi}, not {rate!r}")
    if not audio or len(audio) % 2:
        raise BadRequest("'audio' must be little-endian int16 mono PCM: a non-empty, even number of bytes")
    if len(audio) // 2 > MAX_USER_AUDIO_S * rate:
        raise BadRequest(f"'audio' is {len(audio) // 2 / rate:.3f} s; stream the microphone in chunks of at most "
                         f"{MAX_USER_AUDIO_S:g} s")
    return UserAudio(_avatar(m), audio, rate, _bool(m, "interrupt", False))


_PARSERS = {
    "health": lambda m: Health(),
    "expressions": lambda m: Expressions(),
    "list_avatars": lambda m: ListAvatars(),
    "set_source": lambda m: SetSource(_bytes(m, "image")),
    "drop_source": lambda m: DropSource(_avatar(m)),
    "set_expression": lambda m: SetExpression(_avatar(m), validate_expression(_get(m, "expression")),
                                              validate_intensity(m.get("intensity", 1.0)), _transition(m)),
    "set_controls": _set_controls,
    "clear": lambda m: Clear(_avatar(m)),
    "set_idle": _set_idle,
    "render": _render,
    "stream": lambda m: Stream(_avatar(m), _number(m, "fps", lo=0.0) if m.get("fps") is not None else None,
                               _epoch(m)),
    "speak": _speak,
    "speak_clip": _speak_clip,
    "cancel_clip": lambda m: CancelClip(_clip_id(m)),
    "set_turn": lambda m: SetTurn(_avatar(m), _string(m, "state", choices=STATES),
                                  _number(m, "transition_ms", DEFAULT_TURN_MS, 0.0, MAX_TRANSITION_MS)),
    "user_audio": _user_audio,
    "user_speech": lambda m: UserSpeech(_avatar(m), _bool(m, "speaking"), _bool(m, "interrupt", False)),
    "set_speech_motion": lambda m: SetSpeechMotion(_avatar(m), validate_speech_motion(_get(m, "speech_motion"))),
}
COMMANDS: tuple[str, ...] = tuple(_PARSERS)


def _check_fps(req: Stream, max_fps: float) -> Stream:
    if req.fps is not None and req.fps != 0 and not MIN_FPS <= req.fps <= max_fps:
        raise BadRequest(f"'fps' must be 0 (stop) or within {MIN_FPS}..{max_fps}, not {req.fps}")
    return req


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """A ROUTER message -> (routing envelope, body). REQ peers send ``[id, b"", body]``; a DEALER peer may leave
    out the empty delimiter (``[id, body]``): its reply then goes back without one, as it came."""
    if b"" in frames:
        split = frames.index(b"") + 1
        return frames[:split], frames[split:]
    return frames[:1], frames[1:]


def parse_request(raw: bytes, max_bytes: int, max_fps: float = DEFAULT_MAX_FPS) -> Request:
    """Bytes off the socket -> a checked request dataclass, or a typed error."""
    if len(raw) > max_bytes:
        raise BadRequest(f"message is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        msg = msgpack.unpackb(raw, raw=False, strict_map_key=False, max_bin_len=max_bytes, max_str_len=1 << 20,
                              max_array_len=MAX_KEYFRAMES, max_map_len=4096)
    except Exception as exc:  # msgpack raises several unrelated types for malformed input
        raise BadRequest(f"message is not valid msgpack: {type(exc).__name__}") from exc
    if not isinstance(msg, dict):
        raise BadRequest(f"message must be a msgpack map, not {type(msg).__name__}")
    version = msg.get("v")
    if type(version) is not int or version != VERSION:  # true == 1 and 1.0 == 1 in Python: not versions
        raise UnsupportedVersion(f"protocol version must be {VERSION}, not {version!r}")
    cmd = msg.get("cmd")
    parser = _PARSERS.get(cmd) if isinstance(cmd, str) else None
    if parser is None:
        raise UnknownCommand(f"unknown command {cmd!r}; known: {', '.join(COMMANDS)}")
    request = parser(msg)
    return _check_fps(request, max_fps) if isinstance(request, Stream) else request


def pack(message: Mapping[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def ok(renderer: str, **fields: Any) -> dict[str, Any]:
    return {"ok": True, "renderer": renderer, **fields}


def error(err: EngineError, renderer: str) -> dict[str, Any]:
    return {"ok": False, "renderer": renderer, "error": err.to_wire()}
