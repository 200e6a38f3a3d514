"""Controls -> LivePortrait motion: deltas on the 21x3 expression keypoints and head pose.

STUB: the animation work fills this in (derived from the real motion templates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MotionDelta:
    exp: np.ndarray  # (21, 3) float32, added to the source's expression keypoints
    pitch: float  # degrees, added to the source pose
    yaw: float
    roll: float


def motion_delta(controls: Mapping[str, float]) -> MotionDelta:
    raise NotImplementedError
