"""Skin folds a warp cannot make: the creases expressions press into the skin, drawn as shadows.

Why drawn: a warp moves the photo's pixels but adds no shading, and several expressions are read as much by their
creases as by what moves. A smile lifts the cheek into a bulge whose edge is the nasolabial fold, from the nostril
wing past the mouth corner (AU6 + AU12): without it a smile on smooth skin read as teeth in a stretched mouth.
Raised brows (AU1, AU2) fold the forehead into horizontal lines, over the middle for the inner brows, across for
the outer ones. Each crease is a shadow multiplied into the frame (the photo's skin, light and grain stay): a soft
line, a wider shade on one side, a little light on the other (the bulge), easing in and out along its length. The
curves follow the landmarks as the frame's field moves them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engine.render.offline.tuning import CROP

SAMPLES = 12


@dataclass(frozen=True)
class Crease:
    """How one kind of fold is shaded at depth 1: shares of the skin's light taken (``light``: given back)."""

    dark: float  # the crease line
    shade: float  # the shade on its shaded side
    light: float  # the light on its other side (the bulge)
    width: float  # the line's width, iod (one sigma)
    spread: float  # the shade and the light are this many times as wide
    fade: tuple[float, float]  # shares of the length over which it eases in (start) and out (end)


# The nasolabial fold: shaded on its inner (the mouth's) side, the cheek's bulge lit; deepest near the nose.
NASOLABIAL = Crease(dark=0.1, shade=0.08, light=0.05, width=0.022, spread=3.0, fade=(0.1, 0.35))
# A forehead line: shaded below (the skin folds down over it), lit above.
FOREHEAD = Crease(dark=0.07, shade=0.05, light=0.03, width=0.014, spread=3.0, fade=(0.3, 0.3))
CHEEK_SHARE = 0.5  # cheekSquint deepens the nasolabial fold this much of a smile's worth
OUTER_SHARE = 0.7  # browOuterUp folds the forehead this much of browInnerUp's worth


def bezier(start: np.ndarray, bend: np.ndarray, end: np.ndarray) -> np.ndarray:
    """A quadratic Bezier, SAMPLES points (crop px)."""
    t = np.linspace(0.0, 1.0, SAMPLES)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t ** 2 * end


def draw_crease(out: np.ndarray, curve: np.ndarray, iod: float, depth: float, crease: Crease,
                shaded: np.ndarray) -> None:
    """Multiply one crease's shadow into ``out`` in place along ``curve``; ``shaded`` is an image direction
    pointing to its shaded side."""
    if depth <= 0.0:
        return
    width = crease.width * iod
    reach = 2.5 * crease.spread * width
    x0 = int(max(0, math.floor(curve[:, 0].min() - reach)))
    x1 = int(min(CROP, math.ceil(curve[:, 0].max() + reach)))
    y0 = int(max(0, math.floor(curve[:, 1].min() - reach)))
    y1 = int(min(CROP, math.ceil(curve[:, 1].max() + reach)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    # Evaluated on every second pixel and upsampled: the shadow is soft (its line is a few px wide).
    ys, xs = np.mgrid[y0:y1:2, x0:x1:2].astype(np.float32) + 0.5
    # The nearest point on the polyline: each segment's closest point, then the closest segment.
    a = curve[:-1].astype(np.float32)
    ab = (curve[1:] - curve[:-1]).astype(np.float32)
    px, py = xs[..., None] - a[:, 0], ys[..., None] - a[:, 1]
    t = np.clip((px * ab[:, 0] + py * ab[:, 1]) / np.maximum((ab ** 2).sum(1), 1e-6), 0.0, 1.0)
    off_x, off_y = px - t * ab[:, 0], py - t * ab[:, 1]
    d2 = off_x * off_x + off_y * off_y
    nearest = d2.argmin(-1)[..., None]
    dist = np.sqrt(np.take_along_axis(d2, nearest, -1)[..., 0])
    along = (nearest[..., 0] + np.take_along_axis(t, nearest, -1)[..., 0]) / (len(curve) - 1)
    fade_in, fade_out = crease.fade
    strength = np.clip(along / fade_in, 0.0, 1.0) * np.clip((1.0 - along) / fade_out, 0.0, 1.0)
    away_x, away_y = (np.take_along_axis(o, nearest, -1)[..., 0] for o in (off_x, off_y))  # from the line
    signed = np.where(away_x * shaded[0] + away_y * shaded[1] > 0.0, dist, -dist)  # positive on the shaded side
    line = np.exp(-0.5 * (dist / width) ** 2)
    on_shaded = 1.0 / (1.0 + np.exp(-signed / width))  # eases across the line
    broad = np.exp(-0.5 * (signed / (crease.spread * width)) ** 2)
    dark = depth * strength * (crease.dark * line + (crease.shade * on_shaded - crease.light * (1.0 - on_shaded))
                               * broad)
    dark = cv2.resize(np.clip(dark, -0.2, 0.9).astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    patch = out[y0:y1, x0:x1].astype(np.float32)
    patch *= (1.0 - dark)[..., None]
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


# The landmarks the folds follow, moved with the frame's field: nostril wings, mouth corners, the brows' middles and
# inner ends (image left, then right, in each pair).
ANCHORS = (31, 35, 48, 54, 19, 24, 21, 22)


@dataclass(frozen=True)
class FoldDepths:
    """How deep each fold is drawn (0..1): pairs are (image left, image right)."""

    nasolabial: tuple[float, float] = (0.0, 0.0)
    forehead: float = 0.0
    forehead_reach: tuple[float, float] = (0.0, 0.0)  # towards each side, 0: over the middle only (inner brows
    # up), 1: out to that side's brow tail (its outer brow up too)

    def any(self) -> bool:
        return max(*self.nasolabial, self.forehead) > 0.0


def nasolabial_curve(wing: np.ndarray, corner: np.ndarray, iod: float, sign: float) -> np.ndarray:
    """From beside the nostril wing, bowing out past the mouth corner and down (``sign``: -1 image left)."""
    return bezier(wing + np.array([sign * 0.06, -0.1]) * iod, corner + np.array([sign * 0.12, -0.12]) * iod,
                  corner + np.array([sign * 0.1, 0.2]) * iod)


def forehead_curves(brows: np.ndarray, iod: float, reach: tuple[float, float]) -> list[np.ndarray]:
    """Two lines above the brows, bowed up in the middle: over the middle third, and out towards a side as far as
    its ``reach`` (1: above the brow's tail)."""
    centre = float(brows[:, 0].mean())
    top = float(brows[:, 1].min())
    left, right = ((0.24 + 0.36 * r) * iod for r in reach)
    out = []
    for rise in (0.17, 0.31):
        y = top - rise * iod
        out.append(bezier(np.array([centre - left, y + 0.035 * iod]), np.array([centre + (right - left) / 2,
                                                                                 y - 0.05 * iod]),
                          np.array([centre + right, y + 0.035 * iod])))
    return out


def draw_folds(out: np.ndarray, anchors: np.ndarray, iod: float, depths: FoldDepths) -> None:
    """Every fold ``depths`` asks for, into ``out`` in place; ``anchors`` are the moved ANCHORS, crop px."""
    p = dict(zip(ANCHORS, anchors, strict=True))
    for k, sign in enumerate((-1.0, 1.0)):
        inward = np.array([-sign, 0.0])
        draw_crease(out, nasolabial_curve(p[(31, 35)[k]], p[(48, 54)[k]], iod, sign), iod, depths.nasolabial[k],
                    NASOLABIAL, inward)
    if depths.forehead > 0.0:
        brows = np.array([p[19], p[21], p[22], p[24]])
        for curve in forehead_curves(brows, iod, depths.forehead_reach):
            draw_crease(out, curve, iod, depths.forehead, FOREHEAD, np.array([0.0, 1.0]))
