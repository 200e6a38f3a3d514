"""Skin folds a warp cannot make: the nasolabial fold that a smile deepens (AU6 + AU12).

Why drawn: a smile lifts the cheek into a bulge whose lower edge is a crease from the nostril wing to beyond the
mouth corner, a line of shadow. A warp moves the photo's pixels but adds no shading, so a smile on a photo that
had no fold reads as teeth in a stretched mouth, not as a smile. The fold is a shadow multiplied into the frame
(it keeps the photo's skin, light and grain), deepest near the nose and fading out below the corner, with a softer
shade on its inner side where the upper lip's skin slopes into it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from engine.render.offline.tuning import CROP, FOLD_DARK, FOLD_LIGHT, FOLD_SHADE, FOLD_SPREAD, FOLD_WIDTH

SAMPLES = 16


def fold_curve(wing: np.ndarray, corner: np.ndarray, iod: float, sign: float) -> np.ndarray:
    """The fold as a quadratic Bezier (SAMPLES points, crop px): from beside the nostril wing, bowing out past the
    mouth corner and down. ``sign`` is -1 on the image's left, +1 on its right."""
    start = wing + np.array([sign * 0.06, -0.1]) * iod
    bend = corner + np.array([sign * 0.12, -0.12]) * iod
    end = corner + np.array([sign * 0.1, 0.2]) * iod
    t = np.linspace(0.0, 1.0, SAMPLES)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t ** 2 * end


def draw_fold(out: np.ndarray, curve: np.ndarray, iod: float, depth: float, sign: float) -> None:
    """Multiply the fold's shadow into ``out`` in place: a crease line ``FOLD_WIDTH`` iod wide darkened by
    ``FOLD_DARK * depth``, and a shade ``FOLD_SHADE * depth`` on its inner (the mouth's) side."""
    if depth <= 0.0:
        return
    reach = 2.5 * FOLD_SPREAD * FOLD_WIDTH * iod
    x0 = int(max(0, math.floor(curve[:, 0].min() - reach)))
    x1 = int(min(CROP, math.ceil(curve[:, 0].max() + reach)))
    y0 = int(max(0, math.floor(curve[:, 1].min() - reach)))
    y1 = int(min(CROP, math.ceil(curve[:, 1].max() + reach)))
    if x1 <= x0 or y1 <= y0:
        return
    # Evaluated on every second pixel and upsampled: the shadow is soft (its crease is a few px wide).
    ys, xs = np.mgrid[y0:y1:2, x0:x1:2].astype(np.float32) + 0.5
    # Distance to the nearest sample (dense enough for a smooth line) and where along the fold it is.
    dx = xs[..., None] - curve[None, None, :, 0].astype(np.float32)
    dy = ys[..., None] - curve[None, None, :, 1].astype(np.float32)
    d2 = dx * dx + dy * dy
    nearest = d2.argmin(-1)
    dist = np.sqrt(np.take_along_axis(d2, nearest[..., None], -1)[..., 0])
    along = nearest.astype(np.float32) / (SAMPLES - 1)
    # Deep near the nose, gone past the corner: in over the first tenth, out over the last third.
    strength = np.clip(along / 0.1, 0.0, 1.0) * np.clip((1.0 - along) / 0.35, 0.0, 1.0)
    # Signed distance: positive on the inner side (towards the face's middle), negative on the cheek's.
    signed = np.where(np.take_along_axis(-dx, nearest[..., None], -1)[..., 0] * sign > 0.0, dist, -dist)
    width = FOLD_WIDTH * iod
    crease = np.exp(-0.5 * (dist / width) ** 2)
    # The shade on the inner side and the lit bulge of the cheek on the outer side, each easing in across the line.
    inner = 1.0 / (1.0 + np.exp(-signed / width))
    shade = inner * np.exp(-0.5 * (signed / (FOLD_SPREAD * width)) ** 2)
    bulge = (1.0 - inner) * np.exp(-0.5 * (signed / (FOLD_SPREAD * width)) ** 2)
    dark = depth * strength * (FOLD_DARK * crease + FOLD_SHADE * shade - FOLD_LIGHT * bulge)
    dark = cv2.resize(np.clip(dark, -0.2, 0.9).astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    patch = out[y0:y1, x0:x1].astype(np.float32)
    patch *= (1.0 - dark)[..., None]
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def draw_smile_folds(out: np.ndarray, wings: np.ndarray, corners: np.ndarray, iod: float,
                     depths: tuple[float, float]) -> None:
    """Both folds: ``wings`` and ``corners`` are the image-left then image-right nostril wing and (moved) mouth
    corner, crop px; ``depths`` the image-left then image-right fold depth (0..1)."""
    for k, sign in enumerate((-1.0, 1.0)):
        if depths[k] > 0.0:
            draw_fold(out, fold_curve(wings[k], corners[k], iod, sign), iod, depths[k], sign)
