"""The offline renderer: per-avatar preparation of the control fields and the per-frame warp.

Per frame: the fields are summed with the control weights (sided controls as their two halves), inverted with
one fixed-point step, upsampled and applied with a single ``cv2.remap`` over the face's box; the eyelids move in
that same map (per eye, so a wink works); then the skin's folds (a smile's, the raised brows' on the forehead),
the eyeballs (gaze, the white a raised lid uncovers) and the mouth interior are drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from engine.animation.controls import BY_NAME, NAMES, SIDED, side_values
from engine.animation.state import AnimationState
from engine.face.types import FaceCrop
from engine.render.base import SourceState
from engine.render.offline.eyes import Eye, draw_eyeball, eye_geometry, gaze_shift, move_lids, with_eyeballs
from engine.render.offline.fields import (
    blend_lower,
    control_points,
    even_box,
    half_grid,
    head_fields,
    head_geometry,
    index_grid,
    invert,
    rim,
    sample,
    smoothstep,
    spread,
    spread_many,
)
from engine.render.offline.folds import ANCHORS, CHEEK_SHARE, OUTER_SHARE, FoldDepths, draw_folds
from engine.render.offline.mouth import draw_interior, draw_lip_line, photo_blur
from engine.render.offline.moves import (
    BLINK,
    BROW_A,
    BROW_B,
    EXPRESSIVE,
    EYE_A,
    EYE_B,
    LOWER_LIP,
    LOWER_ONLY,
    OPENING,
    RESPONSE,
    SEAM,
    UPPER_ONLY,
    WIDE,
    field_moves,
    field_names,
)
from engine.render.offline.tuning import (
    CLOSE_SHUT,
    CROP,
    LIP_SEAL,
    LIP_SEAL_SMILE,
    LOW_REACH,
    PHOTO_SMILE_FROM,
    PHOTO_SMILE_LIFT,
    PRESS_SEAL,
    PRESS_SHUT,
    STEP,
    TEETH_LIGHT,
    UPPER_UNSEAL,
)

FIELDS = field_names()
SEAM_MIDDLE = SEAM.index(66)
SEAL_SIGMA = 0.12  # the lip seal stretches the lower lip only, not the chin
SHUT_OVERLAP = 0.01  # iod: shut lips press a hair into each other (no line of the photo's teeth left between)


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
    seal: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (lh, lw, 2) lower lip up 1 px
    seal_seam: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (5, 2)
    shut: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (lh, lw, 2) the photo's lips shut
    shut_seam: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (5, 2)
    grid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (h, w, 2) half-res indices
    low_grid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    full_grid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (H, W, 2) crop px of box
    eyes: tuple[Eye, ...] = ()  # the face's right eye (image left), then its left eye
    mouth_color: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    teeth_color: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    tongue_color: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    photo_smile: float = 0.0  # the photo's own smile, as a mouthSmile weight (0: its corners are not raised)
    photo_teeth: float = 0.0  # height of the upper teeth the photo's own opening shows, px (0: none): they move
    # with the upper lip, so a new opening under them draws no upper teeth of its own (until the lips shut over them)
    photo_blur: float = 0.0  # the photo's softness (px, Gaussian sigma): the drawn mouth takes it on


Box = tuple[int, int, int, int]  # x0, y0, x1, y1, even crop px


@dataclass(frozen=True, eq=False)
class _Fields:
    """The per-control fields of one avatar and the geometry the lip seal reuses (prepare's middle step)."""

    upper: np.ndarray  # (n, h, w, 2) over the field box, half resolution
    lower: np.ndarray  # (n, lh, lw, 2) over the lower-face box
    seam_up: np.ndarray  # (n, len(SEAM), 2)
    seam_lo: np.ndarray
    seam_pts: np.ndarray  # the seam's landmarks, crop px
    low_xy: np.ndarray  # the lower box's half-resolution sample points
    low_frame: np.ndarray  # (lh, lw, 1) the rim falloff over the lower box


def _field_boxes(lm: np.ndarray, iod: float, points: np.ndarray) -> tuple[Box, Box]:
    """The field box (the head ellipse with its roll falloff, and everything within 3 sigma of a moved point) and
    the lower-face box around the lip seam, inside it."""
    centre, axes, _ = head_geometry(lm, iod)
    lo = np.minimum(centre - 1.5 * axes, points.min(0) - iod)
    hi = np.maximum(centre + 1.5 * axes, points.max(0) + iod)
    box = even_box(lo[0], lo[1], hi[0], hi[1])
    seam_lo = np.array([min(lm[i, 0] for i in SEAM) - LOW_REACH * iod, float(lm[list(SEAM), 1].min()) - 0.15 * iod])
    low_box = even_box(seam_lo[0], seam_lo[1], max(lm[i, 0] for i in SEAM) + LOW_REACH * iod,
                       float(lm[8, 1]) + 0.9 * iod)
    low_box = (max(low_box[0], box[0]), max(low_box[1], box[1]), min(low_box[2], box[2]), min(low_box[3], box[3]))
    return box, low_box


def _lip_seal(points: np.ndarray, iod: float, seam_pts: np.ndarray, low_xy: np.ndarray,
              low_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lip seal: the lower lip alone moving up, scaled so the seam's middle moves 1 px (field, seam moves)."""
    lower_set = set(range(len(points))) - UPPER_ONLY
    seal_moves = {i: (0.0, -1.0) for i in LOWER_LIP}
    seal_seam = spread(seal_moves, SEAL_SIGMA, points, iod, seam_pts, lower_set)
    unit = max(-float(seal_seam[SEAM_MIDDLE, 1]), 1e-6)
    seal = spread(seal_moves, SEAL_SIGMA, points, iod, low_xy, lower_set) / unit * low_frame
    return seal, seal_seam / unit


def _photo_shut(lm: np.ndarray, points: np.ndarray, iod: float, seam_pts: np.ndarray, low_xy: np.ndarray,
                low_frame: np.ndarray, parted: bool) -> tuple[np.ndarray, np.ndarray]:
    """The lower lip (and the jaw a little) risen to meet the upper lip where the photo's lips are parted (field,
    seam moves, px): pressed or closed lips are shut whatever the photo's mouth did. Zero for shut lips."""
    lower_set = set(range(len(points))) - UPPER_ONLY
    pairs = ((61, 67), (62, 66), (63, 65))  # upper and lower inner lip, left to right
    gaps = {lo: max(0.0, float(lm[lo, 1] - lm[up, 1]) / iod + SHUT_OVERLAP) for up, lo in pairs}
    if not parted or max(gaps.values()) < 0.01 + SHUT_OVERLAP:
        return np.zeros((*low_xy.shape[:2], 2), np.float32), np.zeros((len(SEAM), 2), np.float32)
    moves = {i: (0.0, -gaps[inner]) for inner, outer in ((67, 59), (66, 57), (65, 55)) for i in (inner, outer)}
    moves[58], moves[56] = (0.0, -gaps[66]), (0.0, -gaps[66])
    moves[60], moves[64] = (0.0, -0.5 * gaps[67]), (0.0, -0.5 * gaps[65])  # the inner corners' dark gaps too
    moves.update({i: (0.0, -0.6 * gaps[66]) for i in (7, 8, 9)})
    # The same move pinned at the upper inner lip: where the lips now meet, the lower lip's edge is drawn exactly
    # (a field fitted at the lower lip alone would fade on the way up and leave a line of the photo's teeth).
    moves.update({up: moves[lo] for up, lo in pairs})
    allowed = lower_set | {up for up, _ in pairs}
    shut = spread(moves, SEAL_SIGMA, points, iod, low_xy, allowed) * low_frame
    return shut.astype(np.float32), spread(moves, SEAL_SIGMA, points, iod, seam_pts, allowed).astype(np.float32)


@dataclass(frozen=True)
class _PhotoGap:
    """What the photo's own lip gap shows: parted lips (teeth or a dark mouth between them) or lips that are shut
    and only fitted a little apart, and the teeth's colour and height under the upper lip (px) where it shows any."""

    parted: bool
    teeth_color: np.ndarray | None = None
    teeth_height: float = 0.0


def _photo_smile(lm: np.ndarray, iod: float) -> float:
    """How much the photo already smiles, as a mouthSmile weight: its mouth corners' height over the lips' seam
    (a neutral mouth has them level, within PHOTO_SMILE_FROM), against the smile table's own corner lift."""
    lift = float((lm[62, 1] + lm[66, 1]) / 2 - (lm[48, 1] + lm[54, 1]) / 2) / iod
    return float(np.clip((lift - PHOTO_SMILE_FROM) / PHOTO_SMILE_LIFT, 0.0, 1.0))


def _mouth_colours(crop: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, _PhotoGap]:
    """The colours of a drawn mouth interior, drawn teeth and the tongue, from the photo's lips and the nose's skin,
    and what the photo's own lip gap shows.

    The cavity is the lips' hue, deep and muted (a mouth is dark inside, not a lit red); the tongue is a muted
    lip colour; the teeth are the photo's own where it shows them, else an off-white in the skin's light."""
    lips = np.zeros((CROP, CROP), np.uint8)
    cv2.fillPoly(lips, [np.round(lm[48:60]).astype(np.int32)], 1)
    cv2.fillPoly(lips, [np.round(lm[60:68]).astype(np.int32)], 0)
    lip_rgb = crop[lips.astype(bool)].astype(np.float32)
    lip_mean = lip_rgb.mean(0) if len(lip_rgb) else np.array([150.0, 80.0, 80.0], np.float32)
    skin = crop[int(lm[29, 1]) - 3:int(lm[29, 1]) + 3, int(lm[29, 0]) - 3:int(lm[29, 0]) + 3]
    skin_rgb = skin.reshape(-1, 3).mean(0) if skin.size else np.full(3, 180.0)
    mouth = (0.34 * lip_mean * np.array([1.0, 0.62, 0.62]) + 5.0).astype(np.float32)
    tongue = np.clip(0.8 * lip_mean * np.array([1.0, 0.72, 0.74]) + 18.0, 0, 255).astype(np.float32)
    enamel = np.array([236.0, 228.0, 214.0])
    teeth = np.clip(enamel * TEETH_LIGHT * _luma(skin_rgb) / _luma(enamel), 0, 250).astype(np.float32)
    gap = _photo_gap(crop, lm, lip_mean)
    return mouth, (gap.teeth_color if gap.teeth_color is not None else teeth), tongue, gap


def _luma(rgb: np.ndarray) -> float:
    """BT.601 luma of one RGB colour."""
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _photo_gap(crop: np.ndarray, lm: np.ndarray, lip_mean: np.ndarray) -> _PhotoGap:
    """Teeth are the gap's pixels brighter than the lips and nearly grey (enamel, not lip red); the inside of a
    mouth is darker than the lips. A gap of neither is lip: the contour was fitted open on shut lips."""
    mask = np.zeros((CROP, CROP), np.uint8)
    cv2.fillPoly(mask, [np.round(lm[60:68]).astype(np.int32)], 1)
    ys, xs = np.nonzero(mask)
    if len(ys) < 12:
        return _PhotoGap(parted=False)
    rgb = crop[ys, xs].astype(np.float32)
    value, low = rgb.max(1), rgb.min(1)
    lip_value = float(lip_mean.max())
    teeth = ((value - low) / np.maximum(value, 1.0) < 0.3) & (value > max(lip_value * 1.15, 90.0))
    dark = value < 0.6 * lip_value
    enough = max(12, 0.15 * len(ys))
    if teeth.sum() < enough:
        return _PhotoGap(parted=bool(dark.sum() >= enough))
    middle = np.abs(xs - (lm[62, 0] + lm[66, 0]) / 2) < 0.25 * float(lm[64, 0] - lm[60, 0])
    rows = ys[teeth & middle]
    height = max(float(rows.max() - lm[62, 1] + 1), 0.0) if len(rows) else 0.0
    return _PhotoGap(parted=True, teeth_color=np.median(rgb[teeth], 0).astype(np.float32), teeth_height=height)


def _pair_eyes(a: Eye, b: Eye) -> tuple[Eye, Eye]:
    """Both eyes close to the same depth below their fit: drawn eyes are alike, and one eye's white may be hidden
    by a reflection or shadow where the other's shows."""
    below = max(a.sclera_below, b.sclera_below)
    out = []
    for eye in (a, b):
        extra = int(math.ceil(below - eye.sclera_below))
        out.append(replace(eye, sclera_below=below, box=(*eye.box[:3], eye.box[3] + extra)))
    return out[0], out[1]


def _ease(x: float) -> float:
    """Smoothstep of a scalar, clamped to 0..1."""
    return float(smoothstep(np.float32(x)))


def field_weights(controls: dict[str, float]) -> np.ndarray:
    """The weight of each field in ``FIELDS`` for a frame's controls (sided bases split by ``side_values``)."""
    values = {n: BY_NAME[n].clamp(float(controls.get(n, 0.0))) for n in NAMES}
    sides = {base: side_values(values, base) for base in SIDED}
    out = np.zeros(len(FIELDS), np.float32)
    for k, name in enumerate(FIELDS):
        base = name.removesuffix("Left").removesuffix("Right")
        if base in sides and base != name:
            out[k] = sides[base][0] if name.endswith("Left") else sides[base][1]
        else:
            out[k] = values[name]
        if base in EXPRESSIVE:
            out[k] = out[k] ** RESPONSE
    return out


def _fold_depths(weights: np.ndarray, photo_smile: float) -> FoldDepths:
    """How deep each fold is drawn: the nasolabial by its side's smile and, less, its cheek raise (a smiling photo
    has its own, which the warp moves: only the rest is drawn), the forehead's lines by the brows raised (over the
    middle for the inner brows, out to the side of an outer brow raised)."""
    def w(name: str) -> float:
        return max(0.0, float(weights[FIELDS.index(name)]))

    sides = ("Right", "Left")  # the face's right side is the image's left
    nasolabial = tuple(min(1.0, w("mouthSmile" + s) + CHEEK_SHARE * w("cheekSquint" + s)) * (1.0 - photo_smile)
                       for s in sides)
    inner, outer = w("browInnerUp"), tuple(w("browOuterUp" + s) for s in sides)
    raised = max(inner, OUTER_SHARE * max(outer))
    return FoldDepths(nasolabial=nasolabial, forehead=min(1.0, raised),
                      forehead_reach=tuple(o / max(inner, o) if o > 0.0 else 0.0 for o in outer))


class OfflineRenderer:
    """Landmark-driven CPU warp renderer; ``prepare`` once per avatar (~0.3 s), ``render`` per frame (ms)."""

    name = "offline"
    prepares_anywhere = True  # numpy and cv2 only: the prep process runs ``prepare`` (engine/prep.py)

    def __init__(self, reason: str = "offline renderer requested") -> None:
        self.reason = reason
        self._moves = field_moves()

    def info(self) -> dict[str, Any]:
        return {"renderer": self.name, "device": "cpu", "dtype": "uint8", "method": "landmark warp (cv2.remap)",
                "reason": self.reason}

    # ---------------------------------------------------------------- per avatar
    def prepare(self, face: FaceCrop) -> OfflineSource:
        """Precompute the per-control fields, the bounding box, blink geometry and mouth colours."""
        if face.crop.shape != (CROP, CROP, 3) or face.crop_landmarks.shape != (68, 2):
            raise ValueError("the offline renderer needs a 512x512 crop with 68 iBUG landmarks")
        lm = face.crop_landmarks.astype(np.float64)
        iod = max(float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))), 8.0)
        points = control_points(lm, iod)
        box, low_box = _field_boxes(lm, iod, points)
        fields = self._control_fields(lm, iod, points, box, low_box)
        seal, seal_seam = _lip_seal(points, iod, fields.seam_pts, fields.low_xy, fields.low_frame)
        x0, y0, x1, y1 = box
        full = np.stack(np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32)), -1)
        mouth_color, teeth_color, tongue_color, gap = _mouth_colours(face.crop, lm)
        shut, shut_seam = _photo_shut(lm, points, iod, fields.seam_pts, fields.low_xy, fields.low_frame, gap.parted)
        return OfflineSource(
            face=face, points=points.astype(np.float32), iod=iod, box=box, low_box=low_box,
            upper=fields.upper, lower=fields.lower, seam_up=fields.seam_up, seam_lo=fields.seam_lo,
            seal=seal.astype(np.float32), seal_seam=seal_seam.astype(np.float32), shut=shut, shut_seam=shut_seam,
            grid=index_grid(*fields.upper.shape[1:3]), low_grid=index_grid(*fields.lower.shape[1:3]), full_grid=full,
            eyes=with_eyeballs(face.crop, _pair_eyes(eye_geometry(face.crop, lm, iod, EYE_A, BROW_A),
                                                     eye_geometry(face.crop, lm, iod, EYE_B, BROW_B))),
            mouth_color=mouth_color, teeth_color=teeth_color, tongue_color=tongue_color,
            photo_teeth=gap.teeth_height, photo_smile=_photo_smile(lm, iod), photo_blur=photo_blur(face.crop, lm),
        )

    def _control_fields(self, lm: np.ndarray, iod: float, points: np.ndarray, box: Box, low_box: Box) -> _Fields:
        """Each control's displacement field over the upper box, the lower (mouth) box and the seam between them."""
        grid, low_xy = half_grid(box), half_grid(low_box)
        shape = grid.shape[:2]
        all_points = set(range(len(points)))
        upper_set, lower_set = all_points - LOWER_ONLY, all_points - UPPER_ONLY
        head, head_low = head_fields(lm, iod, grid), head_fields(lm, iod, low_xy)
        seam_pts = lm[list(SEAM)]
        head_seam = head_fields(lm, iod, seam_pts)

        n = len(FIELDS)
        upper = np.zeros((n, *shape, 2), np.float32)
        lower = np.zeros((n, *low_xy.shape[:2], 2), np.float32)
        s_up = np.zeros((n, len(SEAM), 2), np.float32)
        s_lo = np.zeros((n, len(SEAM), 2), np.float32)
        lx0, ly0 = (low_box[0] - box[0]) // STEP, (low_box[1] - box[1]) // STEP
        # Fields that share a spread and the points they listen to share their Gaussians: one evaluation a group.
        groups: dict[tuple[float, bool], list[int]] = {}
        for k, name in enumerate(FIELDS):
            if name in self._moves:
                opening = name.removesuffix("Left").removesuffix("Right") in OPENING
                groups.setdefault((self._moves[name].sigma, opening), []).append(k)
            else:
                upper[k], lower[k] = head[name], head_low[name]
                s_up[k] = s_lo[k] = head_seam[name]
        for (sigma, opening), ks in groups.items():
            tables = [(self._moves[FIELDS[k]].moves, self._moves[FIELDS[k]].fit) for k in ks]
            up_set, lo_set = (upper_set, lower_set) if opening else (all_points, all_points)
            upper[ks] = spread_many(tables, sigma, points, iod, grid, up_set)
            lower[ks] = spread_many(tables, sigma, points, iod, low_xy, lo_set)
            s_up[ks] = spread_many(tables, sigma, points, iod, seam_pts, up_set)
            s_lo[ks] = spread_many(tables, sigma, points, iod, seam_pts, lo_set)
        frame = rim(shape)
        low_frame = frame[ly0:ly0 + lower.shape[1], lx0:lx0 + lower.shape[2], None]
        upper *= frame[None, :, :, None]
        lower *= low_frame[None]
        return _Fields(upper, lower, s_up, s_lo, seam_pts, low_xy, low_frame)

    # ---------------------------------------------------------------- per frame
    def render(self, source: SourceState, state: AnimationState) -> np.ndarray:
        """The crop with the state's expression: one remap over the box, then eyelids and mouth interior."""
        if not isinstance(source, OfflineSource):
            raise TypeError("OfflineRenderer.render needs the OfflineSource from its own prepare()")
        crop = source.face.crop
        weights = field_weights(state.controls)
        # A frown on a smiling photo first takes the photo's own smile back (the controls are relative to a neutral
        # face; a frown over an unchanged smile reads as a grimace): each side's smile eased off by its frown.
        if source.photo_smile > 0.0:
            for side in ("Left", "Right"):
                frown = weights[FIELDS.index("mouthFrown" + side)]
                weights[FIELDS.index("mouthSmile" + side)] -= source.photo_smile * min(1.0, float(frown))
        values = {n: BY_NAME[n].clamp(float(state.controls.get(n, 0.0))) for n in NAMES}
        blinks, wides = side_values(values, BLINK), side_values(values, WIDE)
        gaze_x, gaze_y = values["gazeX"], values["gazeY"]
        if not weights.any() and not any(blinks) and not any(wides) and gaze_x == 0.0 and gaze_y == 0.0:
            return crop.copy()
        active = np.flatnonzero(weights)

        up = np.zeros(source.upper.shape[1:], np.float32)
        lo = np.zeros(source.lower.shape[1:], np.float32)
        for k in active:
            up += weights[k] * source.upper[k]
            lo += weights[k] * source.lower[k]
        seam0 = source.face.crop_landmarks[list(SEAM)]
        seam_top = seam0 + np.tensordot(weights, source.seam_up, 1)
        seam_bot = seam0 + np.tensordot(weights, source.seam_lo, 1)
        press = float(weights[FIELDS.index("mouthPressLeft")] + weights[FIELDS.index("mouthPressRight")]) / 2
        # mouthClose (ARKit): the lips shut over the jaw's opening, mouthClose == jawOpen being fully shut.
        shut = min(1.0, values["mouthClose"] / max(values["jawOpen"], values["mouthClose"], 1e-6))
        # Pressed or closed lips also shut over the photo's own parted lips (a smiling photo's teeth hidden): the
        # lower lip rises to the upper, and the new opening (if any) starts from there.
        photo_shut = max(_ease((press - PRESS_SHUT[0]) / (PRESS_SHUT[1] - PRESS_SHUT[0])),
                         shut * _ease(values["mouthClose"] / CLOSE_SHUT))
        if photo_shut > 0.0:
            lo += photo_shut * source.shut
            seam_top = seam_top + photo_shut * source.shut_seam
            seam_bot = seam_bot + photo_shut * source.shut_seam
        # Soft lips stay sealed while the jaw drops a hair (longer in a smile, and pressed lips hold against a jaw
        # that opens): the lower lip follows the upper.
        gap = float(seam_bot[SEAM_MIDDLE, 1] - seam_top[SEAM_MIDDLE, 1])
        if gap > 0.0:
            smile = float(weights[FIELDS.index("mouthSmileLeft")] + weights[FIELDS.index("mouthSmileRight")]) / 2
            smile = max(0.0, smile)  # a frown taking a photo's smile back gives no seal
            # A raised upper lip bares the teeth on purpose (a broad smile, speech's lip axis): no smile seal then.
            lift = max(side_values(values, "mouthUpperUp"))
            bare = 1.0 - _ease((lift - UPPER_UNSEAL[0]) / (UPPER_UNSEAL[1] - UPPER_UNSEAL[0]))
            close = min(gap, (LIP_SEAL + LIP_SEAL_SMILE * smile * bare + PRESS_SEAL * press * press) * source.iod)
            close = max(close, shut * gap)
            lo += close * source.seal
            seam_bot = seam_bot + close * source.seal_seam
        folds = _fold_depths(weights, source.photo_smile)
        if folds.any():  # where the folds' landmarks move to (the forward field, before it is inverted)
            anchors = source.face.crop_landmarks[list(ANCHORS)]
            anchors = anchors + sample(up, source.box, anchors)
        up = invert(up, source.grid)
        lo = invert(lo, source.low_grid)
        blend_lower(up, lo, source.box, source.low_box, (seam_top + seam_bot) / 2, source.iod)

        x0, y0, x1, y1 = source.box
        disp = cv2.resize(up, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        maps = source.full_grid - disp
        # The face's right eye is the image's left (source.eyes[0]); side_values answers (left, right).
        redraw = gaze_x != 0.0 or gaze_y != 0.0
        lids = []
        for eye, close, wide in zip(source.eyes, blinks[::-1], wides[::-1], strict=True):
            ball = eye.ball is not None and (redraw or wide > 0.0)
            lids.append(move_lids(maps, eye, close, wide, gaze_y, source.box, ball))
        out = crop.copy()
        out[y0:y1, x0:x1] = cv2.remap(crop, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if folds.any():
            draw_folds(out, anchors, source.iod, folds)
        for eye, frame in zip(source.eyes, lids, strict=True):
            if frame is not None:
                draw_eyeball(out, eye, frame, gaze_shift(eye, gaze_x, gaze_y))
        if photo_shut > 0.0 and source.shut.any():
            draw_lip_line(out, (seam_top + seam_bot) / 2, source.mouth_color * 1.6, photo_shut)  # the lips' shade
        draw_interior(out, seam_top, seam_bot, source.iod, source.mouth_color, source.teeth_color,
                      photo_shut if source.photo_teeth > 0.0 else 1.0,
                      float(weights[FIELDS.index("mouthRollLower")]), values["tongueOut"], source.tongue_color,
                      max(side_values(values, "mouthSmile")), source.photo_blur,
                      max(values["mouthFunnel"], values["mouthPucker"]))
        return out
