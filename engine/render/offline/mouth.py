"""Mouth interior synthesis: the gap the jaw tears between the lips, filled with a dark mouth, teeth and tongue.

Why drawn: a warp can only stretch the lips; a real opening shows a dark cavity. Its outline follows the moved
inner-lip contour as a smooth curve (no polygon corners), its edge is soft, it is darkest in the corners, under
the upper lip and, the wider it opens, deep in the middle (never a lit red glow). Upper teeth show below the upper
lip in proportion to the opening (more of it in a smile), down to a smooth incisal arc, parted into teeth by faint
lines; lower teeth once the jaw has dropped; the tongue lies low in a wide opening; all are tinted by the cavity's
shade so they never read as pasted. ``draw_tongue`` draws
ARKit's tongueOut over the lower lip.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from engine.render.offline.fields import smoothstep
from engine.render.offline.tuning import (
    CROP,
    INCISAL_ARC,
    INTERIOR_DARK,
    INTERIOR_EDGE,
    LOWER_TEETH,
    LOWER_TEETH_FROM,
    LOWER_TEETH_SHADE,
    LOWER_TEETH_SPAN,
    LOWER_TEETH_WARM,
    LOWER_TOOTH_GAPS,
    MIN_EXTRA_BLUR,
    PHOTO_BLUR_MAX,
    ROUND_COVERS_TEETH,
    SHARP_PHOTO_BLUR,
    TEETH_HEIGHT,
    TEETH_MIN_PX,
    TEETH_MIX,
    TEETH_SHARE,
    TEETH_SMILE,
    TEETH_SMILE_HEIGHT,
    THROAT_DARK,
    TONGUE_LIFT,
    TONGUE_OUT,
    TOOTH_GAPS,
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
                  teeth_color: np.ndarray, upper_teeth: float, bite: float = 0.0, tongue_out: float = 0.0,
                  tongue_color: np.ndarray | None = None, smile: float = 0.0, blur: float = 0.0,
                  rounding: float = 0.0) -> None:
    """Fill the gap between the moved upper (``top``) and lower (``bottom``) seams of ``out`` in place.

    ``bite`` (mouthRollLower, 0..1): the lower lip is tucked under the upper teeth, so the teeth fill the narrow gap
    down to the lower lip instead of a dark cavity (f, v). ``tongue_out`` (0..1) draws the tongue over the lower lip.
    ``smile`` (0..1): a smile bares the upper teeth (the upper lip drawn up and back off them), so they fill more of
    its opening. ``upper_teeth`` (0..1): how much of the drawn upper teeth to show; 0 where the photo's own upper
    teeth already show above the new opening (they move with the upper lip, a drawn row under them would double
    them). ``blur`` (px): the photo's own softness (``photo_blur``), which the drawing takes on. ``rounding`` (0..1,
    mouthFunnel or mouthPucker): rounded lips push forward and down over the upper teeth, so less of them shows."""
    tongue = tongue_color if tongue_color is not None else mouth_color * 2.0
    gap = bottom[:, 1] - top[:, 1]
    extra = math.sqrt(max(0.0, blur * blur - SHARP_PHOTO_BLUR * SHARP_PHOTO_BLUR))
    extra = extra if extra >= MIN_EXTRA_BLUR else 0.0  # too little to see: drawn as it is, in the usual box
    if float(gap.max()) >= 0.75:
        _cavity(out, top, bottom, iod, mouth_color, teeth_color, upper_teeth, bite, tongue, smile, extra, rounding)
    if tongue_out > 0.0:
        draw_tongue(out, top, bottom, iod, tongue, tongue_out, extra)


def photo_blur(crop: np.ndarray, landmarks: np.ndarray) -> float:
    """How soft the photo is, as the sigma (px) of a Gaussian blur of step edges: its strongest edges (eyes, brows,
    nostrils, lips) keep sigma / sqrt(sigma^2 + 1) of their gradient under a further blur of 1 px. Drawn teeth as
    crisp as a sharp photo's look pasted onto a soft one. A sharp photo reads SHARP_PHOTO_BLUR (its features are
    not step edges)."""
    x0, y0 = (int(v) for v in np.floor(landmarks[17:68].min(0)).clip(0, CROP - 2))
    x1, y1 = (int(v) for v in np.ceil(landmarks[17:68].max(0)).clip(0, CROP))
    x1, y1 = max(x1, x0 + 2), max(y1, y0 + 2)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)

    def gradient(img: np.ndarray) -> np.ndarray:
        region = img[y0:y1, x0:x1]
        return np.hypot(cv2.Sobel(region, cv2.CV_32F, 1, 0), cv2.Sobel(region, cv2.CV_32F, 0, 1))

    sharp = gradient(grey)
    # The crests: the top 2% (a face has many edges), but never the flanks of a few edges in flat fills.
    strong = sharp >= max(float(np.quantile(sharp, 0.98)), 0.5 * float(np.quantile(sharp, 0.999)))
    if float(sharp[strong].mean()) < 1.0:
        return 0.0  # a flat region: nothing to match
    kept = float(gradient(cv2.GaussianBlur(grey, (0, 0), 1.0))[strong].mean() / sharp[strong].mean())
    kept = min(kept, 0.97)
    return float(min(kept / math.sqrt(1.0 - kept * kept), PHOTO_BLUR_MAX))


def _composite(out: np.ndarray, box: tuple[int, int, int, int], colour: np.ndarray, alpha: np.ndarray,
               extra_blur: float) -> None:
    """Lay ``colour`` (h, w, 3) over ``out[box]`` by ``alpha`` (h, w), both softened first by ``extra_blur`` px
    (premultiplied, so the soft edge takes no colour from outside the shape)."""
    x0, y0, x1, y1 = box
    if extra_blur > 0.0:
        colour = cv2.GaussianBlur(colour * alpha[..., None], (0, 0), extra_blur)
        alpha = cv2.GaussianBlur(alpha, (0, 0), extra_blur)
        colour = colour / np.maximum(alpha, 1e-4)[..., None]
    patch = out[y0:y1, x0:x1].astype(np.float32)
    patch += alpha[..., None] * (colour - patch)
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def _cavity(out: np.ndarray, top: np.ndarray, bottom: np.ndarray, iod: float, mouth_color: np.ndarray,
            teeth_color: np.ndarray, upper_teeth: float, bite: float, tongue_color: np.ndarray, smile: float,
            extra_blur: float, rounding: float) -> None:
    """The opening itself: the dark cavity, upper and lower teeth, the tongue lying low in a wide opening."""
    # The corners are where the lips meet: both curves end there, so the opening is a lens, never a box.
    top, bottom = top[np.argsort(top[:, 0])].copy(), bottom[np.argsort(bottom[:, 0])].copy()
    for i in (0, -1):
        top[i] = bottom[i] = (top[i] + bottom[i]) / 2
    top_c, bot_c = smooth_curve(top), smooth_curve(bottom)
    bot_c[:, 1] = np.maximum(bot_c[:, 1], np.interp(bot_c[:, 0], top_c[:, 0], top_c[:, 1]))
    poly = np.vstack([top_c, bot_c[::-1]])
    pad = 4 + math.ceil(3.0 * extra_blur)
    x0 = int(max(0, math.floor(poly[:, 0].min()) - pad))
    y0 = int(max(0, math.floor(poly[:, 1].min()) - pad))
    x1 = int(min(CROP, math.ceil(poly[:, 0].max()) + pad + 1))
    y1 = int(min(CROP, math.ceil(poly[:, 1].max()) + pad + 1))
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
    # Light: darkest in the corners, under the upper lip and, the wider the opening, deep in the middle (the throat
    # shows): a dark cavity in proportion to the opening, never a lit red one.
    wide = np.clip((opening - 0.06 * iod) / (0.2 * iod), 0.0, 1.0)[None, :]
    back = middle * np.exp(-((depth - 0.45) / 0.3) ** 2) * wide
    light = INTERIOR_DARK + (1.0 - INTERIOR_DARK) * 0.35 * middle * smoothstep((depth - 0.2) / 0.8)
    light = light * (1.0 - THROAT_DARK * back)
    colour = mouth_color[None, None, :] * light[..., None]
    # The tongue lies low in a wide opening: its muted colour in the mouth's shade, at the floor's middle.
    floor = TONGUE_LIFT * wide * middle * smoothstep((depth - 0.6) / 0.4)
    colour += floor[..., None] * (tongue_color[None, None, :] * 0.55 - colour)
    cap = (TEETH_HEIGHT + TEETH_SMILE_HEIGHT * smile) * iod
    top_h = np.minimum((TEETH_SHARE + TEETH_SMILE * smile) * opening, cap)
    top_h = top_h * (1.0 - ROUND_COVERS_TEETH * min(1.0, max(0.0, rounding)))
    top_h = top_h + min(1.0, bite) * (opening + 1.0 - top_h)  # resting on the tucked lower lip
    show = np.clip((opening - TEETH_MIN_PX) / 4.0, 0.0, 1.0)
    # The incisal edge is a smooth arc, highest at the sides (the smile line), not the upper lip's bow moved down;
    # a bite rests the teeth on the tucked lower lip instead.
    mid = int(np.argmin(np.abs(across - 0.5)))
    u = 2.0 * across - 1.0
    arc = ty[mid] + top_h[mid] * (1.0 - INCISAL_ARC * u * u)
    edge = np.clip(arc, ty, by) + min(1.0, bite) * (ty + top_h - np.clip(arc, ty, by))
    band = np.clip((edge[None, :] - ys) / 1.5 + 0.5, 0.0, 1.0)  # below the upper lip, down to the edge
    band *= np.maximum(show, min(1.0, bite))[None, :] * middle * upper_teeth
    # Lower teeth once the jaw has dropped: a lower, shadowed band above the lower lip (mostly hidden by it).
    low_h = LOWER_TEETH * np.clip((opening - LOWER_TEETH_FROM * iod) / (0.1 * iod), 0.0, 1.0) * iod
    low_band = np.clip((ys - (by[None, :] - low_h[None, :])) / 2.0 + 0.5, 0.0, 1.0) * (low_h > 0.5)[None, :]
    low_band *= middle ** LOWER_TEETH_SPAN * (1.0 - min(1.0, bite))
    # Teeth in the mouth's light: shaded at the gum and at the corners, lit in the middle, each incisor and canine
    # parted from the next by a faint darker line (widest at the edge, where the embrasures open).
    v = np.clip((ys - ty[None, :]) / np.maximum(edge - ty, 1.0)[None, :], 0.0, 1.0)
    tooth_light = (0.74 + 0.26 * middle) * (1.0 - 0.15 * v * v)
    cx = float(xs[mid])
    parting = _partings(xs, cx, iod, TOOTH_GAPS, 0.7)
    tooth_light = tooth_light * (1.0 - parting[None, :] * (0.3 + 0.7 * v))
    low_parting = _partings(xs, cx, iod, LOWER_TOOTH_GAPS, 0.6)
    tooth = (TEETH_MIX * teeth_color[None, None, :] + (1.0 - TEETH_MIX) * mouth_color[None, None, :])
    low_tooth = (1.0 - LOWER_TEETH_WARM) * tooth + LOWER_TEETH_WARM * tongue_color[None, None, :]
    low_light = LOWER_TEETH_SHADE * (0.5 + 0.5 * middle) * (1.0 - low_parting[None, :])
    colour += low_band[..., None] * (low_tooth * low_light[..., None] - colour)
    colour += band[..., None] * (tooth * tooth_light[..., None] - colour)
    _composite(out, (x0, y0, x1, y1), colour, alpha, extra_blur)


def _partings(xs: np.ndarray, cx: float, iod: float, gaps: tuple[tuple[float, float], ...],
              width: float) -> np.ndarray:
    """How much darker each column is where two teeth meet: ``gaps`` are (iod from the middle ``cx``, darkening),
    mirrored to both sides, each a Gaussian line ``width`` px wide."""
    out = np.zeros_like(xs)
    for offset, depth in gaps:
        for sign in ((1.0,) if offset == 0.0 else (1.0, -1.0)):
            out = np.maximum(out, depth * np.exp(-((xs - cx - sign * offset * iod) / width) ** 2))
    return out


def draw_lip_line(out: np.ndarray, seam: np.ndarray, colour: np.ndarray, amount: float) -> None:
    """The line where shut lips meet, drawn over the (moved) seam in the lips' shadow colour.

    Why: lips shut over a photo's parted ones are two fields torn apart and joined again; across the join the
    blended warp samples a pixel or two of what lay between (the photo's teeth), a bright thread where real lips
    show a dark one."""
    curve = smooth_curve(seam)
    x0 = int(max(0, math.floor(curve[:, 0].min()) - 2))
    x1 = int(min(CROP, math.ceil(curve[:, 0].max()) + 3))
    y0 = int(max(0, math.floor(curve[:, 1].min()) - 3))
    y1 = int(min(CROP, math.ceil(curve[:, 1].max()) + 4))
    if x1 <= x0 or y1 <= y0:
        return
    xs = np.arange(x0, x1, dtype=np.float32)
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    line_y = np.interp(xs, curve[:, 0], curve[:, 1])
    inside = np.clip(np.minimum(xs - curve[0, 0], curve[-1, 0] - xs), 0.0, 3.0)[None, :] / 3.0
    alpha = np.clip(1.6 - np.abs(ys - line_y[None, :]), 0.0, 1.0) * inside * min(1.0, amount)
    patch = out[y0:y1, x0:x1].astype(np.float32)
    patch += alpha[..., None] * (colour[None, None, :] - patch)
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def draw_tongue(out: np.ndarray, top: np.ndarray, bottom: np.ndarray, iod: float, colour: np.ndarray,
                amount: float, extra_blur: float = 0.0) -> None:
    """The tongue out (ARKit tongueOut): a rounded tip from inside the mouth over the lower lip, lit at the tip,
    shaded where it leaves the mouth, with its middle groove."""
    seam = (top + bottom) / 2
    left, right = float(seam[:, 0].min()), float(seam[:, 0].max())
    cx = float(seam[len(seam) // 2, 0])
    y_in = float(top[len(top) // 2, 1])
    y_tip = float(bottom[len(bottom) // 2, 1]) + TONGUE_OUT * amount * iod
    half = 0.32 * (right - left) * (0.7 + 0.3 * min(1.0, amount))
    if y_tip - y_in < 1.0 or half < 1.0:
        return
    pad = math.ceil(3.0 * extra_blur)
    x0, x1 = int(max(0, math.floor(cx - half - 3 - pad))), int(min(CROP, math.ceil(cx + half + 3 + pad)))
    y0, y1 = int(max(0, math.floor(y_in - 2))), int(min(CROP, math.ceil(y_tip + 3 + pad)))
    if x1 <= x0 or y1 <= y0:
        return
    xs = (np.arange(x0, x1, dtype=np.float32) - cx) / half
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    along = np.clip((ys - y_in) / (y_tip - y_in), 0.0, 1.0)  # 0 inside the mouth, 1 at the tip
    # A U-shaped outline: full width inside, rounding off over the last half to the tip.
    width = np.sqrt(np.clip(1.0 - np.clip((along - 0.5) / 0.5, 0.0, 1.0) ** 2, 0.0, 1.0))
    inside = (width - np.abs(xs)[None, :]) * half
    alpha = np.clip(inside / 1.5 + 0.5, 0.0, 1.0) * np.clip((y_tip - ys) / 1.5 + 0.5, 0.0, 1.0) * (ys >= y_in)
    alpha *= min(1.0, 2.0 * amount)
    light = (0.6 + 0.4 * smoothstep(along * 1.5)) * (1.0 - 0.25 * np.exp(-(xs[None, :] / 0.12) ** 2))
    light *= 1.0 - 0.25 * np.abs(xs)[None, :] ** 2
    _composite(out, (x0, y0, x1, y1), colour[None, None, :] * light[..., None], alpha.astype(np.float32),
               extra_blur)
