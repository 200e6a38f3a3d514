"""What the face pipeline hands to a renderer: one aligned face and how to put it back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face in image coordinates (x, y pixels of the intake image)."""

    box: np.ndarray  # (4,) float32: x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # (N, 2) float32, image coordinates
    layout: str  # "ibug68" (dlib) or "insightface106" (2d106det)
    kps5: np.ndarray | None = None  # (5, 2) SCRFD keypoints when the detector gives them


@dataclass(frozen=True)
class FaceCrop:
    """The aligned 512x512 source crop of the largest face, plus everything needed to paste back.

    ``M_o2c`` maps image pixels to crop pixels (3x3, homogeneous); ``M_c2o`` is its inverse.
    ``crop_landmarks`` are ``face.landmarks`` mapped into the 512 crop.
    """

    image: np.ndarray  # (H, W, 3) uint8 RGB: the photo after intake (max side 1280, even sides)
    crop: np.ndarray  # (512, 512, 3) uint8 RGB
    input_256: np.ndarray  # (256, 256, 3) uint8 RGB, INTER_AREA resize of ``crop``: the network input
    M_o2c: np.ndarray  # (3, 3) float64
    M_c2o: np.ndarray  # (3, 3) float64
    face: Face
    crop_landmarks: np.ndarray  # (N, 2) float32, 512-crop coordinates, same layout as face.landmarks
    eye_ratio: np.ndarray  # (1, 2) float32: eye A, eye B openness (lid distance / eye width)
    lip_ratio: np.ndarray  # (1, 1) float32: lip opening / mouth width
    n_faces: int  # how many faces the detector found (the largest is used)
    detector: str  # "onnx" or "dlib"
    landmarks203: np.ndarray | None = None  # (203, 2) image coordinates, production path only
