"""Displacement fields: landmark moves spread over the face, head pose parallax, and their inversion.

Why fields: ``prepare`` turns each control into a dense half-resolution field once per avatar, so a frame is a
weighted sum of fields, one inversion and one ``cv2.remap``: cheap enough for 30 fps on one core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from engine.render.offline.moves import N_EXTRA
from engine.render.offline.tuning import (
    CORNER_REACH,
    CORNER_SOFT,
    CROP,
    FIT_RIDGE,
    HEAD_DEPTH,
    HEAD_TOP,
    NOSE_DEPTH,
    NOSE_SIGMA,
    RIM_RAMP,
    SIDE_FADE,
    STEP,
)


def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def control_points(lm: np.ndarray, iod: float) -> np.ndarray:
    """The 68 landmarks plus forehead and cheek points that the fields also pin or move."""
    brow_top = float(lm[17:27, 1].min())
    eye_a, eye_b = lm[36:42].mean(0), lm[42:48].mean(0)
    mid = (eye_a + eye_b) / 2
    up = brow_top - 0.45 * iod
    forehead = [(eye_a[0], up), (mid[0], up - 0.05 * iod), (eye_b[0], up)]
    cheeks = [(lm[31] + lm[3]) / 2 - (0.0, 0.05 * iod), (lm[35] + lm[13]) / 2 - (0.0, 0.05 * iod)]
    extra = np.array([*forehead, *cheeks], np.float64).reshape(N_EXTRA, 2)
    return np.vstack([lm.astype(np.float64), extra])


def _basis(centres: np.ndarray, flat: np.ndarray, s2: float) -> np.ndarray:
    """Normalised Gaussians of every centre at ``flat`` (n, 2) -> (n, k); they sum to at most one."""
    c = centres.astype(np.float32)
    p = flat.astype(np.float32)
    d2 = (p[:, None, 0] - c[None, :, 0]) ** 2
    d2 += (p[:, None, 1] - c[None, :, 1]) ** 2
    d2 *= np.float32(-1.0 / s2)
    g = np.exp(d2, out=d2)
    return g / np.maximum(g.sum(1, keepdims=True), np.float32(1.0))


def spread(moves: dict[int, tuple[float, float]], sigma: float, points: np.ndarray, iod: float,
           xy: np.ndarray, allowed: set[int] | frozenset[int], fit: bool = True) -> np.ndarray:
    """Spread landmark moves over positions ``xy`` (..., 2) -> (..., 2) px with normalised Gaussians.

    Every allowed control point takes part (unmoved ones as pins), so the field is linear in the moves; where the
    Gaussians sum to less than one the field simply decays, so it is zero far from the face. The Gaussians'
    coefficients are fitted (ridge least squares) so that each point moves by about its table value: a plain
    weighted average of neighbours would dilute every move by its pinned neighbours.
    """
    return spread_many([(moves, fit)], sigma, points, iod, xy, allowed)[0]


def spread_many(tables: Sequence[tuple[dict[int, tuple[float, float]], bool]], sigma: float, points: np.ndarray,
                iod: float, xy: np.ndarray, allowed: set[int] | frozenset[int]) -> np.ndarray:
    """``spread`` of several move tables (each with its ``fit``) that share the spread, the points and the
    positions -> (len(tables), ..., 2): the Gaussians over ``xy``, most of an avatar's preparation, are evaluated
    once for all of them."""
    idx = [i for i in range(len(points)) if i in allowed]
    centres = points[idx]
    s2 = 2.0 * (sigma * iod) ** 2
    at_points = _basis(centres, centres, s2)
    normal = at_points.T @ at_points + FIT_RIDGE * np.eye(len(idx))
    coefs = []
    for moves, fit in tables:
        disp = np.array([moves.get(i, (0.0, 0.0)) for i in idx], np.float64) * iod
        coefs.append(np.linalg.solve(normal, at_points.T @ disp) if fit else disp)
    coef = np.concatenate(coefs, 1).astype(np.float32)  # (points, 2 * tables)
    flat = xy.reshape(-1, 2)
    out = np.empty((len(flat), coef.shape[1]), np.float64)
    for start in range(0, len(flat), 8192):
        out[start:start + 8192] = _basis(centres, flat[start:start + 8192], s2) @ coef
    return np.moveaxis(out.reshape(len(flat), len(tables), 2), 1, 0).reshape(len(tables), *xy.shape)


def head_geometry(lm: np.ndarray, iod: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Head ellipse (centre, semi-axes) and the depth amplitude used by yaw and pitch."""
    top = float(lm[17:27, 1].min()) - HEAD_TOP * iod
    bottom = float(lm[8, 1]) + 0.05 * iod
    left, right = float(lm[0:3, 0].min()), float(lm[14:17, 0].max())
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    axes = np.array([(right - left) / 2 * 1.08, (bottom - top) / 2 * 1.04])
    return centre, axes, HEAD_DEPTH * iod


def head_fields(lm: np.ndarray, iod: float, xy: np.ndarray) -> dict[str, np.ndarray]:
    """Per-degree fields for yaw, pitch and roll at positions ``xy`` (..., 2)."""
    centre, axes, depth = head_geometry(lm, iod)
    rel = (xy - centre) / axes
    r2 = (rel ** 2).sum(-1)
    nose = lm[30].astype(np.float64)
    nose_bump = np.exp(-((xy - nose) ** 2).sum(-1) / (2 * (NOSE_SIGMA * iod) ** 2))
    z = depth * np.clip(1.0 - r2, 0.0, None) + NOSE_DEPTH * iod * nose_bump * (r2 < 1.0)
    rad = math.pi / 180.0
    out = {"headYaw": np.stack([z * rad, np.zeros_like(z)], -1),
           "headPitch": np.stack([np.zeros_like(z), -z * rad], -1)}
    # Roll: rotation about the face centre, full inside the ellipse and fading out over half its size again.
    pivot = (lm[27] + lm[57]).astype(np.float64) / 2
    weight = 1.0 - smoothstep((np.sqrt(r2) - 1.0) / 0.5)
    d = xy - pivot
    out["headRoll"] = np.stack([-d[..., 1], d[..., 0]], -1) * (rad * weight)[..., None]
    return out


def even_box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
    """A box snapped outwards to even pixels and clipped to the crop."""
    bx0 = max(0, int(math.floor(x0 / STEP)) * STEP)
    by0 = max(0, int(math.floor(y0 / STEP)) * STEP)
    bx1 = min(CROP, int(math.ceil(x1 / STEP)) * STEP)
    by1 = min(CROP, int(math.ceil(y1 / STEP)) * STEP)
    return bx0, by0, bx1, by1


def half_grid(box: tuple[int, int, int, int]) -> np.ndarray:
    """Crop-pixel positions of the half-resolution samples of ``box`` (centres of 2x2 blocks)."""
    x0, y0, x1, y1 = box
    xs = np.arange(x0, x1, STEP, dtype=np.float64) + (STEP - 1) / 2
    ys = np.arange(y0, y1, STEP, dtype=np.float64) + (STEP - 1) / 2
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy], -1)


def rim(shape: tuple[int, int]) -> np.ndarray:
    """A fixed frame: 1 inside, falling to 0 on the box's rim, so the copy around the box is seamless."""
    out = np.ones(shape, np.float32)
    for i in range(RIM_RAMP):
        v = (i + 0.5) / RIM_RAMP
        out[i, :] = np.minimum(out[i, :], v)
        out[-1 - i, :] = np.minimum(out[-1 - i, :], v)
        out[:, i] = np.minimum(out[:, i], v)
        out[:, -1 - i] = np.minimum(out[:, -1 - i], v)
    return out


def index_grid(h: int, w: int) -> np.ndarray:
    return np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1)


def sample(field: np.ndarray, box: tuple[int, int, int, int], points: np.ndarray) -> np.ndarray:
    """A half-resolution field's values at crop points (bilinear): how far those points move."""
    at = ((points - np.array(box[:2]) - (STEP - 1) / 2) / STEP).astype(np.float32)[None]
    return cv2.remap(field, at, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]


def invert(fwd: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Backward displacement for a forward field: d(p) ~ f(p - f(p)) (one fixed-point step, half-res grid)."""
    back = grid - fwd / STEP
    return cv2.remap(fwd, back, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def blend_lower(up: np.ndarray, lo: np.ndarray, box: tuple[int, int, int, int],
                low_box: tuple[int, int, int, int], seam: np.ndarray, iod: float) -> None:
    """Below the (moved) seam the lower face's field wins: a hard edge between the lips that softens towards the
    corners (so the lips stay joined there and the opening is a lens) and beyond them, and fades out towards the
    lower region's sides (so its edges never show)."""
    bx0, by0 = box[0], box[1]
    lx0, ly0, lx1, ly1 = low_box
    xs = np.arange(lx0, lx1, STEP, dtype=np.float32) + 0.5
    ys = np.arange(ly0, ly1, STEP, dtype=np.float32) + 0.5
    order = np.argsort(seam[:, 0])
    sx, sy = seam[order, 0], seam[order, 1]
    seam_y = np.interp(xs, sx, sy)
    outside = np.maximum(sx[0] - xs, xs - sx[-1]).clip(0.0)  # px beyond the mouth corners
    inside = np.minimum(xs - sx[0], sx[-1] - xs).clip(0.0)  # px inside them
    corner = CORNER_SOFT * iod * (1.0 - smoothstep(inside / (CORNER_REACH * iod)))
    soft = 1.0 + outside * 1.2 + corner
    m = np.clip((ys[:, None] - seam_y[None, :]) / soft[None, :] + 0.5, 0.0, 1.0)
    side = np.minimum(xs - lx0, lx1 - xs)
    m *= smoothstep(side / (SIDE_FADE * iod))[None, :]
    r0, c0 = (ly0 - by0) // STEP, (lx0 - bx0) // STEP
    region = up[r0:r0 + lo.shape[0], c0:c0 + lo.shape[1]]
    region += m[..., None] * (lo - region)
