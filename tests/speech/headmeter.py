"""Measure the head and brows on rendered pixels: dlib's 68 points (tests/speech/lipmeter.py), never the controls.

Head pitch: the nose (points 30-35: tip and nostrils) against the eye corners (36, 39, 42, 45: they stay put when
the lids blink), vertically, in the neutral face's iod; a nod down (headPitch < 0) lowers the nose towards the
mouth. dlib gives whole pixels (about one degree here), so the frame is measured at twice its size. It is
calibrated to degrees once per avatar by rendering the engine's own headPitch at -4..4 degrees (a straight-line
fit), so figures read as degrees of the renderer's pose.
Brows: the mean height of points 17-26 above the eye corners, in iod.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import dlib
import numpy as np

from engine.animation.controls import NEUTRAL
from engine.animation.state import AnimationState
from tests.speech.lipmeter import LipMeter


class HeadMeter:
    """Head pitch (degrees, calibrated) and brow height (iod) of frames of one avatar."""

    def __init__(self, meter: LipMeter, draw: Callable[[AnimationState], np.ndarray]) -> None:
        self.meter = meter
        degrees = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        nose = [self._nose(draw(AnimationState("t", 1.0, {**NEUTRAL, "headPitch": float(d)}))) for d in degrees]
        self.slope, self.offset = np.polyfit(degrees, nose, 1)
        if abs(self.slope) < 1e-4:
            raise AssertionError(f"headPitch does not move the nose on this renderer (slope {self.slope})")
        self.brow_rest = self.brow(draw(AnimationState("t", 1.0, dict(NEUTRAL))))

    def points(self, img: np.ndarray) -> np.ndarray:
        """The 68 points at twice the frame's size (half-pixel steps), in the frame's pixels."""
        r = self.meter.rect
        m = (r.right() - r.left()) // 4  # the face box and a margin: only that is enlarged
        x0, y0 = max(0, r.left() - m), max(0, r.top() - m)
        part = img[y0: r.bottom() + m, x0: r.right() + m]
        big = cv2.resize(part, (part.shape[1] * 2, part.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
        box = dlib.rectangle(2 * (r.left() - x0), 2 * (r.top() - y0), 2 * (r.right() - x0), 2 * (r.bottom() - y0))
        shape = self.meter.predictor(np.ascontiguousarray(big), box)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64) / 2.0 + (x0, y0)

    def _nose(self, img: np.ndarray) -> float:
        return self._features(self.points(img))[0]

    def _features(self, lm: np.ndarray) -> tuple[float, float, float]:
        iod = self.meter.iod
        corners = lm[[36, 39, 42, 45], 1].mean()
        gap = float(np.mean([lm[67, 1] - lm[61, 1], lm[66, 1] - lm[62, 1], lm[65, 1] - lm[63, 1]])) / iod
        return float(lm[30:36, 1].mean() - corners) / iod, float(corners - lm[17:27, 1].mean()) / iod, gap

    def brow(self, img: np.ndarray) -> float:
        return self._features(self.points(img))[1]

    def measure(self, img: np.ndarray) -> tuple[float, float, float]:
        """(head pitch degrees, brow height iod, inner-lip gap iod) of one frame: one landmark pass."""
        nose, brow, gap = self._features(self.points(img))
        return (nose - self.offset) / self.slope, brow, gap
