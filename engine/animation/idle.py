"""Idle life: blinks with a closed hold, head sway from smooth noise, gaze shifts; deterministic under a seed.

Human figures it follows (../shared/reference/expressions.md, docs/animation.md): a blink is below half-open for
100-170 ms with 1-4 fully closed frames at 25 fps, so every blink here holds the lids >= 90% closed for at least one
frame period; calm heads move 0.3-0.8 degrees std per axis at a p90 speed of 2-5 deg/s, with no fixed period, so the
sway is value noise (random knots joined by a Catmull-Rom spline, two octaves) rather than sines.

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
    blink_close_s: tuple[float, float] = (0.05, 0.07)  # lids come down fast ...
    blink_hold_s: tuple[float, float] = (0.045, 0.07)  # ... stay shut (>= 1 frame at 25 fps) ...
    blink_open_s: tuple[float, float] = (0.09, 0.13)  # ... and open more slowly
    double_blink_p: float = 0.12  # chance that a blink is followed at once by a second
    sway_std_deg: tuple[float, float, float] = (0.6, 0.5, 0.45)  # head (pitch, yaw, roll) sway, std in degrees
    sway_knot_s: float = 0.8  # spacing of the slow noise octave's knots (the fast octave's is a third)
    gaze: bool = True
    gaze_amount: float = 0.5  # largest idle gaze offset (gaze units, -1..1): large enough to show on both renderers
    gaze_interval_s: tuple[float, float] = (1.5, 5.0)

    @property
    def is_still(self) -> bool:
        """True when this config moves nothing (so the frame cache can hold a static face)."""
        if not self.enabled:
            return True
        return not self.blink and not self.gaze and not any(self.sway_std_deg)


@dataclass(frozen=True)
class Blink:
    start: float  # engine seconds
    close: float  # seconds to shut
    hold: float  # seconds fully shut
    open: float  # seconds to open again
    double: bool = False  # the second blink of a double

    @property
    def duration(self) -> float:
        return self.close + self.hold + self.open

    @property
    def end(self) -> float:
        return self.start + self.duration

    def closure(self, t: float) -> float:
        """Lid closure 0..1 at engine time t: smooth close, flat hold at 1, slower smooth open."""
        u = t - self.start
        if u <= 0.0 or u >= self.duration:
            return 0.0
        if u < self.close:
            return _smoothstep(u / self.close)
        if u <= self.close + self.hold:
            return 1.0
        return 1.0 - _smoothstep((u - self.close - self.hold) / self.open)


@dataclass(frozen=True)
class GazeShift:
    start: float
    x: float
    y: float


SACCADE_S = 0.06  # a gaze shift is a quick, smooth saccade
KEEP_S = 120.0  # events ending this long before the latest asked time are dropped (bounded memory)
SWAY_FAST_SHARE = 0.45  # the fast noise octave's amplitude relative to the slow one
_CR_STD = 0.89  # std of a Catmull-Rom spline through unit-std random knots (measured), to hit sway_std_deg


def _smoothstep(s: float) -> float:
    s = min(1.0, max(0.0, s))
    return s * s * (3.0 - 2.0 * s)


def _catmull_rom(p0: float, p1: float, p2: float, p3: float, s: float) -> float:
    return 0.5 * (2 * p1 + (p2 - p0) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s * s
                  + (3 * p1 - p0 - 3 * p2 + p3) * s ** 3)


class _Noise:
    """Smooth 1-D value noise: a random value per knot (random access by knot index, seeded), C1 between knots."""

    def __init__(self, key: str, spacing: float) -> None:
        self.key, self.spacing = key, spacing
        self._knots: dict[int, float] = {}

    def _knot(self, k: int) -> float:
        value = self._knots.get(k)
        if value is None:
            if len(self._knots) > 4096:  # bounded memory over a long session
                self._knots.clear()
            value = self._knots[k] = random.Random(f"{self.key}:{k}").gauss(0.0, 1.0)
        return value

    def __call__(self, u: float) -> float:
        x = u / self.spacing
        k = math.floor(x)
        return _catmull_rom(self._knot(k - 1), self._knot(k), self._knot(k + 1), self._knot(k + 2), x - k)


class IdleLife:
    """The idle layer of one avatar from ``start`` on: offsets to add to the commanded state."""

    def __init__(self, config: IdleConfig, start: float) -> None:
        self.config = config
        self.start = start
        self._blink_rng = random.Random(f"blink:{config.seed}")
        self._gaze_rng = random.Random(f"gaze:{config.seed}")
        self._sway = [
            (_Noise(f"sway:{axis}:slow:{config.seed}", config.sway_knot_s),
             _Noise(f"sway:{axis}:fast:{config.seed}", config.sway_knot_s / 3.0))
            for axis in ("pitch", "yaw", "roll")
        ]
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

    def _draw_blink(self, start: float, double: bool = False) -> Blink:
        cfg, rng = self.config, self._blink_rng
        return Blink(start, rng.uniform(*cfg.blink_close_s), rng.uniform(*cfg.blink_hold_s),
                     rng.uniform(*cfg.blink_open_s), double)

    def _extend_blinks(self, until: float) -> None:
        while self._next_blink_at <= until:
            first = self._draw_blink(self._next_blink_at)
            self._append_blink(first)
            last = first
            if self._blink_rng.random() < self.config.double_blink_p:
                second = self._draw_blink(first.end + self._blink_rng.uniform(0.05, 0.15), double=True)
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
        return self._blinks[i].closure(t)

    def gaze(self, t: float) -> tuple[float, float]:
        if not self.config.gaze or t < self.start:
            return 0.0, 0.0
        self._extend_gaze(t)
        i = bisect.bisect_right(self._gaze_starts, t) - 1
        current = self._gazes[max(i, 0)]
        previous = self._gazes[i - 1] if i >= 1 else current
        s = _smoothstep((t - current.start) / SACCADE_S)
        return previous.x + s * (current.x - previous.x), previous.y + s * (current.y - previous.y)

    def sway(self, t: float) -> tuple[float, float, float]:
        """(pitch, yaw, roll) degrees: two octaves of smooth noise per axis, faded in over the first second."""
        u = t - self.start
        fade = _smoothstep(u / 1.0)  # turning idle on never jumps
        norm = _CR_STD * math.sqrt(1.0 + SWAY_FAST_SHARE ** 2)
        return tuple(  # type: ignore[return-value]
            fade * std / norm * (slow(u) + SWAY_FAST_SHARE * fast(u))
            for std, (slow, fast) in zip(self.config.sway_std_deg, self._sway, strict=True)
        )

    def offsets(self, t: float) -> dict[str, float]:
        """What idle life adds at t: eyeBlink (a closure 0..1), gazeX/gazeY, headPitch/headYaw/headRoll degrees."""
        if not self.config.enabled or t < self.start:
            return {}
        self._prune(t)
        gx, gy = self.gaze(t)
        pitch, yaw, roll = self.sway(t)
        return {"eyeBlink": self.blink(t), "gazeX": gx, "gazeY": gy, "headPitch": pitch, "headYaw": yaw,
                "headRoll": roll}
