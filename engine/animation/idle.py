"""Idle life: blinks, breathing sway and small gaze shifts, deterministic under a seed.

Pure functions of time: ``IdleLife.offsets(t)`` can be asked for any t (in order or not, within the kept
window) and always answers the same for the same seed and start time. Events are drawn lazily, in time order,
from their own random streams (blinks and gaze do not disturb each other), so asking for t = 600 s draws the
same blinks as stepping there frame by frame.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class IdleConfig:
    """Per-avatar idle life. Defaults follow human statistics (see docs/animation.md)."""

    enabled: bool = True
    seed: int = 0
    blink: bool = True
    blink_interval_s: tuple[float, float] = (2.0, 10.0)  # gaps between blinks are drawn inside this range
    blink_median_s: float = 4.0  # median gap (log-normal, clipped to blink_interval_s)
    blink_duration_s: tuple[float, float] = (0.10, 0.30)
    double_blink_p: float = 0.12  # chance that a blink is followed at once by a second
    breathing_deg: float = 0.8  # head pitch sway amplitude
    breathing_period_s: float = 4.5
    sway_roll_deg: float = 0.6  # slower head roll sway amplitude
    sway_period_s: float = 11.0
    gaze: bool = True
    gaze_amount: float = 0.2  # largest idle gaze offset (gaze units, -1..1)
    gaze_interval_s: tuple[float, float] = (1.5, 5.0)

    @property
    def is_still(self) -> bool:
        """True when this config moves nothing (so the frame cache can hold a static face)."""
        if not self.enabled:
            return True
        return not self.blink and not self.gaze and self.breathing_deg == 0.0 and self.sway_roll_deg == 0.0


@dataclass(frozen=True)
class Blink:
    start: float  # engine seconds
    duration: float
    double: bool = False  # the second blink of a double

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class GazeShift:
    start: float
    x: float
    y: float


SACCADE_S = 0.06  # a gaze shift is a quick, smooth saccade
KEEP_S = 120.0  # events ending this long before the latest asked time are dropped (bounded memory)
CLOSE_SHARE = 0.4  # a blink closes in 40% of its time and opens in the rest (lids close faster than they open)


def _smoothstep(s: float) -> float:
    s = min(1.0, max(0.0, s))
    return s * s * (3.0 - 2.0 * s)


def blink_profile(phase: float) -> float:
    """Lid closure 0..1 across one blink (phase 0..1): fast close, slower open, zero velocity at the ends."""
    if phase <= 0.0 or phase >= 1.0:
        return 0.0
    if phase < CLOSE_SHARE:
        return _smoothstep(phase / CLOSE_SHARE)
    return 1.0 - _smoothstep((phase - CLOSE_SHARE) / (1.0 - CLOSE_SHARE))


class IdleLife:
    """The idle layer of one avatar from ``start`` on: offsets to add to the commanded state."""

    def __init__(self, config: IdleConfig, start: float) -> None:
        self.config = config
        self.start = start
        self._blink_rng = random.Random(f"blink:{config.seed}")
        self._gaze_rng = random.Random(f"gaze:{config.seed}")
        phase_rng = random.Random(f"phase:{config.seed}")
        self._breath_phase = phase_rng.uniform(0.0, 2.0 * math.pi)
        self._roll_phase = phase_rng.uniform(0.0, 2.0 * math.pi)
        self._blinks: list[Blink] = []
        self._blink_starts: list[float] = []
        self._next_blink_at = start + self._draw_gap()
        self._gazes: list[GazeShift] = [GazeShift(start, 0.0, 0.0)]
        self._gaze_starts: list[float] = [start]

    # -- event generation (lazy, in time order) --------------------------------------------------------------

    def _draw_gap(self) -> float:
        lo, hi = self.config.blink_interval_s
        gap = self._blink_rng.lognormvariate(math.log(self.config.blink_median_s), 0.45)
        return min(hi, max(lo, gap))

    def _draw_duration(self) -> float:
        lo, hi = self.config.blink_duration_s
        # triangular, mode near the short end: most blinks are ~150 ms
        return self._blink_rng.triangular(lo, hi, lo + 0.25 * (hi - lo))

    def _extend_blinks(self, until: float) -> None:
        while self._next_blink_at <= until:
            first = Blink(self._next_blink_at, self._draw_duration())
            self._append_blink(first)
            last = first
            if self._blink_rng.random() < self.config.double_blink_p:
                second = Blink(first.end + self._blink_rng.uniform(0.05, 0.15), self._draw_duration(), double=True)
                self._append_blink(second)
                last = second
            # the gap is counted from the end of the blink (or pair) to the start of the next
            self._next_blink_at = last.end + self._draw_gap()

    def _append_blink(self, blink: Blink) -> None:
        self._blinks.append(blink)
        self._blink_starts.append(blink.start)

    def _extend_gaze(self, until: float) -> None:
        lo, hi = self.config.gaze_interval_s
        amount = self.config.gaze_amount
        while self._gazes[-1].start <= until:
            at = self._gazes[-1].start + self._gaze_rng.uniform(lo, hi)
            if self._gaze_rng.random() < 0.4:  # often back to the centre
                x, y = 0.0, 0.0
            else:
                x = self._gaze_rng.uniform(-amount, amount)
                y = self._gaze_rng.uniform(-0.6 * amount, 0.6 * amount)
            self._gazes.append(GazeShift(at, x, y))
            self._gaze_starts.append(at)

    def _prune(self, t: float) -> None:
        horizon = t - KEEP_S
        if self._blinks and self._blinks[0].end < horizon - KEEP_S:
            cut = bisect.bisect_left(self._blink_starts, horizon)
            del self._blinks[:cut], self._blink_starts[:cut]
        if len(self._gazes) > 2 and self._gazes[1].start < horizon - KEEP_S:
            cut = max(0, bisect.bisect_left(self._gaze_starts, horizon) - 1)
            del self._gazes[:cut], self._gaze_starts[:cut]

    # -- sampling ------------------------------------------------------------------------------------------

    def blinks_until(self, t: float) -> list[Blink]:
        """Every blink that starts at or before t (within the kept window): for tests and statistics."""
        self._extend_blinks(t)
        return [b for b in self._blinks if b.start <= t]

    def blink(self, t: float) -> float:
        if not self.config.blink or t < self.start:
            return 0.0
        self._extend_blinks(t)
        i = bisect.bisect_right(self._blink_starts, t) - 1
        if i < 0:
            return 0.0
        b = self._blinks[i]
        return blink_profile((t - b.start) / b.duration)

    def gaze(self, t: float) -> tuple[float, float]:
        if not self.config.gaze or t < self.start:
            return 0.0, 0.0
        self._extend_gaze(t)
        i = bisect.bisect_right(self._gaze_starts, t) - 1
        current = self._gazes[max(i, 0)]
        previous = self._gazes[i - 1] if i >= 1 else current
        s = _smoothstep((t - current.start) / SACCADE_S)
        return previous.x + s * (current.x - previous.x), previous.y + s * (current.y - previous.y)

    def sway(self, t: float) -> tuple[float, float]:
        """(pitch, roll) degrees: breathing nods and a slower roll, each a main sine plus a softer overtone."""
        cfg = self.config
        u = t - self.start
        # fade in over the first second so turning idle on never jumps
        fade = _smoothstep(u / 1.0)
        w1 = 2.0 * math.pi / cfg.breathing_period_s
        w2 = 2.0 * math.pi / cfg.sway_period_s
        pitch = cfg.breathing_deg * (0.8 * math.sin(w1 * u + self._breath_phase)
                                     + 0.2 * math.sin(2.7 * w1 * u + 1.3 * self._breath_phase))
        roll = cfg.sway_roll_deg * (0.75 * math.sin(w2 * u + self._roll_phase)
                                    + 0.25 * math.sin(2.3 * w2 * u + 0.7 * self._roll_phase))
        return fade * pitch, fade * roll

    def offsets(self, t: float) -> dict[str, float]:
        """What idle life adds at t: eyeBlink (a closure 0..1), gazeX/gazeY, headPitch/headRoll degrees."""
        if not self.config.enabled or t < self.start:
            return {}
        self._prune(t)
        gx, gy = self.gaze(t)
        pitch, roll = self.sway(t)
        return {"eyeBlink": self.blink(t), "gazeX": gx, "gazeY": gy, "headPitch": pitch, "headRoll": roll}
