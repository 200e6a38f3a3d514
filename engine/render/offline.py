"""The offline renderer: landmark-driven warping of the source crop on the CPU, no weights, no GPU.

Why it exists: where the LivePortrait weights are absent or there is no GPU, the engine still shows a living face.

How it works. ``prepare`` builds, once per avatar, one dense displacement field per control over the face's bounding
box (at half resolution), from the 68 iBUG landmarks of the crop and distances measured in inter-ocular units, so
every motion scales with the face. A control moves a handful of landmarks (mouth corners, brows, lids, jaw...);
each field spreads those moves with normalised Gaussians in which unmoved landmarks act as pins, and a fixed frame
(fields fall to zero well inside the crop) keeps the background still. Head yaw and pitch use a parabolic depth
map of the face (plus the nose) for parallax; roll rotates the head region about the face centre. Per frame the
fields are summed linearly with the control weights, inverted with one fixed-point step, upsampled and applied with
a single ``cv2.remap`` over the bounding box. Two things a warp cannot do are synthesised:

- mouth: the lower lip and jaw have their own field, split from the upper one along the lips' seam, so opening the
  mouth tears the seam instead of stretching the lips; the gap is filled with a dark mouth interior (shaded from
  the avatar's own lip colour) with a hint of upper teeth.
- eyelids: a blink slides the upper lid down over the eye and occludes it (the iris is covered, not squashed):
  the lash line moves rigidly to the moving lid edge and the lid above it is drawn from the clean skin between the
  lid and the crease, with the lid's own texture packed in just above the lashes.

Sign conventions (image space, as the viewer sees it): ``headYaw`` and ``gazeX`` positive move the face features /
iris towards the image's right; ``headPitch`` and ``gazeY`` positive move them up; ``headRoll`` positive turns the
head clockwise on screen (its top towards the image's right).

Limits, on purpose: this is a 2-D warp, not a head model. No new views: yaw and pitch are a parallax illusion good
to about 15 degrees, beyond that the far side compresses visibly; hair and shoulders outside the head ellipse stay
put and bend a little at the head's edge under large roll. Lips cannot protrude (pucker only narrows them); the
mouth interior is a flat dark shade with simple teeth, no tongue; a mouth that is open in the photo keeps its own
teeth with the upper face while the jaw drops below them. Closed lids are the photo's own upper-lid skin moved
down, so heavy eye make-up or glasses smear, and on soft low-contrast photos the socket's shadow stays around the
closed lid. Landmarks come from dlib's 68 points: a badly fitted lip or eye contour is animated as fitted. Big
combined moves (full jaw plus full smile plus 20 degrees of yaw) are summed linearly and can fold slightly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from engine.animation.controls import BY_NAME, NAMES
from engine.animation.state import AnimationState
from engine.face.types import FaceCrop
from engine.render.base import SourceState

CROP = 512
STEP = 2  # the fields live at half resolution and are upsampled per frame
MIN_FIELD_PX = 0.05  # a field smaller than this is zero (sets the per-avatar bounding box)

# iBUG 68 indices (0-based).
JAW = tuple(range(0, 17))
BROW_A = (17, 18, 19, 20, 21)  # image-left brow, outer -> inner
BROW_B = (26, 25, 24, 23, 22)  # image-right brow, outer -> inner
NOSE = tuple(range(27, 36))
EYE_A = (36, 37, 38, 39, 40, 41)  # outer corner, upper, upper, inner corner, lower, lower
EYE_B = (45, 44, 43, 42, 47, 46)  # same order, mirrored
UPPER_LIP = (49, 50, 51, 52, 53, 61, 62, 63)
LOWER_LIP = (55, 56, 57, 58, 59, 65, 66, 67)
CHIN = (5, 6, 7, 8, 9, 10, 11)
SEAM = (60, 67, 66, 65, 64)  # the lower inner lip, left to right: where the jaw tears from the upper face
N_EXTRA = 5  # forehead left/centre/right, cheek left/right (appended after the 68 landmarks)
FOREHEAD = (68, 69, 70)
CHEEKS = (71, 72)

LID_EASE = 2.5  # how strongly the closed lid favours the clean skin at its top over the packed-in crease
BLINK = "eyeBlink"
# Controls with a precomputed field; the blink is drawn per frame. Sided controls are not drawn here yet.
LINEAR = tuple(n for n in NAMES if n != BLINK and not n.endswith(("Left", "Right")))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass
class _Move:
    """One control's landmark displacements (in inter-ocular units, image axes) and spread (sigma, same units)."""

    moves: dict[int, tuple[float, float]]
    sigma: float


def _mirror(moves: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Left-right symmetric moves: each entry on the image-left side is copied to its mirror with x negated."""
    pairs = {**{i: 16 - i for i in range(17)}, **dict(zip(BROW_A, BROW_B, strict=True)),
             **dict(zip(EYE_A, EYE_B, strict=True)), 31: 35, 32: 34, 48: 54, 49: 53, 50: 52, 59: 55, 58: 56,
             60: 64, 61: 63, 67: 65, 68: 70, 71: 72}
    out = dict(moves)
    for i, (dx, dy) in moves.items():
        j = pairs.get(i)
        if j is not None and j != i:
            out[j] = (-dx, dy)
    return out


def _expression_moves() -> dict[str, _Move]:
    """The controls as landmark moves at weight 1 (left side given, mirrored). Zero entries are pins."""
    return {
        "mouthSmile": _Move(_mirror({
            48: (-0.10, -0.11), 60: (-0.09, -0.10), 49: (-0.05, -0.06), 50: (-0.025, -0.035), 51: (0.0, -0.02),
            61: (-0.05, -0.06), 62: (0.0, -0.025), 59: (-0.05, -0.06), 58: (-0.02, -0.03), 57: (0.0, -0.015),
            67: (-0.05, -0.06), 66: (0.0, -0.025), 71: (-0.02, -0.07), 41: (0.0, -0.025), 40: (0.0, -0.025),
            31: (0.0, -0.02), 4: (0.0, 0.0), 33: (0.0, 0.0),
        }), 0.22),
        "mouthFrown": _Move(_mirror({
            48: (0.015, 0.15), 60: (0.015, 0.14), 49: (0.0, 0.06), 50: (0.0, 0.02), 51: (0.0, 0.0),
            61: (0.0, 0.05), 62: (0.0, 0.0), 59: (0.0, 0.07), 58: (0.0, 0.02), 57: (0.0, -0.015),
            67: (0.0, 0.05), 66: (0.0, 0.0), 71: (0.0, 0.025), 5: (0.0, 0.02), 33: (0.0, 0.0),
        }), 0.2),
        "browInnerUp": _Move(_mirror({
            21: (0.015, -0.15), 20: (0.005, -0.10), 19: (0.0, -0.05), 18: (0.0, -0.015), 17: (0.0, 0.0),
            68: (0.0, -0.04), 69: (0.0, -0.06), 39: (0.0, 0.0), 37: (0.0, -0.01), 38: (0.0, -0.015), 27: (0.0, 0.0),
        }), 0.22),
        "browOuterUp": _Move(_mirror({
            17: (0.0, -0.14), 18: (0.0, -0.12), 19: (0.0, -0.08), 20: (0.0, -0.04), 21: (0.0, -0.01),
            68: (0.0, -0.06), 69: (0.0, -0.02), 36: (0.0, 0.0), 37: (0.0, -0.01), 38: (0.0, -0.01), 27: (0.0, 0.0),
        }), 0.22),
        "browDown": _Move(_mirror({
            17: (0.0, 0.05), 18: (0.02, 0.08), 19: (0.03, 0.09), 20: (0.04, 0.10), 21: (0.05, 0.10),
            68: (0.0, 0.03), 69: (0.0, 0.04), 37: (0.0, 0.015), 38: (0.0, 0.02), 27: (0.0, 0.01),
            36: (0.0, 0.0), 39: (0.0, 0.0),
        }), 0.2),
        "eyeWide": _Move(_mirror({
            37: (0.0, -0.065), 38: (0.0, -0.065), 36: (0.0, 0.0), 39: (0.0, 0.0), 41: (0.0, 0.02), 40: (0.0, 0.02),
            19: (0.0, -0.02), 20: (0.0, -0.02),
        }), 0.09),
        "jawOpen": _Move(_mirror({
            48: (0.02, 0.08), 60: (0.02, 0.08), 59: (0.0, 0.26), 58: (0.0, 0.29), 57: (0.0, 0.30),
            67: (0.0, 0.26), 66: (0.0, 0.29), 61: (0.0, -0.02), 62: (0.0, -0.025), 49: (0.0, -0.015),
            50: (0.0, -0.02), 51: (0.0, -0.02), 8: (0.0, 0.33), 7: (0.0, 0.31), 6: (0.0, 0.25), 5: (0.0, 0.16),
            4: (0.0, 0.07), 3: (0.0, 0.0), 71: (0.0, 0.02), 33: (0.0, 0.0),
        }), 0.3),
        "mouthPucker": _Move(_mirror({
            48: (0.16, 0.0), 60: (0.15, 0.0), 49: (0.08, -0.015), 50: (0.03, -0.015), 51: (0.0, -0.015),
            61: (0.07, 0.0), 62: (0.0, 0.0), 59: (0.08, 0.015), 58: (0.03, 0.015), 57: (0.0, 0.015),
            67: (0.07, 0.0), 66: (0.0, 0.0), 71: (0.03, 0.0), 33: (0.0, 0.0),
        }), 0.2),
        "mouthFunnel": _Move(_mirror({
            48: (0.08, 0.02), 60: (0.08, 0.02), 49: (0.04, -0.03), 50: (0.015, -0.045), 51: (0.0, -0.05),
            61: (0.035, -0.04), 62: (0.0, -0.05), 59: (0.04, 0.07), 58: (0.015, 0.09), 57: (0.0, 0.09),
            67: (0.035, 0.09), 66: (0.0, 0.11), 8: (0.0, 0.06), 7: (0.0, 0.05), 33: (0.0, 0.0),
        }), 0.2),
    }


# Controls that part the lips: their fields are built in two halves that listen to different points (the upper
# half ignores the jaw, the lower half the upper lip and everything above the nose), so the halves tear apart
# along the seam. Every other control moves both lips with one field, so it never opens the mouth by accident.
OPENING = ("jawOpen", "mouthFunnel")
_LOWER_ONLY = set(CHIN) | set(LOWER_LIP)
_UPPER_ONLY = set(UPPER_LIP) | set(range(17, 48)) | set(FOREHEAD) | {27, 28, 29, 30}


@dataclass(eq=False)
class _Eye:
    """Per-eye blink geometry: lid curves as quadratics in x, the eye's x span, the lid band and lash heights."""

    x0: float
    x1: float
    upper: np.ndarray  # polyfit coefficients, y of the upper lid at x
    lower: np.ndarray
    band: float  # px of lid skin above the lashes that stretches over the closing eye
    lash: float  # px of lash line that slides rigidly with the lid edge
    overshoot: float  # px the closed lid tucks past the fitted lower lid (which sits a little high)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in crop pixels (within the field box)


@dataclass(eq=False)
class OfflineSource(SourceState):
    """Everything the offline renderer keeps per avatar (a few MB)."""

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # 73 control points
    iod: float = 0.0  # inter-ocular distance, px: the unit of every motion
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # x0, y0, x1, y1 of the warped region (even, crop px)
    low_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # the lower-face region (inside ``box``)
    upper: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (n, h, w, 2) half-res fields
    lower: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (n, lh, lw, 2)
    seam_up: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (n, 5, 2) seam moves, upper
    seam_lo: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (n, 5, 2) seam moves, lower
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (h, w, 2) half-res indices
    low_grid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    full_grid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (H, W, 2) crop px of box
    eyes: tuple[_Eye, ...] = ()
    mouth_color: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    teeth_color: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    teeth: bool = True  # draw upper teeth in a new opening (not when the photo's mouth shows its own)


def _control_points(lm: np.ndarray, iod: float) -> np.ndarray:
    """The 68 landmarks plus forehead and cheek points that the fields also pin or move."""
    brow_top = float(lm[17:27, 1].min())
    eye_a, eye_b = lm[36:42].mean(0), lm[42:48].mean(0)
    mid = (eye_a + eye_b) / 2
    up = brow_top - 0.45 * iod
    forehead = [(eye_a[0], up), (mid[0], up - 0.05 * iod), (eye_b[0], up)]
    cheeks = [(lm[31] + lm[3]) / 2 - (0.0, 0.05 * iod), (lm[35] + lm[13]) / 2 - (0.0, 0.05 * iod)]
    extra = np.array([*forehead, *cheeks], np.float64).reshape(N_EXTRA, 2)
    return np.vstack([lm.astype(np.float64), extra])


def _spread(moves: dict[int, tuple[float, float]], sigma: float, points: np.ndarray, iod: float,
            xy: np.ndarray, allowed: set[int]) -> np.ndarray:
    """Normalised-Gaussian spread of landmark moves over positions ``xy`` (..., 2) -> (..., 2) px.

    Every allowed control point takes part (unmoved ones as pins); where the Gaussians sum to less than one
    the field simply decays, so it is zero far from the face.
    """
    idx = [i for i in range(len(points)) if i in allowed]
    centres = points[idx]
    disp = np.array([moves.get(i, (0.0, 0.0)) for i in idx], np.float64) * iod
    s2 = 2.0 * (sigma * iod) ** 2
    flat = xy.reshape(-1, 2)
    out = np.zeros((len(flat), 2), np.float64)
    total = np.zeros(len(flat), np.float64)
    for c, d in zip(centres, disp, strict=True):
        g = np.exp(-((flat[:, 0] - c[0]) ** 2 + (flat[:, 1] - c[1]) ** 2) / s2)
        total += g
        if d[0] or d[1]:
            out += g[:, None] * d
    out /= np.maximum(total, 1.0)[:, None]
    return out.reshape(xy.shape)


def _head_geometry(lm: np.ndarray, iod: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Head ellipse (centre, semi-axes) and the depth amplitude used by yaw and pitch."""
    top = float(lm[17:27, 1].min()) - 0.85 * iod
    bottom = float(lm[8, 1]) + 0.05 * iod
    left, right = float(lm[0:3, 0].min()), float(lm[14:17, 0].max())
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    axes = np.array([(right - left) / 2 * 1.08, (bottom - top) / 2 * 1.04])
    return centre, axes, 0.55 * iod


def _head_fields(lm: np.ndarray, iod: float, xy: np.ndarray) -> dict[str, np.ndarray]:
    """Per-degree fields for yaw, pitch and roll at positions ``xy`` (..., 2)."""
    centre, axes, depth = _head_geometry(lm, iod)
    rel = (xy - centre) / axes
    r2 = (rel ** 2).sum(-1)
    nose = lm[30].astype(np.float64)
    nose_bump = np.exp(-((xy - nose) ** 2).sum(-1) / (2 * (0.28 * iod) ** 2))
    z = depth * np.clip(1.0 - r2, 0.0, None) + 0.35 * iod * nose_bump * (r2 < 1.0)
    rad = math.pi / 180.0
    out = {"headYaw": np.stack([z * rad, np.zeros_like(z)], -1),
           "headPitch": np.stack([np.zeros_like(z), -z * rad], -1)}
    # Roll: rotation about the face centre, full inside the ellipse and fading out over half its size again.
    pivot = (lm[27] + lm[57]).astype(np.float64) / 2
    weight = 1.0 - _smoothstep((np.sqrt(r2) - 1.0) / 0.5)
    d = xy - pivot
    out["headRoll"] = np.stack([-d[..., 1], d[..., 0]], -1) * (rad * weight)[..., None]
    return out


def _gaze_fields(lm: np.ndarray, shape: tuple[int, int], origin: tuple[int, int]) -> dict[str, Any]:
    """gazeX/gazeY: the eye's content slides inside the lids (soft mask of each eye opening)."""
    h, w = shape
    mask = np.zeros((h, w), np.float32)
    spans = []
    for eye in (EYE_A, EYE_B):
        pts = lm[list(eye)]
        poly = ((pts - origin) / STEP).astype(np.float32)
        cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
        spans.append(float(np.linalg.norm(pts[0] - pts[3])))
    mask = cv2.GaussianBlur(mask, (0, 0), 0.8)
    mask = np.clip(mask * 1.6 - 0.3, 0.0, 1.0)  # shrink: the lid edges stay, the iris moves
    width = float(np.mean(spans))
    zero = np.zeros_like(mask)
    return {"gazeX": np.stack([mask * 0.2 * width, zero], -1), "gazeY": np.stack([zero, -mask * 0.09 * width], -1)}


def _eye_geometry(lm: np.ndarray, iod: float, eye: tuple[int, ...], brow: tuple[int, ...]) -> _Eye:
    outer, u1, u2, inner, l1, l2 = (lm[i].astype(np.float64) for i in eye)
    upper = np.polyfit([outer[0], u1[0], u2[0], inner[0]], [outer[1], u1[1], u2[1], inner[1]], 2)
    lower = np.polyfit([outer[0], l2[0], l1[0], inner[0]], [outer[1], l2[1], l1[1], inner[1]], 2)
    x0, x1 = min(outer[0], inner[0]), max(outer[0], inner[0])
    lid_y = (u1[1] + u2[1]) / 2
    brow_y = float(lm[list(brow[1:4]), 1].mean())
    band = max(0.45 * (lid_y - brow_y), 2.0)  # lid skin that stretches; the crease above it stays
    lash = min(0.035 * iod, 0.5 * band)
    top = min(u1[1], u2[1]) - band
    bottom = max(l1[1], l2[1]) + 0.05 * iod
    box = (int(math.floor(x0 - 2)), int(math.floor(top - 2)), int(math.ceil(x1 + 2)), int(math.ceil(bottom + 2)))
    return _Eye(x0=float(x0), x1=float(x1), upper=upper, lower=lower, band=band, lash=lash,
                overshoot=0.012 * iod, box=box)


def _even_box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
    """A box snapped outwards to even pixels and clipped to the crop."""
    bx0 = max(0, int(math.floor(x0 / STEP)) * STEP)
    by0 = max(0, int(math.floor(y0 / STEP)) * STEP)
    bx1 = min(CROP, int(math.ceil(x1 / STEP)) * STEP)
    by1 = min(CROP, int(math.ceil(y1 / STEP)) * STEP)
    return bx0, by0, bx1, by1


def _half_grid(box: tuple[int, int, int, int]) -> np.ndarray:
    """Crop-pixel positions of the half-resolution samples of ``box`` (centres of 2x2 blocks)."""
    x0, y0, x1, y1 = box
    xs = np.arange(x0, x1, STEP, dtype=np.float64) + (STEP - 1) / 2
    ys = np.arange(y0, y1, STEP, dtype=np.float64) + (STEP - 1) / 2
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy], -1)


class OfflineRenderer:
    """Landmark-driven CPU warp renderer; ``prepare`` once per avatar (~0.3 s), ``render`` per frame (ms)."""

    name = "offline"

    def __init__(self, reason: str = "offline renderer requested") -> None:
        self.reason = reason
        self._moves = _expression_moves()

    def info(self) -> dict[str, Any]:
        return {"renderer": self.name, "device": "cpu", "dtype": "uint8", "method": "landmark warp (cv2.remap)",
                "reason": self.reason}

    # ---------------------------------------------------------------- per avatar
    def prepare(self, face: FaceCrop) -> OfflineSource:
        """Precompute the per-control fields, the bounding box, blink geometry and mouth colours."""
        if face.crop.shape != (CROP, CROP, 3) or face.crop_landmarks.shape != (68, 2):
            raise ValueError("the offline renderer needs a 512x512 crop with 68 iBUG landmarks")
        lm = face.crop_landmarks.astype(np.float64)
        iod = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
        iod = max(iod, 8.0)
        points = _control_points(lm, iod)

        # Field box: the head ellipse with its roll falloff, and everything within 3 sigma of a moved point.
        centre, axes, _ = _head_geometry(lm, iod)
        reach = np.array([centre - 1.5 * axes, centre + 1.5 * axes])
        lo = np.minimum(reach[0], points.min(0) - iod)
        hi = np.maximum(reach[1], points.max(0) + iod)
        box = _even_box(lo[0], lo[1], hi[0], hi[1])
        grid = _half_grid(box)
        shape = grid.shape[:2]

        seam_lo = np.array([min(lm[i, 0] for i in SEAM) - 0.5 * iod, float(lm[list(SEAM), 1].min()) - 0.15 * iod])
        low_box = _even_box(seam_lo[0], seam_lo[1], max(lm[i, 0] for i in SEAM) + 0.5 * iod,
                            float(lm[8, 1]) + 0.9 * iod)
        low_box = (max(low_box[0], box[0]), max(low_box[1], box[1]), min(low_box[2], box[2]), min(low_box[3], box[3]))
        low_grid_xy = _half_grid(low_box)

        all_points = set(range(len(points)))
        upper_set = all_points - _LOWER_ONLY
        lower_set = all_points - _UPPER_ONLY
        head = _head_fields(lm, iod, grid)
        head_low = _head_fields(lm, iod, low_grid_xy)
        gaze = _gaze_fields(lm, shape, (box[0], box[1]))
        seam_pts = lm[list(SEAM)]
        head_seam = _head_fields(lm, iod, seam_pts)

        n = len(LINEAR)
        upper = np.zeros((n, *shape, 2), np.float32)
        lower = np.zeros((n, *low_grid_xy.shape[:2], 2), np.float32)
        s_up = np.zeros((n, len(SEAM), 2), np.float32)
        s_lo = np.zeros((n, len(SEAM), 2), np.float32)
        lx0, ly0 = (low_box[0] - box[0]) // STEP, (low_box[1] - box[1]) // STEP
        for k, name in enumerate(LINEAR):
            if name in self._moves:
                mv = self._moves[name]
                up_set, lo_set = (upper_set, lower_set) if name in OPENING else (all_points, all_points)
                upper[k] = _spread(mv.moves, mv.sigma, points, iod, grid, up_set)
                lower[k] = _spread(mv.moves, mv.sigma, points, iod, low_grid_xy, lo_set)
                s_up[k] = _spread(mv.moves, mv.sigma, points, iod, seam_pts, up_set)
                s_lo[k] = _spread(mv.moves, mv.sigma, points, iod, seam_pts, lo_set)
            elif name in head:
                upper[k], lower[k] = head[name], head_low[name]
                s_up[k] = s_lo[k] = head_seam[name]
            elif name in gaze:  # gaze: the eyes only; the lower face does not listen
                upper[k] = gaze[name]
                lower[k] = gaze[name][ly0:ly0 + lower.shape[1], lx0:lx0 + lower.shape[2]]
        # A fixed frame: every field is exactly zero on the box's rim, so the copy around it is seamless.
        rim = np.ones(shape, np.float32)
        ramp = 3
        for i in range(ramp):
            v = (i + 0.5) / ramp
            rim[i, :] = np.minimum(rim[i, :], v)
            rim[-1 - i, :] = np.minimum(rim[-1 - i, :], v)
            rim[:, i] = np.minimum(rim[:, i], v)
            rim[:, -1 - i] = np.minimum(rim[:, -1 - i], v)
        upper *= rim[None, :, :, None]
        lower *= rim[None, ly0:ly0 + lower.shape[1], lx0:lx0 + lower.shape[2], None]

        half_idx = np.stack(np.meshgrid(np.arange(shape[1], dtype=np.float32),
                                        np.arange(shape[0], dtype=np.float32)), -1)
        low_idx = np.stack(np.meshgrid(np.arange(lower.shape[2], dtype=np.float32),
                                       np.arange(lower.shape[1], dtype=np.float32)), -1)
        x0, y0, x1, y1 = box
        full = np.stack(np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32)), -1)

        lips = np.zeros((CROP, CROP), np.uint8)
        cv2.fillPoly(lips, [np.round(lm[48:60]).astype(np.int32)], 1)
        cv2.fillPoly(lips, [np.round(lm[60:68]).astype(np.int32)], 0)
        lip_rgb = face.crop[lips.astype(bool)].astype(np.float32)
        lip_mean = lip_rgb.mean(0) if len(lip_rgb) else np.array([150.0, 80.0, 80.0], np.float32)
        skin = face.crop[int(lm[29, 1]) - 3:int(lm[29, 1]) + 3, int(lm[29, 0]) - 3:int(lm[29, 0]) + 3]
        brightness = float(skin.reshape(-1, 3).mean()) / 255.0 if skin.size else 0.7

        return OfflineSource(
            face=face, points=points.astype(np.float32), iod=iod, box=box, low_box=low_box,
            upper=upper, lower=lower, seam_up=s_up, seam_lo=s_lo, grid=half_idx, low_grid=low_idx, full_grid=full,
            eyes=(_eye_geometry(lm, iod, EYE_A, BROW_A), _eye_geometry(lm, iod, EYE_B, BROW_B)),
            mouth_color=(0.42 * lip_mean * np.array([1.0, 0.8, 0.8]) + 6.0).astype(np.float32),
            teeth_color=(np.array([236.0, 228.0, 214.0]) * (0.55 + 0.4 * min(1.0, brightness))).astype(np.float32),
            teeth=bool(np.linalg.norm(lm[66] - lm[62]) < 0.04 * iod),
        )

    # ---------------------------------------------------------------- per frame
    def render(self, source: SourceState, state: AnimationState) -> np.ndarray:
        """The crop with the state's expression: one remap over the box, then eyelids and mouth interior."""
        if not isinstance(source, OfflineSource):
            raise TypeError("OfflineRenderer.render needs the OfflineSource from its own prepare()")
        values = {n: BY_NAME[n].clamp(float(state.controls.get(n, 0.0))) for n in NAMES}
        crop = source.face.crop
        if all(v == 0.0 for v in values.values()):
            return crop.copy()
        weights = np.array([values[n] for n in LINEAR], np.float32)
        active = np.flatnonzero(weights)

        up = np.zeros(source.upper.shape[1:], np.float32)
        lo = np.zeros(source.lower.shape[1:], np.float32)
        for k in active:
            up += weights[k] * source.upper[k]
            lo += weights[k] * source.lower[k]
        up = _invert(up, source.grid)
        lo = _invert(lo, source.low_grid)

        seam_top = source.face.crop_landmarks[list(SEAM)] + np.tensordot(weights, source.seam_up, 1)
        seam_bot = source.face.crop_landmarks[list(SEAM)] + np.tensordot(weights, source.seam_lo, 1)
        _blend_lower(up, lo, source, (seam_top + seam_bot) / 2)

        x0, y0, x1, y1 = source.box
        disp = cv2.resize(up, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        maps = source.full_grid - disp
        blink = values[BLINK]
        if blink > 0.0:
            for eye in source.eyes:
                _blink(maps, eye, blink, source.box)
        out = crop.copy()
        out[y0:y1, x0:x1] = cv2.remap(crop, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        _mouth_interior(out, seam_top, seam_bot, source)
        return out


def _invert(fwd: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Backward displacement for a forward field: d(p) ~ f(p - f(p)) (one fixed-point step, half-res grid)."""
    back = grid - fwd / STEP
    return cv2.remap(fwd, back, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _blend_lower(up: np.ndarray, lo: np.ndarray, source: OfflineSource, seam: np.ndarray) -> None:
    """Below the (moved) seam the lower face's field wins: a hard edge between the lips, soft beyond the corners."""
    bx0, by0 = source.box[0], source.box[1]
    lx0, ly0, lx1, ly1 = source.low_box
    xs = np.arange(lx0, lx1, STEP, dtype=np.float32) + 0.5
    ys = np.arange(ly0, ly1, STEP, dtype=np.float32) + 0.5
    order = np.argsort(seam[:, 0])
    sx, sy = seam[order, 0], seam[order, 1]
    seam_y = np.interp(xs, sx, sy)
    outside = np.maximum(sx[0] - xs, xs - sx[-1]).clip(0.0)  # px beyond the mouth corners
    soft = 1.0 + outside * 1.2
    m = np.clip((ys[:, None] - seam_y[None, :]) / soft[None, :] + 0.5, 0.0, 1.0)[..., None]
    r0, c0 = (ly0 - by0) // STEP, (lx0 - bx0) // STEP
    region = up[r0:r0 + lo.shape[0], c0:c0 + lo.shape[1]]
    region += m * (lo - region)


def _blink(maps: np.ndarray, eye: _Eye, w: float, box: tuple[int, int, int, int]) -> None:
    """Draw the upper lid down over the eye: the lash line slides rigidly to the moving lid edge, the band of lid
    skin above it stretches to follow, the crease and brow stay, and the eye below the edge is occluded, not
    squashed."""
    ex0, ey0, ex1, ey1 = eye.box
    bx0, by0, bx1, by1 = box
    ex0, ey0, ex1, ey1 = max(ex0, bx0), max(ey0, by0), min(ex1, bx1), min(ey1, by1)
    if ex1 <= ex0 or ey1 <= ey0:
        return
    region = maps[ey0 - by0:ey1 - by0, ex0 - bx0:ex1 - bx0]
    qx, qy = region[..., 0], region[..., 1]
    u = np.polyval(eye.upper, qx)
    span = np.clip(np.polyval(eye.lower, qx) - u, 0.0, None) * ((qx > eye.x0) & (qx < eye.x1))
    edge = w * (span + eye.overshoot * (span > 0))  # how far below the resting lid the moving lid edge is
    e = qy - u
    band, lash = eye.band, np.minimum(eye.lash, edge)
    # Lash zone: a rigid shift by ``edge`` with a 1 px antialiasing ramp at the edge itself.
    in_lash = (e >= edge - lash) & (e < edge + 0.5)
    shift_lash = edge * np.clip(edge - e + 0.5, 0.0, 1.0)
    # Lid skin: [u - band, u + edge - lash] in the output samples [u - band, u - lash] of the photo on an ease-in
    # curve: the top of the closed lid is the clean skin at the band's top, the band's own texture (crease,
    # liner) is packed in just above the lashes instead of stretched over the whole lid.
    in_skin = (e >= -band) & (e < edge - lash)
    t = np.clip((e + band) / np.maximum(band + edge - lash, 1e-6), 0.0, 1.0)
    skin_src = u - band + (band - lash) * t ** LID_EASE
    new_y = np.where(in_lash, qy - shift_lash, qy)
    region[..., 1] = np.where(in_skin, skin_src, new_y)


def _mouth_interior(out: np.ndarray, top: np.ndarray, bottom: np.ndarray, source: OfflineSource) -> None:
    """Fill the gap between the parted lips with a dark mouth and a band of upper teeth."""
    gap = bottom[:, 1] - top[:, 1]
    if float(gap.max()) < 0.75:
        return
    poly = np.vstack([top, bottom[::-1]])
    x0 = int(max(0, math.floor(poly[:, 0].min()) - 3))
    y0 = int(max(0, math.floor(poly[:, 1].min()) - 3))
    x1 = int(min(CROP, math.ceil(poly[:, 0].max()) + 4))
    y1 = int(min(CROP, math.ceil(poly[:, 1].max()) + 4))
    if x1 <= x0 or y1 <= y0:
        return
    h, w = y1 - y0, x1 - x0
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round((poly - (x0, y0)) * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    alpha = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32) / 255.0
    # Shade: darkest in the middle of the opening, a little lighter under the upper lip; teeth under the upper lip.
    xs = np.arange(x0, x1, dtype=np.float32)
    order = np.argsort(top[:, 0])
    ty = np.interp(xs, top[order, 0], top[order, 1])
    by = np.interp(xs, bottom[order, 0], bottom[order, 1])
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    depth = np.clip((ys - ty[None, :]) / np.maximum(by - ty, 1.0)[None, :], 0.0, 1.0)
    shade = 1.0 - 0.55 * np.sin(depth * math.pi)
    colour = source.mouth_color[None, None, :] * shade[..., None]
    opening = np.maximum(by - ty, 0.0)
    teeth_h = np.minimum(0.3 * opening, 0.06 * source.iod)
    corner = np.interp(xs, [top[order, 0][0], top[order, 0][-1]], [0.0, 1.0])
    edge = _smoothstep(np.minimum(corner, 1.0 - corner) * 5.0)  # teeth fade towards the corners
    teeth = np.clip((ty[None, :] + teeth_h[None, :] - ys) / 1.5 + 0.5, 0.0, 1.0) * edge[None, :]
    teeth *= np.clip((opening[None, :] - 2.0) / 4.0, 0.0, 1.0) * float(source.teeth)
    colour += teeth[..., None] * (source.teeth_color[None, None, :] - colour)
    patch = out[y0:y1, x0:x1].astype(np.float32)
    patch += alpha[..., None] * (colour - patch)
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
