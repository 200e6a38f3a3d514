"""One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) for noisy control streams.

A low-pass whose cutoff rises with the signal's speed: jitter at rest is smoothed hard, a deliberate fast
change passes with little lag. Written from the paper's equations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class OneEuroConfig:
    min_cutoff_hz: float = 1.5  # cutoff at rest: lower is smoother, laggier
    beta: float = 4.0  # how fast the cutoff rises with speed (per unit/s): higher is less lag on fast moves
    d_cutoff_hz: float = 1.0  # cutoff of the speed estimate


def _alpha(cutoff_hz: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One scalar signal. ``__call__(value, t)`` with strictly increasing t (equal t returns the last output)."""

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self._t: float | None = None
        self._x = 0.0
        self._dx = 0.0

    def __call__(self, value: float, t: float) -> float:
        if self._t is None:
            self._t, self._x, self._dx = t, value, 0.0
            return value
        dt = t - self._t
        if dt <= 0.0:
            return self._x
        cfg = self.config
        speed = (value - self._x) / dt
        self._dx += _alpha(cfg.d_cutoff_hz, dt) * (speed - self._dx)
        cutoff = cfg.min_cutoff_hz + cfg.beta * abs(self._dx)
        self._x += _alpha(cutoff, dt) * (value - self._x)
        self._t = t
        return self._x

    def reset(self) -> None:
        self._t = None


class OneEuroBank:
    """One filter per control name, each with a config scaled to the control's range."""

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self._filters: dict[str, OneEuroFilter] = {}

    def filter(self, name: str, value: float, t: float, span: float = 1.0) -> float:
        """Filter in units of the control's span, so one config fits weights (0..1) and degrees (-20..20)."""
        f = self._filters.get(name)
        if f is None:
            f = self._filters[name] = OneEuroFilter(self.config)
        return f(value / span, t) * span

    def reset(self) -> None:
        self._filters.clear()
