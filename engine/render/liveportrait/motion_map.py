"""Controls -> LivePortrait motion: deltas on the 21x3 expression keypoints and the head pose.

The per-control deltas come from real motion: tools/derive_motion_basis.py fits them to the motion extractors'
templates (human clips first) and writes ``basis.py`` (method per control there and in docs/animation.md). Each
control at weight 1.0 stays inside the per-coordinate range of deviations real faces produced; a sum of controls is
clipped to that range so a combination cannot push the keypoints somewhere no face went.

Sided controls (``eyeBlinkLeft`` ...) are read through ``side_values``: each side's weight drives that side's vector,
so a wink closes one eye. ``UNDRAWN`` controls (ARKit names no human clip shows) have no vector and move nothing;
``mouthClose`` has none either: the lower lip and the jaw are one keypoint here, so it takes its weight off jawOpen
(the mouth shuts by closing the jaw). Head angles become degrees added to the source pose, with LivePortrait's
signs: its yaw > 0 turns the face toward image LEFT and its pitch > 0 bows the head, while ours are image right and
up, so both are negated here (roll agrees: + moves the top of the head toward image right).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.animation.controls import SIDED, side_values
from engine.render.liveportrait.basis import BASIS, RANGE_HI, RANGE_LO


@dataclass(frozen=True)
class MotionDelta:
    exp: np.ndarray  # (21, 3) float32, added to the source's expression keypoints
    pitch: float  # LivePortrait degrees (+ bows), added to the source pose
    yaw: float  # LivePortrait degrees (+ toward image left)
    roll: float


def _dense(entries: tuple[tuple[int, int, float], ...]) -> np.ndarray:
    vec = np.zeros((21, 3), np.float32)
    for kp, axis, value in entries:
        vec[kp, axis] = value
    vec.flags.writeable = False
    return vec


# Read-only constants built once from the generated table.
BASIS_ARRAYS: dict[str, np.ndarray] = {name: _dense(entries) for name, entries in BASIS.items()}
REAL_LO = np.asarray(RANGE_LO, np.float32)
REAL_HI = np.asarray(RANGE_HI, np.float32)
# Bilateral controls without sides: their own vector. Sided ones go through side_values (below).
PLAIN_CONTROLS: tuple[str, ...] = tuple(n for n in BASIS_ARRAYS if n not in SIDED and not n.endswith(("Left", "Right")))


def motion_delta(controls: Mapping[str, float]) -> MotionDelta:
    """The LivePortrait motion for a set of control values (missing controls are 0)."""
    exp = np.zeros((21, 3), np.float32)
    shut = float(controls.get("mouthClose", 0.0))
    for name in PLAIN_CONTROLS:
        weight = float(controls.get(name, 0.0))
        if name == "jawOpen":
            weight = max(0.0, weight - shut)
        if weight:
            exp += BASIS_ARRAYS[name] * np.float32(weight)
    for base in SIDED:
        if base + "Left" not in BASIS_ARRAYS:
            continue  # one of the UNDRAWN
        left, right = side_values(controls, base)
        if left:
            exp += BASIS_ARRAYS[base + "Left"] * np.float32(left)
        if right:
            exp += BASIS_ARRAYS[base + "Right"] * np.float32(right)
    np.clip(exp, REAL_LO, REAL_HI, out=exp)
    return MotionDelta(
        exp=exp,
        pitch=-float(controls.get("headPitch", 0.0)) + 0.0,
        yaw=-float(controls.get("headYaw", 0.0)) + 0.0,
        roll=float(controls.get("headRoll", 0.0)) + 0.0,
    )
