"""Measure the head and brows on rendered pixels: dlib's 68 points (tests/speech/lipmeter.py), never the controls.

Head pitch: the nose's own pixels (the patch between the nose's bridge and its tip, points 29-35 of the neutral
face) found again in each frame by sub-pixel template matching, its vertical shift in the neutral face's iod; a nod
down (headPitch < 0) lowers the nose towards the mouth. Why not dlib's nose points: dlib fits all 68 points at
once, so the mouth's and the brows' pixels (speech, teeth, a brow raise) moved them by a good part of a degree. It
is calibrated to degrees once per avatar by rendering the engine's own headPitch at -4..4 degrees (a straight-line
fit), so figures read as degrees of the renderer's pose.
Brows: the mean height of dlib's points 17-26 above the eye corners, in iod. Lip gap: dlib's inner lips, in iod.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import dlib
import numpy as np

from engine.animation.controls import NEUTRAL
from engine.animation.state import AnimationState
from tests.speech.lipmeter import LipMeter

UP = 4  # the nose is matched at four times the frame's size (quarter-pixel steps before the sub-pixel fit)
SEARCH = 8  # px the nose is looked for around where it was (a 4 degree nod moves it about 3 px here)


class HeadMeter:
    """Head pitch (degrees, calibrated) and brow height (iod) of frames of one avatar."""

    def __init__(self, meter: LipMeter, draw: Callable[[AnimationState], np.ndarray]) -> None:
        self.meter = meter
        rest = draw(AnimationState("t", 1.0, dict(NEUTRAL)))
        lm = self.points(rest)
        x0, x1 = int(lm[31, 0]) - 2, int(lm[35, 0]) + 3
        y0, y1 = int(lm[28, 1]), int(lm[30, 1]) + 1  # the bridge to the tip: the nostrils move with the upper lip
        self._nose_box = (x0, y0, x1, y1)
        self._nose_tpl = self._upscaled(rest, x0, y0, x1, y1)
        degrees = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        nose = [self._nose(draw(AnimationState("t", 1.0, {**NEUTRAL, "headPitch": float(d)}))) for d in degrees]
        self.slope, self.offset = np.polyfit(degrees, nose, 1)
        if abs(self.slope) < 1e-4:
            raise AssertionError(f"headPitch does not move the nose on this renderer (slope {self.slope})")
        self.brow_rest = self.brow(rest)

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

    @staticmethod
    def _upscaled(img: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        grey = cv2.cvtColor(np.ascontiguousarray(img[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        return cv2.resize(grey, ((x1 - x0) * UP, (y1 - y0) * UP), interpolation=cv2.INTER_CUBIC)

    def _nose(self, img: np.ndarray) -> float:
        """The nose patch's vertical shift from the neutral frame (iod), matched within SEARCH px, sub-pixel."""
        x0, y0, x1, y1 = self._nose_box
        area = self._upscaled(img, x0 - SEARCH, y0 - SEARCH, x1 + SEARCH, y1 + SEARCH)
        score = cv2.matchTemplate(area, self._nose_tpl, cv2.TM_CCOEFF_NORMED)
        _, _, _, (bx, by) = cv2.minMaxLoc(score)
        dy = 0.0
        if 0 < by < score.shape[0] - 1:  # a parabola through the peak and its neighbours
            a, b, c = score[by - 1, bx], score[by, bx], score[by + 1, bx]
            dy = 0.5 * float(a - c) / float(a - 2 * b + c) if a - 2 * b + c != 0 else 0.0
        return ((by + dy) / UP - SEARCH) / self.meter.iod

    def _features(self, lm: np.ndarray) -> tuple[float, float]:
        iod = self.meter.iod
        corners = lm[[36, 39, 42, 45], 1].mean()
        gap = float(np.mean([lm[67, 1] - lm[61, 1], lm[66, 1] - lm[62, 1], lm[65, 1] - lm[63, 1]])) / iod
        return float(corners - lm[17:27, 1].mean()) / iod, gap

    def brow(self, img: np.ndarray) -> float:
        return self._features(self.points(img))[0]

    def measure(self, img: np.ndarray) -> tuple[float, float, float]:
        """(head pitch degrees, brow height iod, inner-lip gap iod) of one frame: one landmark pass."""
        brow, gap = self._features(self.points(img))
        return (self._nose(img) - self.offset) / self.slope, brow, gap
