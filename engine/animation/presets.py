"""Expression presets: weights over the controls. STUB: the animation work fills this in."""

from __future__ import annotations

from collections.abc import Mapping

from engine.animation.state import AnimationState

EXPRESSIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprised")


def preset_state(expression: str, intensity: float, controls: Mapping[str, float] | None = None) -> AnimationState:
    """The static state of a preset at an intensity (0 is exactly neutral), plus explicit controls on top."""
    raise NotImplementedError
