"""The command helpers, one table (COMMANDS): both clients get a method per row, blocking or awaitable."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

from engine.client.errors import EngineReplyError
from engine.client.messages import (
    AvatarReply,
    AvatarsReply,
    ExpressionsReply,
    HealthReply,
    Keyframe,
    RenderReply,
    Reply,
    SourceReply,
    SpeakReply,
    StreamReply,
    TurnReply,
)

R = TypeVar("R", bound=Reply)
T = TypeVar("T")

# One row per command helper. A row is a function whose signature and docstring are the helper's, returning the
# command's fields (None: left out, the engine's default applies); ``command`` names the wire command and the typed
# reply. EngineClient and AsyncEngineClient both get a method per row (blocking and awaitable): nothing is mirrored.

P = ParamSpec("P")


@dataclass(frozen=True)
class Command(Generic[P, R]):
    """A command helper: the wire ``name``, the typed ``reply`` and ``fields`` (helper arguments -> message fields).

    A ``timeout_ms`` key in the fields is the request's timeout, not a message field (``call``'s own argument)."""

    name: str
    reply: type[R]
    fields: Callable[P, dict[str, Any]]

    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fields).replace(return_annotation=self.reply.__name__)


def command(name: str, reply: type[R]) -> Callable[[Callable[P, dict[str, Any]]], Command[P, R]]:
    def make(fields_: Callable[P, dict[str, Any]]) -> Command[P, R]:
        return Command(name, reply, fields_)
    return make


def _dict(values: Mapping[str, float] | None) -> dict[str, float] | None:
    return None if values is None else dict(values)


@command("health", HealthReply)
def _health(timeout_ms: int | None = None) -> dict[str, Any]:
    """The engine's status (ok, starting, failed), renderer, avatars, streams, frame timings and its clock (now)."""
    return {"timeout_ms": timeout_ms}


@command("expressions", ExpressionsReply)
def _expressions() -> dict[str, Any]:
    """The expression presets, the intensity range and every control with its range."""
    return {}


@command("list_avatars", AvatarsReply)
def _list_avatars() -> dict[str, Any]:
    """The resident avatars, the default one and the streams running."""
    return {}


@command("set_source", SourceReply)
def _set_source(image: bytes) -> dict[str, Any]:
    """A portrait (JPEG, PNG or WebP bytes) becomes an avatar; its id is derived from the bytes (cached)."""
    return {"image": image}


@command("drop_source", AvatarReply)
def _drop_source(avatar: str) -> dict[str, Any]:
    """Forget an avatar (its stream stops)."""
    return {"avatar": avatar}


@command("set_expression", AvatarReply)
def _set_expression(avatar: str, expression: str, intensity: float | None = None,
                    transition_ms: float | None = None) -> dict[str, Any]:
    """Ease an avatar into a preset at an intensity (0-1) over ``transition_ms``."""
    return {"avatar": avatar, "expression": expression, "intensity": intensity, "transition_ms": transition_ms}


@command("set_controls", AvatarReply)
def _set_controls(avatar: str, controls: Mapping[str, float] | None = None, *, transition_ms: float | None = None,
                  smooth: bool | None = None,
                  keyframes: Sequence[Keyframe | Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Set controls (our names or ARKit's) now, or schedule ``keyframes`` at engine times."""
    return {"avatar": avatar, "controls": _dict(controls), "transition_ms": transition_ms, "smooth": smooth,
            "keyframes": keyframes}


@command("clear", TurnReply)
def _clear(avatar: str) -> dict[str, Any]:
    """Drop an avatar's schedules and speech (a barge-in); it eases back to its commanded state and listens."""
    return {"avatar": avatar}


@command("set_idle", AvatarReply)
def _set_idle(avatar: str, enabled: bool, seed: int | None = None) -> dict[str, Any]:
    """Idle life (blinks, breathing, small head motion) on or off, optionally seeded."""
    return {"avatar": avatar, "enabled": enabled, "seed": seed}


@command("render", RenderReply)
def _render(avatar: str | None = None, image: bytes | None = None, expression: str | None = None,
            intensity: float | None = None, controls: Mapping[str, float] | None = None,
            output: str | None = None, quality: int | None = None) -> dict[str, Any]:
    """One JPEG: of an avatar's animation now, or a one-off state (expression, intensity, controls); ``image``
    renders a portrait without keeping it as an avatar."""
    return {"avatar": avatar, "image": image, "expression": expression, "intensity": intensity,
            "controls": _dict(controls), "output": output, "quality": quality}


@command("stream", StreamReply)
def _stream(avatar: str, fps: float | None = None) -> dict[str, Any]:
    """Publish an avatar's frames on the PUB socket at ``fps`` (None: the engine's default; 0 stops)."""
    return {"avatar": avatar, "fps": fps}


@command("set_turn", TurnReply)
def _set_turn(avatar: str, state: str, transition_ms: float | None = None) -> dict[str, Any]:
    """The avatar's turn state: idle, listening, thinking or speaking, eased in over ``transition_ms``."""
    return {"avatar": avatar, "state": state, "transition_ms": transition_ms}


@command("user_audio", TurnReply)
def _user_audio(avatar: str, audio: bytes, sample_rate: int, interrupt: bool | None = None) -> dict[str, Any]:
    """One chunk (10-500 ms) of the user's microphone, int16 LE mono PCM: the avatar listens (nods, brows);
    analysed and dropped, never stored or published. ``interrupt``: user speech while it speaks is a barge-in."""
    return {"avatar": avatar, "audio": audio, "sample_rate": sample_rate, "interrupt": interrupt}


@command("user_speech", TurnReply)
def _user_speech(avatar: str, speaking: bool, interrupt: bool | None = None) -> dict[str, Any]:
    """A VAD's start (True) or stop (False) of the user's speech: the avatar listens and nods in the pauses."""
    return {"avatar": avatar, "speaking": speaking, "interrupt": interrupt}


@command("speak", SpeakReply)
def _speak(avatar: str, audio: bytes, format: str | None = None, sample_rate: int | None = None,
           start: float | None = None, append: bool | None = None, speech_motion: float | None = None,
           marks: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Lip-sync audio (WAV, or raw PCM with ``sample_rate``) on the avatar; the voice also moves the head, brows and
    blinks (gain ``speech_motion`` 0..2, None: the avatar's); ``marks`` put expressions on the words:
    [{t, expression, intensity?, controls?, transition_ms?}], t seconds into this audio."""
    return {"avatar": avatar, "audio": audio, "format": format, "sample_rate": sample_rate, "start": start,
            "append": append, "speech_motion": speech_motion, "marks": None if marks is None else list(marks)}


@command("set_speech_motion", AvatarReply)
def _set_speech_motion(avatar: str, speech_motion: float) -> dict[str, Any]:
    """The avatar's default gain of speech-driven head, brow and blink motion, 0..2 (0 = lips only; 1 by default)."""
    return {"avatar": avatar, "speech_motion": speech_motion}


COMMANDS: tuple[Command[Any, Any], ...] = (
    _health, _expressions, _list_avatars, _set_source, _drop_source, _set_expression, _set_controls, _clear,
    _set_idle, _render, _stream, _set_turn, _user_audio, _user_speech, _speak, _set_speech_motion,
)


def _method(spec: Command[Any, Any]) -> Callable[..., Any]:
    """The method a Command row gives a client class: blocking on EngineClient, a coroutine on AsyncEngineClient
    (each class's ``_send`` is the only difference). ``help()`` and ``inspect.signature`` show the row's."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._send(spec, spec.fields(*args, **kwargs))

    functools.update_wrapper(method, spec.fields)
    method.__name__ = method.__qualname__ = spec.name
    sig = spec.signature()
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = sig.replace(parameters=[self_param, *sig.parameters.values()])  # type: ignore[attr-defined]
    return method


def with_command_helpers(cls: type[T]) -> type[T]:
    """Give a client class one method per row of COMMANDS (a hand-written method of the same name wins)."""
    for spec in COMMANDS:
        if spec.name not in cls.__dict__:
            setattr(cls, spec.name, _method(spec))
    return cls


def ready_or_raise(reply: HealthReply) -> bool:
    """wait_ready's test of one health reply: True when ok, an error when the engine failed to start."""
    if reply.status == "failed":
        raise EngineReplyError("start_failed", str((reply.failure or {}).get("message", "")), reply.raw)
    return reply.ready
