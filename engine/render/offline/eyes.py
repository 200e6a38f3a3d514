"""Eyelid synthesis: a blink slides the upper lid down over the eye and occludes it (the iris is covered, not
squashed). The lash line moves rigidly to the moving lid edge and the lid above it is drawn from the clean skin
between the lid and the crease, with the lid's own texture packed in just above the lashes.

Why measure the lash line: photos have a thin one, cartoons a thick drawn one; moving only part of a thick line
breaks it in two, so the rigid part is as thick as the dark line the photo actually shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engine.render.offline.tuning import (
    LASH,
    LASH_MAX,
    LID_BAND,
    LID_EASE,
    LID_OVERSHOOT,
    SCLERA_CHROMA,
    SCLERA_REACH,
)


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
    return Eye(x0=float(x0), x1=float(x1), upper=upper, lower=lower, band=band, lash=lash,
               overshoot=LID_OVERSHOOT * iod, box=box, sclera_below=sclera)


def blink(maps: np.ndarray, eye: Eye, w: float, box: tuple[int, int, int, int]) -> None:
    """Draw the upper lid down over the eye (``maps``: the frame's sampling map over ``box``, changed in place)."""
    ex0, ey0, ex1, ey1 = eye.box
    bx0, by0, bx1, by1 = box
    ex0, ey0, ex1, ey1 = max(ex0, bx0), max(ey0, by0), min(ex1, bx1), min(ey1, by1)
    if ex1 <= ex0 or ey1 <= ey0:
        return
    region = maps[ey0 - by0:ey1 - by0, ex0 - bx0:ex1 - bx0]
    qx, qy = region[..., 0], region[..., 1]
    u = np.polyval(eye.upper, qx)
    mid, half = (eye.x0 + eye.x1) / 2, max((eye.x1 - eye.x0) / 2, 1.0)
    below = eye.sclera_below * np.clip(1.0 - ((qx - mid) / half) ** 2, 0.0, None)  # the lid's true lower edge
    span = np.clip(np.polyval(eye.lower, qx) + below - u, 0.0, None) * ((qx > eye.x0) & (qx < eye.x1))
    edge = w * (span + eye.overshoot * (span > 0))  # how far below the resting lid the moving lid edge is
    e = qy - u
    band, lash = eye.band, eye.lash  # the whole lash line moves: a thick drawn line stays whole
    # The ease grows with the closure, so a small blink is a small change (no jump of the crease at w > 0).
    ease = 1.0 + (LID_EASE - 1.0) * float(min(1.0, w / 0.6))
    # Lash zone: a rigid shift by ``edge`` with a 1 px antialiasing ramp at the edge itself.
    in_lash = (e >= edge - lash) & (e < edge + 0.5)
    shift_lash = edge * np.clip(edge - e + 0.5, 0.0, 1.0)
    # Lid skin: [u - band, u + edge - lash] in the output samples [u - band, u - lash] of the photo on an ease-in
    # curve: the top of the closed lid is the clean skin at the band's top, the band's own texture (crease,
    # liner) is packed in just above the lashes instead of stretched over the whole lid.
    in_skin = (e >= -band) & (e < edge - lash)
    t = np.clip((e + band) / np.maximum(band + edge - lash, 1e-6), 0.0, 1.0)
    skin_src = u - band + (band - lash) * t ** ease
    new_y = np.where(in_lash, qy - shift_lash, qy)
    region[..., 1] = np.where(in_skin, skin_src, new_y)
