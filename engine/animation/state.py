"""The animation state a renderer draws: what the face does at one instant."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.animation.controls import NAMES, NEUTRAL


@dataclass(frozen=True)
class AnimationState:
    """Every control's value at one frame time, and the expression it came from (for headers).

    ``controls`` always holds every name in ``controls.NAMES``. Renderers read only ``controls``;
    ``expression`` and ``intensity`` are labels for frame headers and logs.
    """

    expression: str = "neutral"
    intensity: float = 0.0
    controls: dict[str, float] = field(default_factory=lambda: dict(NEUTRAL))

    def key(self, step: float = 1.0 / 256) -> tuple[int, ...]:
        """The quantized state: the frame cache key (see docs/animation.md for the steps)."""
        return tuple(int(round(self.controls[n] / step)) for n in NAMES)
