"""The drawn mouth interior (engine.render.offline.mouth) in proportion to its opening: a dark cavity, the upper
teeth lit, the lower incisors in the jaw's warm shade; as soft as the photo it is drawn into.

Drawn into a flat canvas between two known seams, with a real portrait's colours, so every pixel's part is known
(a re-detected lip contour would jitter by more than the lower teeth are tall).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.render.offline import OfflineSource
from engine.render.offline.mouth import draw_interior, photo_blur
from engine.render.offline.tuning import CROP, LOWER_TEETH, SHARP_PHOTO_BLUR

IOD = 100.0
CX, CY = 256.0, 300.0
HALF_WIDTH = 0.45 * IOD
UPPER, LOWER = 0.12 * IOD, 0.26 * IOD  # the seams' distance from the rest line in the middle: a 0.38 iod jaw drop


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def draw_open_jaw(source: OfflineSource, blur: float = 0.0, rounding: float = 0.0) -> np.ndarray:
    """A 0.38 iod jaw drop between two parabolic seams, drawn with ``source``'s colours on grey skin."""
    u = np.linspace(-1.0, 1.0, 9)
    top = np.stack([CX + HALF_WIDTH * u, CY - UPPER * (1.0 - u * u)], 1)
    bottom = np.stack([CX + HALF_WIDTH * u, CY + LOWER * (1.0 - u * u)], 1)
    out = np.full((CROP, CROP, 3), 170, np.uint8)
    draw_interior(out, top, bottom, IOD, source.mouth_color, source.teeth_color, upper_teeth=1.0,
                  tongue_color=source.tongue_color, blur=blur, rounding=rounding)
    return out


@pytest.fixture(scope="module")
def opened(prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An open jaw drawn on grey skin: the frame, the upper seam's and the lower seam's y at each column."""
    out = draw_open_jaw(prepared("s42.jpg")[1])
    xs = np.arange(CROP, dtype=np.float32)
    v = np.clip((xs - CX) / HALF_WIDTH, -1.0, 1.0)
    return out, CY - UPPER * (1.0 - v * v), CY + LOWER * (1.0 - v * v)


def rows_between(img: np.ndarray, x: int, y0: float, y1: float) -> np.ndarray:
    return img[int(np.ceil(y0)):int(np.floor(y1)) + 1, x]


def test_the_cavity_is_dark_and_the_upper_teeth_are_lit(opened) -> None:
    out, ty, by = opened
    x = int(CX)
    cavity = luma(rows_between(out, x, ty[x] + 0.45 * (by[x] - ty[x]), ty[x] + 0.55 * (by[x] - ty[x]))).mean()
    upper = luma(rows_between(out, x + 3, ty[x] + 2, ty[x] + 5)).mean()  # beside the incisors' parting line
    assert cavity < 60 and upper > 2.5 * cavity, (cavity, upper)


def test_the_lower_incisors_show_above_the_lower_lip_in_the_jaws_warm_shade(opened) -> None:
    out, ty, by = opened
    x = int(CX) + 4  # beside the central incisors' parting line
    cavity = luma(rows_between(out, x, ty[x] + 0.45 * (by[x] - ty[x]), ty[x] + 0.55 * (by[x] - ty[x]))).mean()
    low = rows_between(out, x, by[x] - LOWER_TEETH * IOD + 1, by[x] - 1).astype(np.float32)
    assert luma(low).mean() > cavity + 25, (luma(low).mean(), cavity)
    assert luma(low).mean() < 0.8 * luma(rows_between(out, x, ty[x] + 2, ty[x] + 5)).mean()  # shaded
    red, blue = low[:, 0].mean(), low[:, 2].mean()
    assert blue < 0.8 * red, (red, blue)  # warm, not a cool grey against the red cavity


def test_rounded_lips_cover_the_upper_teeth(prepared) -> None:
    """An "o" (mouthFunnel, mouthPucker) pushes the upper lip forward and down over the teeth: less of them shows
    than in an opening as tall with relaxed lips (a small round mouth otherwise showed two big incisors)."""
    source = prepared("s42.jpg")[1]
    x = int(CX) + 3
    column = slice(int(CY - UPPER) - 1, int(CY + LOWER)), x
    lit = [int((luma(draw_open_jaw(source, rounding=r)[column]) > 120).sum()) for r in (0.0, 0.5, 1.0)]
    assert lit[0] >= 5 and lit[1] < lit[0] and lit[2] <= 0.6 * lit[0], lit


def face_of(prepared, name: str) -> tuple[np.ndarray, np.ndarray]:
    face, _ = prepared(name)
    return face.crop, face.crop_landmarks


def test_the_photos_softness_is_read_from_its_strongest_edges(prepared) -> None:
    crisp, sharp, soft = (photo_blur(*face_of(prepared, n)) for n in ("s7.jpg", "s42.jpg", "s11.jpg"))
    assert crisp < sharp <= SHARP_PHOTO_BLUR + 0.1 < SHARP_PHOTO_BLUR + 0.4 < soft, (crisp, sharp, soft)
    crop, landmarks = face_of(prepared, "s42.jpg")
    blurred = photo_blur(cv2.GaussianBlur(crop, (0, 0), 2.0), landmarks)
    assert blurred == pytest.approx(np.hypot(sharp, 2.0), abs=0.35), (sharp, blurred)  # sigmas add in quadrature
    step = np.zeros((CROP, CROP, 3), np.uint8)  # one edge in a flat fill, as a drawing has
    step[:, CROP // 2:] = 255
    assert photo_blur(step, landmarks) < 1.0
    assert photo_blur(cv2.GaussianBlur(step, (0, 0), 2.0), landmarks) == pytest.approx(2.0, abs=0.5)
    assert photo_blur(np.full((CROP, CROP, 3), 128, np.uint8), landmarks) == 0.0  # nothing to read


def test_a_soft_photo_gets_a_soft_mouth(prepared) -> None:
    source = prepared("s42.jpg")[1]
    crisp, soft = draw_open_jaw(source), draw_open_jaw(source, blur=2.5)
    assert np.array_equal(crisp, draw_open_jaw(source, blur=SHARP_PHOTO_BLUR))  # a sharp photo's is as drawn
    column = slice(int(CY - 0.2 * IOD), int(CY + 0.3 * IOD)), int(CX) + 3
    steepest = [np.abs(np.diff(luma(img[column]))).max() for img in (crisp, soft)]
    assert steepest[1] < 0.6 * steepest[0], steepest  # the teeth's edge on the cavity is softer
    region = (slice(int(CY - 0.2 * IOD), int(CY + 0.3 * IOD)), slice(int(CX - 0.5 * IOD), int(CX + 0.5 * IOD)))
    assert luma(soft[region]).mean() == pytest.approx(luma(crisp[region]).mean(), rel=0.03)  # no light lost
