"""Controls -> LivePortrait motion: deltas on the 21x3 expression keypoints and head pose.

The per-control deltas come from real motion: tools/derive_motion_basis.py fits them to the official
motion extractor's templates and writes engine/animation/liveportrait_basis.py (method and per-control
origin there and in docs/animation.md). Each control at weight 1.0 stays inside the per-coordinate range
of deviations real faces produced; a sum of controls is clipped to that range so a combination cannot
push the keypoints somewhere no face went. Head angles pass through as degrees added to the source pose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.animation.controls import BY_NAME
from engine.animation.liveportrait_basis import BASIS, RANGE_HI, RANGE_LO


@dataclass(frozen=True)
class MotionDelta:
    exp: np.ndarray  # (21, 3) float32, added to the source's expression keypoints
    pitch: float  # degrees, added to the source pose
    yaw: float
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
EXP_CONTROLS: tuple[str, ...] = tuple(BASIS_ARRAYS)
POSE_CONTROLS: tuple[str, ...] = ("headPitch", "headYaw", "headRoll")


def control_delta(name: str, weight: float) -> np.ndarray:
    """One control's (21, 3) expression delta at a weight (zeros for pose controls)."""
    if name not in BY_NAME:
        raise KeyError(name)
    basis = BASIS_ARRAYS.get(name)
    if basis is None:
        return np.zeros((21, 3), np.float32)
    return basis * np.float32(weight)


def motion_delta(controls: Mapping[str, float]) -> MotionDelta:
    """The LivePortrait motion for a set of control values (missing controls are 0)."""
    exp = np.zeros((21, 3), np.float32)
    for name in EXP_CONTROLS:
        weight = float(controls.get(name, 0.0))
        if weight:
            exp += BASIS_ARRAYS[name] * np.float32(weight)
    np.clip(exp, REAL_LO, REAL_HI, out=exp)
    return MotionDelta(
        exp=exp,
        pitch=float(controls.get("headPitch", 0.0)),
        yaw=float(controls.get("headYaw", 0.0)),
        roll=float(controls.get("headRoll", 0.0)),
    )
