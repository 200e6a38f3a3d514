"""The one ease of the animation: a cubic Hermite segment from a value and its velocity to a value at rest.

From rest it is the smoothstep ease of expressions; a retarget mid-way starts from the current value and velocity,
so nothing jumps. The Animator's controls (timeline.py) and the turn states' weights (turn.py) both ease with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """Cubic Hermite from (p0, v0) at t0 to (p1, 0) at t0 + duration; constant p1 afterwards (and p0 before)."""

    t0: float
    duration: float
    p0: float
    v0: float
    p1: float

    @property
    def end(self) -> float:
        return self.t0 + self.duration

    def at(self, t: float) -> tuple[float, float]:
        """(value, velocity) at t."""
        if self.duration <= 0.0 or t >= self.end:
            return self.p1, 0.0
        if t <= self.t0:
            return self.p0, self.v0
        d = self.duration
        s = (t - self.t0) / d
        s2, s3 = s * s, s * s * s
        value = (2 * s3 - 3 * s2 + 1) * self.p0 + (s3 - 2 * s2 + s) * d * self.v0 + (3 * s2 - 2 * s3) * self.p1
        velocity = ((6 * s2 - 6 * s) * self.p0 + (3 * s2 - 4 * s + 1) * d * self.v0 + (6 * s - 6 * s2) * self.p1) / d
        return value, velocity

    @classmethod
    def constant(cls, value: float, t: float) -> Segment:
        return cls(t, 0.0, value, 0.0, value)
