"""Mouth interior synthesis: the gap the jaw tears between the lips, filled with a shaded mouth and upper teeth.

Why drawn: a warp can only stretch the lips; a real opening shows a dark cavity. Its outline follows the moved
inner-lip contour as a smooth curve (no polygon corners), its edge is soft, it is darkest in the corners and
under the upper lip, and the teeth are tinted by the cavity's shade so they never read as a pasted white stripe.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from engine.render.offline.fields import smoothstep
from engine.render.offline.tuning import (
    CROP,
    INTERIOR_DARK,
    INTERIOR_EDGE,
    TEETH_HEIGHT,
    TEETH_MIN_PX,
    TEETH_MIX,
    TEETH_SHARE,
    TONGUE_LIFT,
)

SAMPLES_PER_SEGMENT = 6
OPEN_PX = 2.0  # an opening reaches full opacity at this height


def smooth_curve(points: np.ndarray) -> np.ndarray:
    """A Catmull-Rom curve through ``points`` (sorted by x), sampled densely: the lip contour without corners."""
    pts = points[np.argsort(points[:, 0])].astype(np.float64)
    padded = np.vstack([2 * pts[0] - pts[1], pts, 2 * pts[-1] - pts[-2]])
    t = np.linspace(0.0, 1.0, SAMPLES_PER_SEGMENT, endpoint=False)[:, None]
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(pts[-1:])
    return np.vstack(out)


def draw_interior(out: np.ndarray, top: np.ndarray, bottom: np.ndarray, iod: float, mouth_color: np.ndarray,
                  teeth_color: np.ndarray, teeth: bool, bite: float = 0.0) -> None:
    """Fill the gap between the moved upper (``top``) and lower (``bottom``) seams of ``out`` in place.

    ``bite`` (mouthRollLower, 0..1): the lower lip is tucked under the upper teeth, so the teeth fill the narrow gap
    down to the lower lip instead of a dark cavity (f, v)."""
    gap = bottom[:, 1] - top[:, 1]
    if float(gap.max()) < 0.75:
        return
    # The corners are where the lips meet: both curves end there, so the opening is a lens, never a box.
    top, bottom = top[np.argsort(top[:, 0])].copy(), bottom[np.argsort(bottom[:, 0])].copy()
    for i in (0, -1):
        top[i] = bottom[i] = (top[i] + bottom[i]) / 2
    top_c, bot_c = smooth_curve(top), smooth_curve(bottom)
    bot_c[:, 1] = np.maximum(bot_c[:, 1], np.interp(bot_c[:, 0], top_c[:, 0], top_c[:, 1]))
    poly = np.vstack([top_c, bot_c[::-1]])
    x0 = int(max(0, math.floor(poly[:, 0].min()) - 4))
    y0 = int(max(0, math.floor(poly[:, 1].min()) - 4))
    x1 = int(min(CROP, math.ceil(poly[:, 0].max()) + 5))
    y1 = int(min(CROP, math.ceil(poly[:, 1].max()) + 5))
    if x1 <= x0 or y1 <= y0:
        return
    h, w = y1 - y0, x1 - x0
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round((poly - (x0, y0)) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    alpha = cv2.GaussianBlur(mask, (0, 0), max(0.7, INTERIOR_EDGE * iod)).astype(np.float32) / 255.0

    xs = np.arange(x0, x1, dtype=np.float32)
    ty = np.interp(xs, top_c[:, 0], top_c[:, 1])
    by = np.interp(xs, bot_c[:, 0], bot_c[:, 1])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    opening = np.maximum(by - ty, 0.0)
    alpha *= np.clip(opening / OPEN_PX, 0.0, 1.0)[None, :]  # a closed stretch stays lips (no drawn outline)
    depth = np.clip((ys - ty[None, :]) / np.maximum(opening, 1.0)[None, :], 0.0, 1.0)  # 0 upper lip, 1 lower
    across = np.interp(xs, [top_c[0, 0], top_c[-1, 0]], [0.0, 1.0])
    middle = smoothstep(np.minimum(across, 1.0 - across) * 3.0)[None, :]  # 0 at the corners, 1 in the middle
    # Light: darkest in the corners and in the upper lip's shadow, a little light on the floor of the mouth.
    light = INTERIOR_DARK + (1.0 - INTERIOR_DARK) * 0.45 * middle * smoothstep((depth - 0.15) / 0.85)
    colour = mouth_color[None, None, :] * light[..., None]
    wide = np.clip((opening - 0.08 * iod) / (0.12 * iod), 0.0, 1.0)[None, :]
    tongue = TONGUE_LIFT * wide * middle * smoothstep((depth - 0.55) / 0.45)
    colour *= 1.0 + tongue[..., None] * np.array([1.0, 0.45, 0.45], np.float32)
    if teeth:
        teeth_h = np.minimum(TEETH_SHARE * opening, TEETH_HEIGHT * iod)
        teeth_h = teeth_h + min(1.0, bite) * (opening + 1.0 - teeth_h)  # resting on the tucked lower lip
        band = np.clip((ty[None, :] + teeth_h[None, :] - ys) / 2.5 + 0.5, 0.0, 1.0)  # below the upper lip
        band *= np.maximum(np.clip((opening[None, :] - TEETH_MIN_PX) / 4.0, 0.0, 1.0), min(1.0, bite)) * middle
        # Teeth in the mouth's light: shaded at the gum and at the corners, lit in the middle.
        v = np.clip((ys - ty[None, :]) / np.maximum(teeth_h, 1.0)[None, :], 0.0, 1.0)
        tooth_light = (0.5 + 0.5 * middle) * (1.0 - 0.3 * v * v)
        tooth = (TEETH_MIX * teeth_color[None, None, :] + (1.0 - TEETH_MIX) * mouth_color[None, None, :])
        tooth = tooth * tooth_light[..., None]
        colour += band[..., None] * (tooth - colour)
    patch = out[y0:y1, x0:x1].astype(np.float32)
    patch += alpha[..., None] * (colour - patch)
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
