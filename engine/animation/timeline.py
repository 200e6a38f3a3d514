"""Per-avatar animation over time. STUB: the animation work fills this in; the signatures are the contract."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.animation.state import AnimationState


@dataclass(frozen=True)
class IdleConfig:
    enabled: bool = True
    seed: int = 0


@dataclass(frozen=True)
class Keyframe:
    t: float  # engine time, seconds (time.monotonic() of the engine process)
    controls: dict[str, float] = field(default_factory=dict)


class Animator:
    """Pure state machine: no I/O, no threads, no torch. Times are engine seconds (time.monotonic())."""

    def __init__(self, idle: IdleConfig | None = None, now: float = 0.0) -> None:
        raise NotImplementedError

    def set_expression(self, expression: str, intensity: float, transition_ms: float, now: float) -> None: ...

    def set_controls(self, values: Mapping[str, float], transition_ms: float, now: float) -> None: ...

    def schedule(self, keyframes: Sequence[Keyframe], now: float) -> None: ...

    def clear(self, now: float) -> None: ...

    def set_idle(self, idle: IdleConfig, now: float) -> None: ...

    def sample(self, t: float) -> AnimationState: ...

    def is_static(self, t: float) -> bool:
        """True when the state cannot change after t without a new command (cacheable, no idle)."""
        ...
