"""Read a listening face back from rendered frames: dlib's 68 points (tests/speech/lipmeter.py's predictor) on a face
box found once on the neutral frame.

- head pitch: the vertical position of the rigid points (nose bridge and tip, eye corners), in degrees through a
  calibration on two renders of the engine's own ``headPitch`` (0 and -4 degrees);
- brows: the brow points' height over the eye corners, in the neutral face's inter-ocular distance (iod);
- mouth: the inner-lip gap, in iod;
- gaze: each iris's shift from the neutral frame's (a template of the neutral iris matched around it, sub-pixel),
  less the eye corners' shift (the head's motion; the corners' own pixels matched the same way: dlib fits its 68
  points at once, so a brow raise or the forehead's lines moved its eye corners by a good part of the glance), in
  iod.

Used by tests/service/test_listen.py and tools/listening_strip.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import dlib
import numpy as np

from tests.speech.lipmeter import shape_predictor

RIGID = [27, 28, 29, 30, 36, 39, 42, 45]
BROWS = list(range(17, 27))
EYE_CORNERS = [36, 39, 42, 45]
IRIS_R = 7  # px: the iris template's half size (the default portrait's iris is ~12 px across)
SEARCH = 5  # px a patch (iris, eye corner) is searched each way
CORNER_R = 0.07  # iod: an eye corner's template's half size


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64), (0, 0), 0.8)


def _darkest(gray: np.ndarray, eye: np.ndarray) -> tuple[int, int]:
    """The iris centre: the darkest point of the (blurred) eye inside its lid contour."""
    mask = np.zeros(gray.shape, np.uint8)
    cv2.fillPoly(mask, [eye.astype(np.int32)], 1)
    blurred = cv2.GaussianBlur(gray, (0, 0), 2.0)
    blurred[mask == 0] = np.inf
    y, x = np.unravel_index(np.argmin(blurred), blurred.shape)
    return int(x), int(y)


def _vertex(three: np.ndarray) -> float:
    """Sub-pixel offset of a parabola's minimum through three scores (0 at an edge of the search)."""
    if len(three) < 3 or not np.all(np.isfinite(three)):
        return 0.0
    den = three[0] - 2 * three[1] + three[2]
    return 0.0 if den <= 0 else float(0.5 * (three[0] - three[2]) / den)


def _patch(gray: np.ndarray, at: tuple[int, int], r: int) -> np.ndarray:
    x, y = at
    return gray[y - r:y + r + 1, x - r:x + r + 1].copy()


def _shift(gray: np.ndarray, at: tuple[int, int], template: np.ndarray, r: int) -> tuple[float, float]:
    """Where a neutral frame's patch (centred at ``at``, half size ``r``) is now: its shift in px (image axes),
    by the least squared difference within SEARCH px, refined to sub-pixel by a parabola each way."""
    x, y = at
    s = SEARCH
    scores = np.full((2 * s + 1, 2 * s + 1), np.inf)
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            patch = gray[y + dy - r:y + dy + r + 1, x + dx - r:x + dx + r + 1]
            if patch.shape == template.shape:
                scores[dy + s, dx + s] = float(np.sum((patch - template) ** 2))
    by, bx = np.unravel_index(np.argmin(scores), scores.shape)
    return bx - s + _vertex(scores[by, bx - 1:bx + 2]), by - s + _vertex(scores[by - 1:by + 2, bx])


@dataclass(frozen=True)
class Reading:
    pitch_y: float  # rigid points' mean y, iod (down +)
    brow: float  # brows over eye corners, iod (up +)
    gap: float  # inner-lip gap, iod
    iris: tuple[float, float]  # iris centre's offset from the eye box centre, iod (x right +, y up +)
    open_eye: float  # eye opening (lids), iod: a blink makes the iris unreadable


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class FaceMeter:
    """Readings of one avatar's frames, in its neutral frame's iod; ``degrees`` maps pitch_y to head pitch."""

    def __init__(self, neutral: np.ndarray) -> None:
        self._predictor = shape_predictor()  # loaded once per process, shared with the lip meter
        rects = dlib.get_frontal_face_detector()(neutral, 0)
        if not rects:
            raise AssertionError("dlib finds no face on the neutral frame")
        self._rect = max(rects, key=lambda r: r.area())
        lm = self.points(neutral)
        self.iod = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
        gray = _gray(neutral)
        self._iris_at = [_darkest(gray, lm[36:42]), _darkest(gray, lm[42:48])]
        self._iris_tpl = [_patch(gray, at, IRIS_R) for at in self._iris_at]
        self._corner_r = max(3, round(CORNER_R * self.iod))
        self._corner_at = [(int(round(x)), int(round(y))) for x, y in lm[EYE_CORNERS]]
        self._corner_tpl = [_patch(gray, at, self._corner_r) for at in self._corner_at]
        self.neutral = self.read(neutral)
        self.per_degree = 0.0  # pitch_y per degree of headPitch (calibrate)

    def points(self, img: np.ndarray) -> np.ndarray:
        shape = self._predictor(img, self._rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def calibrate(self, pitched: np.ndarray, degrees: float) -> None:
        self.per_degree = (self.read(pitched).pitch_y - self.neutral.pitch_y) / degrees

    def degrees(self, reading: Reading) -> float:
        """Head pitch (degrees, up +) of a reading: the engine's convention."""
        return (reading.pitch_y - self.neutral.pitch_y) / self.per_degree

    def _iris(self, gray: np.ndarray) -> tuple[float, float]:
        """Each iris's shift from the neutral frame's, less the eye corners' shift (the head's own motion), averaged
        over both eyes, in iod (x right +, y up +)."""
        irises = [_shift(gray, at, tpl, IRIS_R) for at, tpl in zip(self._iris_at, self._iris_tpl, strict=True)]
        corners = [_shift(gray, at, tpl, self._corner_r)
                   for at, tpl in zip(self._corner_at, self._corner_tpl, strict=True)]
        dx, dy = np.mean(irises, axis=0) - np.mean(corners, axis=0)
        return float(dx / self.iod), float(-dy / self.iod)

    def read(self, img: np.ndarray) -> Reading:
        lm = self.points(img)
        u = getattr(self, "iod", 1.0)
        pitch_y = float(lm[RIGID, 1].mean()) / u
        brow = float(lm[EYE_CORNERS, 1].mean() - lm[BROWS, 1].mean()) / u
        gap = float(np.mean([lm[67, 1] - lm[61, 1], lm[66, 1] - lm[62, 1], lm[65, 1] - lm[63, 1]])) / u
        opening = float(np.mean([lm[41, 1] - lm[37, 1], lm[40, 1] - lm[38, 1], lm[47, 1] - lm[43, 1],
                                 lm[46, 1] - lm[44, 1]])) / u
        iris = self._iris(_gray(img)) if hasattr(self, "_corner_tpl") else (0.0, 0.0)
        return Reading(pitch_y, brow, gap, iris, opening)
