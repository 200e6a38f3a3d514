"""Prosody events -> the speaking face's head, brows and blinks (pure functions of the events and time).

What real speakers do, and the sizes used here (docs/animation.md "Speech-driven motion" gives the sources):

- a nod (head pitch down and back, ~0.45 s) on a stressed syllable, its lowest point on the vowel: NOD_DEG at full
  stress, at most one per NOD_GAP_S (speakers nod on the stressed words of a phrase, not on every syllable);
- a brow raise (browInnerUp + browOuterUp) on a pitch accent, starting BROW_LEAD_S before the vowel and lasting
  ~0.6 s, at most one per BROW_GAP_S;
- at a phrase boundary, a slow turn of the head (yaw, roll, a little pitch) into the next phrase's pose, starting
  just before its first vowel and held over the phrase; and a blink just after a pause starts (speakers blink at
  phrase ends, not mid-word);
- everything is an offset on top of the expression, scaled by the ``speech_motion`` gain; the Animator clamps.

Deterministic: the same events give the same motion (a turn's pose is drawn from the boundary's index only).
Gestures are chosen greedily in event order, so events that arrive chunk by chunk choose the same gestures.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

from engine.speech.prosody import ProsodyEvent

NOD_DEG = 2.2  # head pitch down at a fully stressed syllable (degrees)
NOD_MIN_STRESS = 0.65  # weaker syllables do not nod
NOD_GAP_S = 0.4
NOD_BEFORE_S, NOD_AFTER_S = 0.2, 0.28  # the nod's descent and return around the vowel
BROW_INNER, BROW_OUTER = 0.35, 0.45  # brow weights at a full pitch accent
BROW_LEAD_S, BROW_RISE_S, BROW_HOLD_S, BROW_FALL_S = 0.1, 0.12, 0.15, 0.3
BROW_GAP_S = 0.8
TURN_S = 0.8  # a phrase-boundary turn takes this long ...
TURN_LEAD_S = 0.35  # ... starting this long before the phrase's first vowel
TURN_YAW_DEG = (1.0, 3.0)  # |yaw| of a phrase's pose
TURN_ROLL_DEG = 1.5  # |roll| at most
TURN_PITCH_DEG = 0.8  # |pitch| at most
BLINK_AFTER_PAUSE_S = 0.04
BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S = 0.06, 0.05, 0.11
BLINK_GAP_S = 1.5
SETTLE_S = 0.6  # after the speech ends, its head pose and brows ease back over this


def _smoothstep(s: float) -> float:
    s = min(1.0, max(0.0, s))
    return s * s * (3.0 - 2.0 * s)


def _bump(x: float, before: float, after: float) -> float:
    """0 -> 1 at x = 0 -> 0, smooth (raised cosine halves), over [-before, after]."""
    if x <= -before or x >= after:
        return 0.0
    s = x / before if x < 0 else x / after
    return 0.5 * (1.0 + math.cos(math.pi * s))


def _brow(x: float) -> float:
    """Brow raise shape at time x from its onset: rise, hold, fall."""
    if x <= 0.0:
        return 0.0
    if x < BROW_RISE_S:
        return _smoothstep(x / BROW_RISE_S)
    if x < BROW_RISE_S + BROW_HOLD_S:
        return 1.0
    return 1.0 - _smoothstep((x - BROW_RISE_S - BROW_HOLD_S) / BROW_FALL_S)


def _blink(x: float) -> float:
    if x <= 0.0 or x >= BLINK_CLOSE_S + BLINK_HOLD_S + BLINK_OPEN_S:
        return 0.0
    if x < BLINK_CLOSE_S:
        return _smoothstep(x / BLINK_CLOSE_S)
    if x <= BLINK_CLOSE_S + BLINK_HOLD_S:
        return 1.0
    return 1.0 - _smoothstep((x - BLINK_CLOSE_S - BLINK_HOLD_S) / BLINK_OPEN_S)


def turn_pose(index: int) -> tuple[float, float, float]:
    """(pitch, yaw, roll) degrees of the phrase after boundary ``index``: deterministic, yaw alternating sides."""
    rng = random.Random(f"speech-turn:{index}")
    yaw = rng.uniform(*TURN_YAW_DEG) * (1.0 if index % 2 == 0 else -1.0)
    return rng.uniform(-TURN_PITCH_DEG, TURN_PITCH_DEG), yaw, rng.uniform(-TURN_ROLL_DEG, TURN_ROLL_DEG)


@dataclass
class ProsodyMotion:
    """Gestures chosen from one utterance's events (``add`` them in order); ``offsets(u)`` at utterance time u."""

    nods: list[tuple[float, float]] = field(default_factory=list)  # (vowel time, degrees down)
    brows: list[tuple[float, float]] = field(default_factory=list)  # (onset, weight 0..1)
    turns: list[tuple[float, tuple[float, float, float]]] = field(default_factory=list)  # (start, pose)
    blinks: list[float] = field(default_factory=list)  # blink starts
    _phrase_start: bool = True  # the next nucleus begins a phrase (the first, or the first after a pause)

    def add(self, events: list[ProsodyEvent]) -> None:
        for e in events:
            if e.kind == "nucleus":
                if self._phrase_start:
                    self._phrase_start = False
                    self.turns.append((max(0.0, e.t - TURN_LEAD_S), turn_pose(len(self.turns))))
                if e.strength >= NOD_MIN_STRESS and (not self.nods or e.t - self.nods[-1][0] >= NOD_GAP_S):
                    self.nods.append((e.t, NOD_DEG * e.strength))
                if e.accent > 0.0:
                    onset = e.t - BROW_LEAD_S
                    if not self.brows or onset - self.brows[-1][0] >= BROW_GAP_S:
                        self.brows.append((onset, e.accent))
            elif e.kind == "pause":
                self._phrase_start = True
                start = e.t + BLINK_AFTER_PAUSE_S
                if not self.blinks or start - self.blinks[-1] >= BLINK_GAP_S:
                    self.blinks.append(start)

    def offsets(self, u: float) -> dict[str, float]:
        """headPitch/headYaw/headRoll (degrees), browInnerUp/browOuterUp and eyeBlink (weights) at time u."""
        pitch = 0.0
        i = bisect.bisect_left(self.nods, (u - NOD_AFTER_S,))
        while i < len(self.nods) and self.nods[i][0] < u + NOD_BEFORE_S:
            t, deg = self.nods[i]
            pitch -= deg * _bump(u - t, NOD_BEFORE_S, NOD_AFTER_S)
            i += 1
        brow = 0.0
        span = BROW_RISE_S + BROW_HOLD_S + BROW_FALL_S
        i = bisect.bisect_left(self.brows, (u - span,))
        while i < len(self.brows) and self.brows[i][0] < u:
            t, w = self.brows[i]
            brow = max(brow, w * _brow(u - t))
            i += 1
        p, y, r = self.pose(u)
        blink = 0.0
        j = bisect.bisect_right(self.blinks, u) - 1
        if j >= 0:
            blink = _blink(u - self.blinks[j])
        return {"headPitch": pitch + p, "headYaw": y, "headRoll": r, "browInnerUp": BROW_INNER * brow,
                "browOuterUp": BROW_OUTER * brow, "eyeBlink": blink}

    def pose(self, u: float) -> tuple[float, float, float]:
        """The phrase pose at u: eased from the previous boundary's pose to the latest one over TURN_S."""
        j = bisect.bisect_right(self.turns, (u, (math.inf,))) - 1
        if j < 0:
            return 0.0, 0.0, 0.0
        start, pose = self.turns[j]
        before = self.turns[j - 1][1] if j >= 1 else (0.0, 0.0, 0.0)
        s = _smoothstep((u - start) / TURN_S)
        return tuple(a + s * (b - a) for a, b in zip(before, pose, strict=True))  # type: ignore[return-value]
