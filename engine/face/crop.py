"""The reference's face crop: a similarity transform from landmarks to a square crop, roll removed.

Source crop: 512x512, scale 2.3, vy -0.125 (section 3 of shared/reference/face_pipeline.md); the 203-point landmark
crop reuses the same maths at 224, scale 1.5, vy -0.1. The crop's size and centre come from the extent of all the
points given; the roll comes from the eye-centre-to-mouth-centre line, whose indices depend on the layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# (eye A points, eye B points, mouth points) per landmark count: their means give the roll line.
ROLL_POINTS: dict[int, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    5: ((0,), (1,), (3, 4)),
    68: ((36, 39), (42, 45), (48, 54)),
    106: ((33, 35, 40, 39), (87, 89, 94, 93), (52, 61)),
    203: ((0, 6, 12, 18), (24, 30, 36, 42), (48, 66)),
}


@dataclass(frozen=True)
class CropParams:
    dsize: int = 512
    scale: float = 2.3
    vx_ratio: float = 0.0
    vy_ratio: float = -0.125


SOURCE_CROP = CropParams()
LANDMARK_CROP = CropParams(dsize=224, scale=1.5, vy_ratio=-0.1)


def roll_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (u_x, u_y) of the face frame: u_y from the eyes' midpoint down to the mouth."""
    n = len(points)
    if n not in ROLL_POINTS:
        raise ValueError(f"no roll landmarks known for {n} points")
    eye_a, eye_b, mouth = (points[list(idx)].mean(axis=0) for idx in ROLL_POINTS[n])
    down = mouth - (eye_a + eye_b) / 2
    norm = float(np.linalg.norm(down))
    u_y = down / norm if norm > 1e-3 else np.array([0.0, 1.0])
    u_x = np.array([u_y[1], -u_y[0]])
    return u_x, u_y


def crop_transform(points: np.ndarray, params: CropParams = SOURCE_CROP) -> np.ndarray:
    """The 3x3 image-to-crop matrix M_o2c for these landmarks (x, y pixels)."""
    pts = np.asarray(points, dtype=np.float64)
    u_x, u_y = roll_frame(pts)
    rot = np.stack([u_x, u_y])  # rows: the crop's x and y axes in image coordinates
    c0 = pts.mean(axis=0)
    local = (pts - c0) @ rot.T
    lo, hi = local.min(axis=0), local.max(axis=0)
    c1 = (lo + hi) / 2
    size = float((hi - lo).max()) * params.scale
    centre = c0 + u_x * c1[0] + u_y * c1[1]
    centre = centre + u_x * (params.vx_ratio * size) + u_y * (params.vy_ratio * size)
    s = params.dsize / size
    m = np.eye(3)
    m[:2, :2] = s * rot
    m[:2, 2] = params.dsize / 2 - s * rot @ centre
    return m


def warp_crop(image: np.ndarray, m_o2c: np.ndarray, dsize: int) -> np.ndarray:
    return cv2.warpAffine(image, m_o2c[:2], (dsize, dsize), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ m[:2, :2].T + m[:2, 2]).astype(np.float32)


def network_input(crop512: np.ndarray) -> np.ndarray:
    """The 256x256 network input: INTER_AREA resize of the 512 crop."""
    return cv2.resize(crop512, (256, 256), interpolation=cv2.INTER_AREA)


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def openness_ratios(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eye (1, 2) and lip (1, 1) openness: lid distance / eye width, lip opening / mouth width.

    203 points: the reference's formula. 68 points (iBUG): our analogue (mean of the two lid pairs).
    """
    p = np.asarray(points, dtype=np.float64)
    if len(p) == 203:
        eyes = [_dist(p[6], p[18]) / (_dist(p[0], p[12]) + 1e-6), _dist(p[30], p[42]) / (_dist(p[24], p[36]) + 1e-6)]
        lip = _dist(p[90], p[102]) / (_dist(p[48], p[66]) + 1e-6)
    elif len(p) == 68:
        eyes = [
            (_dist(p[37], p[41]) + _dist(p[38], p[40])) / 2 / (_dist(p[36], p[39]) + 1e-6),
            (_dist(p[43], p[47]) + _dist(p[44], p[46])) / 2 / (_dist(p[42], p[45]) + 1e-6),
        ]
        lip = _dist(p[62], p[66]) / (_dist(p[48], p[54]) + 1e-6)
    else:
        raise ValueError(f"no openness formula for {len(p)} points")
    return np.array([eyes], dtype=np.float32), np.array([[lip]], dtype=np.float32)
