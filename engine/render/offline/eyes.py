"""Eyes: the lids and the eyeball behind them.

Lids: a blink slides the upper lid down over the eye and occludes it (the iris is covered, not squashed). The lash
line moves rigidly to the moving lid edge and the lid above it is drawn from the clean skin between the lid and the
crease, with the lid's own texture packed in just above the lashes. Widening (AU5) and looking up move the same
lash line up instead, folding the lid skin into the crease; the white they uncover is the eyeball's.

Eyeball: the iris is found in the pixels (the darkest round blob inside the eye opening) and kept as its own disc,
its hidden parts completed from its visible ones; behind it, the white of the eye is filled in. Gaze moves the
disc over that white and the lids clip it, so the iris travels as far as a person's does without smearing, and a
raised lid shows white above the iris without touching the lower lid (no ring).

Why measure the lash line: photos have a thin one, cartoons a thick drawn one; moving only part of a thick line
breaks it in two, so the rigid part is as thick as the dark line the photo actually shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from engine.render.offline.tuning import (
    GAZE_LID_DOWN,
    GAZE_LID_UP,
    GAZE_X,
    GAZE_Y,
    IRIS_MAX,
    IRIS_MIN,
    LASH,
    LASH_MAX,
    LID_BAND,
    LID_EASE,
    LID_OVERSHOOT,
    SCLERA_CHROMA,
    SCLERA_REACH,
    SCLERA_SHADE,
    WIDE_RAISE,
    WIDE_ROOM,
)


@dataclass(eq=False)
class Eyeball:
    """What gaze moves: the iris disc (premultiplied RGBA, centred on ``centre``) over a white-of-the-eye layer.

    ``background`` covers ``box`` (crop px): the photo, except where the iris was and in the strip above the lid
    that a raised lid uncovers, which hold the filled-in white.
    """

    centre: tuple[float, float]  # crop px
    radius: float  # px
    box: tuple[int, int, int, int]
    background: np.ndarray  # (h, w, 3) float32
    iris: np.ndarray  # (s, s, 4) float32, premultiplied, the disc's centre at ((s - 1) / 2, (s - 1) / 2)


@dataclass(eq=False)
class Eye:
    """Per-eye blink geometry: lid curves as quadratics in x, the eye's x span, the lid band and lash heights."""

    x0: float
    x1: float
    upper: np.ndarray  # polyfit coefficients, y of the upper lid at x
    lower: np.ndarray
    band: float  # px of lid skin above the lashes that stretches over the closing eye
    lash: float  # px of lash line that slides rigidly with the lid edge
    overshoot: float  # px the closed lid tucks past the fitted lower lid (which sits a little high)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in crop pixels
    sclera_below: float = 0.0  # px of white eye below the fitted lower lid (cartoons: dlib fits the iris)
    margin: float = 1.5  # px below the fitted upper lid that still belong to the lid (the lashes' own shadow)
    raise_max: float = 0.0  # px the lid can rise before its skin runs out (below the crease)
    ball: Eyeball | None = None  # set by ``with_eyeball`` once both eyes are paired


def _dark_line(crop: np.ndarray, upper: np.ndarray, x0: float, x1: float, band: float) -> float:
    """Thickness (px) of the dark lid line above the fitted upper lid, median over the eye's middle half."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = grey.shape
    found = []
    for x in np.linspace(x0 + 0.3 * (x1 - x0), x1 - 0.3 * (x1 - x0), 7):
        xi = int(round(x))
        y_lid = float(np.polyval(upper, x))
        top, bottom = int(math.floor(y_lid - band)), int(math.ceil(y_lid + 2))
        if xi < 0 or xi >= w or top < 0 or bottom >= h or bottom - top < 4:
            continue
        column = grey[top:bottom + 1, xi]
        skin = float(np.median(column[: max(2, len(column) // 3)]))
        dark = float(column.min())
        if skin - dark < 25.0:  # no contrasting line here
            continue
        j = int(np.argmax(column < (skin + dark) / 2))  # the first dark row from the top
        found.append(float(bottom - (j + top)))  # from the line's top down to just below the fitted lid
    return float(np.median(found)) if found else 0.0


def _sclera_below(crop: np.ndarray, lower: np.ndarray, x0: float, x1: float, reach: float,
                  skin: np.ndarray) -> float:
    """How far the eye (iris, then white) continues below the fitted lower lid (px, median over the eye's middle).

    Why: on drawn eyes dlib's 68 points often trace the iris, so a blink closing to the fitted lower lid leaves a
    crescent of eye below it. A column counts only when white of the eye (brighter and far less coloured than the
    face's skin) shows below the fit; on photos the fitted lower lid sits on skin and this is 0.
    """
    h, w = crop.shape[:2]
    img = crop.astype(np.float32)
    skin_chroma = float(skin.max() - skin.min())
    skin_light = float(skin.mean())
    runs = []
    for x in np.linspace(x0 + 0.3 * (x1 - x0), x1 - 0.3 * (x1 - x0), 7):
        xi = int(round(x))
        y = int(math.ceil(np.polyval(lower, x)))
        if not (0 <= xi < w and y >= 0 and y + reach < h):
            continue
        column = img[y:int(y + reach), xi]
        white = (column.mean(-1) > skin_light) & (np.ptp(column, -1) < SCLERA_CHROMA * max(skin_chroma, 1.0))
        if not white.any():
            runs.append(0.0)
            continue
        last = int(np.flatnonzero(white)[-1])
        runs.append(float(last + 1))
    return float(np.median(runs)) if runs else 0.0


def eye_geometry(crop: np.ndarray, lm: np.ndarray, iod: float, eye: tuple[int, ...], brow: tuple[int, ...]) -> Eye:
    outer, u1, u2, inner, l1, l2 = (lm[i].astype(np.float64) for i in eye)
    upper = np.polyfit([outer[0], u1[0], u2[0], inner[0]], [outer[1], u1[1], u2[1], inner[1]], 2)
    lower = np.polyfit([outer[0], l2[0], l1[0], inner[0]], [outer[1], l2[1], l1[1], inner[1]], 2)
    x0, x1 = min(outer[0], inner[0]), max(outer[0], inner[0])
    lid_y = (u1[1] + u2[1]) / 2
    brow_y = float(lm[list(brow[1:4]), 1].mean())
    band = max(LID_BAND * (lid_y - brow_y), 2.0)  # lid skin that stretches; the crease above it stays
    line = min(_dark_line(crop, upper, x0, x1, band), LASH_MAX * iod)
    lash = min(max(LASH * iod, line), 0.45 * band)
    top = min(u1[1], u2[1]) - band
    bottom = max(l1[1], l2[1]) + 0.05 * iod
    box = (int(math.floor(x0 - 2)), int(math.floor(top - 2)), int(math.ceil(x1 + 2)), int(math.ceil(bottom + 2)))
    cheek = crop[int(lm[29, 1]) - 3:int(lm[29, 1]) + 3, int(lm[29, 0]) - 3:int(lm[29, 0]) + 3].reshape(-1, 3)
    skin = cheek.astype(np.float32).mean(0) if len(cheek) else np.array([200.0, 160.0, 140.0], np.float32)
    sclera = _sclera_below(crop, lower, x0, x1, SCLERA_REACH * iod, skin)
    bottom += sclera
    box = (box[0], box[1], box[2], int(math.ceil(bottom + 2)))
    raise_max = min(WIDE_RAISE * iod, WIDE_ROOM * max(band - lash, 0.0))
    return Eye(x0=float(x0), x1=float(x1), upper=upper, lower=lower, band=band, lash=lash,
               overshoot=LID_OVERSHOOT * iod, box=box, sclera_below=sclera, margin=max(1.5, 0.015 * iod),
               raise_max=raise_max)


def _lid_rows(eye: Eye, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fitted upper lid and the eye's true lower edge (with the white below a cartoon's fit) at columns ``xs``."""
    mid, half = (eye.x0 + eye.x1) / 2, max((eye.x1 - eye.x0) / 2, 1.0)
    below = eye.sclera_below * np.clip(1.0 - ((xs - mid) / half) ** 2, 0.0, None)
    return np.polyval(eye.upper, xs), np.polyval(eye.lower, xs) + below


def _visible(eye: Eye, shape: tuple[int, int], origin: tuple[int, int]) -> np.ndarray:
    """The eye opening over a (h, w) region at ``origin``: pixels between the lids (the lashes' margin excluded)."""
    h, w = shape
    xs = np.arange(w, dtype=np.float64) + origin[0]
    ys = np.arange(h, dtype=np.float64)[:, None] + origin[1]
    upper, lower = _lid_rows(eye, xs)
    inside = (xs > eye.x0 + 1) & (xs < eye.x1 - 1)
    return (ys > upper + eye.margin) & (ys < lower - 0.5) & inside[None, :]


def _whiteness(region: np.ndarray) -> np.ndarray:
    """Light and colourless is the white of the eye; irises are darker (photos) or coloured (drawn blue eyes)."""
    luma = region @ np.array([0.299, 0.587, 0.114], np.float32)
    return luma - (region.max(-1) - region.min(-1))


def _fit_circle(iris: np.ndarray, opening: np.ndarray, a: int, b: int, guess: float
                ) -> tuple[float, float, float] | None:
    """A circle through the iris's side edges (rows where white shows on both sides), least squares; or None."""
    h, w = iris.shape
    lo, hi = max(0, int(a - guess)), min(w, int(b + guess))
    pts = []
    for y in range(h):
        row = np.flatnonzero(iris[y, lo:hi]) + lo
        if len(row) < 2:
            continue
        left, right = int(row.min()), int(row.max())
        if left - 2 >= 0 and opening[y, left - 2] and not iris[y, left - 2]:
            pts.append((left - 0.5, y))
        if right + 2 < w and opening[y, right + 2] and not iris[y, right + 2]:
            pts.append((right + 0.5, y))
    if len(pts) < 6 or len({p[1] for p in pts}) < 3:
        return None
    p = np.array(pts, np.float64)
    design = np.column_stack([2 * p[:, 0], 2 * p[:, 1], np.ones(len(p))])
    (fx, fy, c), *_ = np.linalg.lstsq(design, (p ** 2).sum(1), rcond=None)
    r2 = c + fx * fx + fy * fy
    return (float(fx), float(fy), float(math.sqrt(r2))) if r2 > 1.0 else None


def find_iris(crop: np.ndarray, eye: Eye) -> tuple[float, float, float, bool]:
    """(cx, cy, radius, found): the iris as a circle in crop px, or found False where the eye shows no white.

    Inside the eye opening, pixels far less white than the eye's white are iris (or pupil). Columns that are
    mostly such pixels are the iris's (its width shows even when the lids cover its top and bottom); the centre's
    height comes from the iris's visible lower edge where it shows, else from the middle of what shows. A statue's
    or a squinting eye without visible white is not redrawn.
    """
    x0, y0, x1, y1 = eye.box
    h, w = crop.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    width = eye.x1 - eye.x0
    mid_x = (eye.x0 + eye.x1) / 2
    up_mid, low_mid = _lid_rows(eye, np.array([mid_x]))
    fallback = (float(mid_x), float((up_mid[0] + low_mid[0]) / 2), IRIS_MIN * width, False)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return fallback
    white = _whiteness(crop[y0:y1, x0:x1].astype(np.float32))
    opening = _visible(eye, white.shape, (x0, y0))
    if opening.sum() < 12:
        return fallback
    values = white[opening]
    bright, dark = float(np.percentile(values, 90)), float(np.percentile(values, 5))
    if bright - dark < 40.0:
        return fallback
    iris = opening & (white < dark + 0.5 * (bright - dark))
    if (opening & ~iris).sum() < 0.15 * opening.sum():
        return fallback
    per_col = opening.sum(0)
    dark_cols = (iris.sum(0) > 0.5 * np.maximum(per_col, 1)) & (per_col >= 3)
    runs, start = [], None
    for i, on in enumerate([*dark_cols.tolist(), False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append((int(iris[:, start:i].sum()), start, i))
            start = None
    if not runs:
        return fallback
    _, a, b = max(runs)
    if (b - a) < 2 * IRIS_MIN * width * 0.7:
        return fallback
    radius = float(np.clip((b - a) / 2, IRIS_MIN * width, IRIS_MAX * width))
    cols = iris[:, a:b]
    xs = np.arange(a, b, dtype=np.float64)
    cx = float((cols.sum(0) * xs).sum() / max(cols.sum(), 1)) + x0
    centre_cols = iris[:, max(a, int(cx - x0 - 0.5 * radius)):max(a + 1, int(cx - x0 + 0.5 * radius) + 1)]
    rows = np.flatnonzero(centre_cols.any(1))
    top, bottom = float(rows.min() + y0), float(rows.max() + y0)
    up, low = _lid_rows(eye, np.array([cx]))
    if bottom < low[0] - 1.5:  # the iris's lower edge shows above the lower lid
        cy = bottom - radius
    elif top > up[0] + eye.margin + 1.5:
        cy = top + radius
    else:
        cy = (top + bottom) / 2
    fitted = _fit_circle(iris, opening, a, b, radius)
    if fitted is not None:
        fx, fy, fr = fitted
        if IRIS_MIN * width <= fr <= IRIS_MAX * width and a <= fx <= b:  # its centre over the dark columns
            cx, cy, radius = fx + x0, fy + y0, fr
    return cx, float(cy), radius, True


def with_eyeballs(crop: np.ndarray, eyes: tuple[Eye, ...]) -> tuple[Eye, ...]:
    """Both eyes with their eyeballs. Irises are the same size in both eyes: each takes the larger of the two
    finds (a shadowed eye loses its iris's edge to the shadow, a drawn one's light iris can read as its pupil)."""
    found = [find_iris(crop, eye) for eye in eyes]
    radius = max((r for *_, r, ok in found if ok), default=0.0)
    out = []
    for eye, (cx, cy, _, ok) in zip(eyes, found, strict=True):
        width = eye.x1 - eye.x0
        out.append(with_eyeball(crop, eye, (cx, cy, min(radius, IRIS_MAX * width))) if ok else eye)
    return tuple(out)


def _mirrored(row: np.ndarray, known: np.ndarray, gap: np.ndarray, edge: np.ndarray, sign: int) -> np.ndarray:
    """A row's colours mirrored across the gap's ``edge`` columns (outwards: ``sign``); beyond the known white, the
    edge's own colour."""
    src = np.clip(edge + sign * np.abs(gap - edge), 0, len(row) - 1)
    return row[np.where(known[src], src, edge)]


def _row_white(region: np.ndarray, known: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    """The hidden white, row by row, from the eye's own white: each unknown pixel takes the known white of its row
    mirrored across the nearest edges of the gap on both sides (blended by distance), so the photo's texture,
    shading and corner tint carry into the gap; rows with no white of their own keep ``smooth`` (the inpainting)."""
    out = smooth.copy()
    h, w = known.shape
    for y in range(h):
        have = np.flatnonzero(known[y])
        if len(have) < 3:
            continue
        gap = np.flatnonzero(~known[y])
        if not len(gap):
            continue
        pos = np.searchsorted(have, gap)
        left = have[np.clip(pos - 1, 0, len(have) - 1)]
        right = have[np.clip(pos, 0, len(have) - 1)]
        has_l, has_r = pos > 0, pos < len(have)

        from_l, from_r = (_mirrored(region[y], known[y], gap, edge, sign) for edge, sign in ((left, -1), (right, 1)))
        dl, dr = np.abs(gap - left).astype(np.float32), np.abs(right - gap).astype(np.float32)
        wl = np.where(has_l & has_r, dr / np.maximum(dl + dr, 1.0), has_l.astype(np.float32))[:, None]
        sampled = wl * from_l + (1.0 - wl) * from_r
        out[y, gap] = sampled
    return out


def with_eyeball(crop: np.ndarray, eye: Eye, iris_circle: tuple[float, float, float]) -> Eye:
    """The eye with its eyeball: the iris disc (``iris_circle``: cx, cy, radius) cut out and completed, the white
    behind it filled in."""
    cx, cy, radius = iris_circle
    h, w = crop.shape[:2]
    x0, y0, x1, y1 = max(eye.box[0], 0), max(eye.box[1], 0), min(eye.box[2], w), min(eye.box[3], h)
    region = crop[y0:y1, x0:x1].astype(np.float32)
    opening = _visible(eye, region.shape[:2], (x0, y0))
    gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    dist = np.hypot(gx - cx, gy - cy)
    # The white: the iris's place and the strip a raised lid uncovers are filled in from the white that shows
    # (everything outside the opening is unknown too, so no lash or skin colour bleeds in).
    xs = gx[0]
    upper, _ = _lid_rows(eye, xs)
    reach = eye.raise_max + 2 * GAZE_Y * (eye.x1 - eye.x0)
    above = (gy < upper[None, :] + eye.margin) & (gy > upper[None, :] - reach)
    ring = radius * 1.1 + 2  # the limbus's soft dark edge goes too, or a ghost ring stays
    fill = ((dist <= ring) | above) & ((xs > eye.x0)[None, :] & (xs < eye.x1)[None, :])
    known = opening & (dist > ring)
    sclera = np.median(region[known], axis=0) if known.any() else np.array([225.0, 220.0, 215.0], np.float32)
    base = np.where(known[..., None], region, sclera[None, None, :])
    filled = cv2.inpaint(np.clip(base, 0, 255).astype(np.uint8), (~known).astype(np.uint8), 4, cv2.INPAINT_TELEA)
    filled = _row_white(region, known, filled.astype(np.float32))
    # The white is shaded under the upper lid (its shadow, and the eyeball curving away), as the photo's is.
    span = max(float(np.median(_lid_rows(eye, xs)[1] - upper)), 2.0)
    shade = 1.0 - SCLERA_SHADE * np.clip(1.0 - (gy - upper[None, :]) / (0.45 * span), 0.0, 1.0)
    filled = filled.astype(np.float32) * shade[..., None]
    # A soft seam between the filled white and the photo (full inside the old iris, so no ghost of it stays).
    soft = np.maximum(cv2.GaussianBlur(fill.astype(np.float32), (0, 0), 1.2), (dist <= radius * 1.05) & fill)
    background = region + soft[..., None] * (filled.astype(np.float32) - region)
    # The iris disc: visible pixels as they are; hidden ones mirrored across the centre line, else its ring colour.
    r = int(math.ceil(radius)) + 2
    side = 2 * r + 1
    px, py = np.meshgrid(np.arange(side, dtype=np.float64) - r + cx, np.arange(side, dtype=np.float64) - r + cy)
    pd = np.hypot(px - cx, py - cy)
    full = crop.astype(np.float32)
    seen = _visible(eye, (h, w), (0, 0))

    def sample(xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xi = np.clip(np.round(xx).astype(int), 0, w - 1)
        yi = np.clip(np.round(yy).astype(int), 0, h - 1)
        ok = seen[yi, xi] & (np.hypot(xx - cx, yy - cy) <= radius - 1.0)
        return full[yi, xi], ok

    colour, ok = sample(px, py)
    mirror, mirror_ok = sample(px, 2 * cy - py)
    rgb = np.where(ok[..., None], colour, np.where(mirror_ok[..., None], mirror, 0.0))
    known = ok | mirror_ok
    rings = np.clip(pd.astype(int), 0, r)
    for k in np.unique(rings[~known]):
        near = known & (np.abs(pd - k) < 1.5)
        rgb[(rings == k) & ~known] = rgb[near].mean(0) if near.any() else sclera * 0.5
    alpha = np.clip(radius + 0.5 - pd, 0.0, 1.0)[..., None].astype(np.float32)
    iris = np.concatenate([rgb.astype(np.float32) * alpha, alpha], -1)
    ball = Eyeball(centre=(float(cx), float(cy)), radius=float(radius), box=(x0, y0, x1, y1),
                   background=background.astype(np.float32), iris=iris.astype(np.float32))
    return replace(eye, ball=ball)


@dataclass(eq=False)
class LidFrame:
    """One eye in one frame, kept between the lid warp and the eyeball's drawing."""

    qx: np.ndarray  # the face warp's sample positions over the eye box (before the lids moved), crop px
    qy: np.ndarray
    opening: np.ndarray  # (h, w) 0..1: where the eyeball shows (below the moved lid, above the lower one)
    box: tuple[int, int, int, int]  # the eye box clipped to the frame's box, crop px


def gaze_shift(eye: Eye, gaze_x: float, gaze_y: float) -> tuple[float, float]:
    """The iris's displacement (px, image axes) for a gaze: gazeX + is the image's right, gazeY + is up."""
    width = eye.x1 - eye.x0
    return GAZE_X * width * gaze_x, -GAZE_Y * width * gaze_y


def move_lids(maps: np.ndarray, eye: Eye, close: float, wide: float, gaze_y: float,
              box: tuple[int, int, int, int], with_ball: bool) -> LidFrame | None:
    """Move the upper lid (``maps``: the frame's sampling map over ``box``, changed in place).

    ``close`` 0..1 slides it down over the eye (a blink, a squint); ``wide`` 0..1 raises it (AU5); the gaze pulls
    it along (down with a downward look, up with an upward one). Returns what the eyeball's drawing needs when
    ``with_ball`` (the eyeball is redrawn: gaze, or a raised lid uncovering white), else None.
    """
    ex0, ey0, ex1, ey1 = eye.box
    bx0, by0, bx1, by1 = box
    ex0, ey0, ex1, ey1 = max(ex0, bx0), max(ey0, by0), min(ex1, bx1), min(ey1, by1)
    if ex1 <= ex0 or ey1 <= ey0:
        return None
    region = maps[ey0 - by0:ey1 - by0, ex0 - bx0:ex1 - bx0]
    qx, qy = region[..., 0].copy(), region[..., 1].copy()
    u = np.polyval(eye.upper, qx)
    mid, half = (eye.x0 + eye.x1) / 2, max((eye.x1 - eye.x0) / 2, 1.0)
    arch = np.clip(1.0 - ((qx - mid) / half) ** 2, 0.0, None)  # 1 in the middle, 0 at the corners
    below = eye.sclera_below * arch  # the lid's true lower edge
    inside = (qx > eye.x0) & (qx < eye.x1)
    span = np.clip(np.polyval(eye.lower, qx) + below - u, 0.0, None) * inside
    width = eye.x1 - eye.x0
    close = max(close, GAZE_LID_DOWN * max(-gaze_y, 0.0))  # looking down, the lid follows the eye down
    lift = min(1.5 * eye.raise_max, eye.raise_max * wide + GAZE_LID_UP * GAZE_Y * width * max(gaze_y, 0.0))
    # How far below the resting lid the moving lid edge is (negative: raised), a raise fading out at the corners.
    edge = close * (span + eye.overshoot * (span > 0)) - (1.0 - close) * lift * arch * inside
    if not edge.any() and not with_ball:
        return None
    e = qy - u
    band, lash = eye.band, eye.lash  # the whole lash line moves: a thick drawn line stays whole
    margin = eye.margin if with_ball else 0.0  # the lashes' shadow moves with them where the eyeball is redrawn
    # The ease grows with the closure, so a small blink is a small change (no jump of the crease at w > 0).
    ease = 1.0 + (LID_EASE - 1.0) * float(min(1.0, close / 0.6))
    # Lash zone: a rigid shift by ``edge`` with a 1 px antialiasing ramp at the edge itself.
    in_lash = (e >= edge - lash) & (e < edge + margin + 0.5)
    shift_lash = edge * np.clip(edge + margin - e + 0.5, 0.0, 1.0)
    # Lid skin: [u - band, u + edge - lash] in the output samples [u - band, u - lash] of the photo on an ease-in
    # curve: the top of the closed lid is the clean skin at the band's top, the band's own texture (crease,
    # liner) is packed in just above the lashes instead of stretched over the whole lid. A raised lid packs the
    # same skin into less room (the fold deepens).
    in_skin = (e >= -band) & (e < edge - lash)
    t = np.clip((e + band) / np.maximum(band + edge - lash, 1e-6), 0.0, 1.0)
    skin_src = u - band + (band - lash) * t ** ease
    new_y = np.where(in_lash, qy - shift_lash, qy)
    new_y = np.where(in_skin, skin_src, new_y)
    if not with_ball:  # no eyeball to show (an eye without visible white): a raised lid stretches the eye instead
        stretch = (edge < 0) & (e >= edge + 0.5) & (e < span)
        new_y = np.where(stretch, u + (e - edge) * span / np.maximum(span - edge, 1e-6), new_y)
    region[..., 1] = new_y
    if not with_ball:
        return None
    lower = np.polyval(eye.lower, qx) + below
    opening = (np.clip(e - edge - margin + 0.5, 0.0, 1.0) * np.clip(lower - qy - 0.5, 0.0, 1.0) * inside)
    return LidFrame(qx=qx, qy=qy, opening=opening.astype(np.float32), box=(ex0, ey0, ex1, ey1))


def draw_eyeball(out: np.ndarray, eye: Eye, frame: LidFrame, shift: tuple[float, float]) -> None:
    """Draw the eyeball (the iris moved by ``shift`` px over the white) into the eye opening of the frame ``out``."""
    ball = eye.ball
    if ball is None:
        return
    bx0, by0, bx1, by1 = ball.box
    layer = ball.background.copy()
    s = ball.iris.shape[0]
    tx = ball.centre[0] + shift[0] - (s - 1) / 2 - bx0
    ty = ball.centre[1] + shift[1] - (s - 1) / 2 - by0
    moved = cv2.warpAffine(ball.iris, np.float32([[1, 0, tx], [0, 1, ty]]), (bx1 - bx0, by1 - by0),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    layer = layer * (1.0 - moved[..., 3:]) + moved[..., :3]
    ball_px = cv2.remap(layer, (frame.qx - bx0).astype(np.float32), (frame.qy - by0).astype(np.float32),
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    x0, y0, x1, y1 = frame.box
    a = frame.opening[..., None]
    target = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(target + a * (ball_px - target) + 0.5, 0, 255).astype(np.uint8)
