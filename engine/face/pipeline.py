"""Photo -> aligned face crop: detect, keep the largest face, crop with the reference's maths.

Two detectors behind one call: the production ONNX path (SCRFD + 106 points + LivePortrait's 203 points) when its
files are in the models folder, else dlib (HOG + 68 points). Runs once per source portrait, never per frame, and
in the engine only inside the prep process (engine/prep.py): dlib's CNN holds the GIL for its whole run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.errors import ModelsMissing, NoFaceDetected
from engine.face.crop import SOURCE_CROP, apply, crop_transform, network_input, openness_ratios, warp_crop
from engine.face.intake import decode_image, give_back_memory, limit_size
from engine.face.types import Face, FaceCrop

log = logging.getLogger(__name__)

NO_FACE_MESSAGE = "No face detected: use a clear, well-lit, frontal portrait"
MIN_FACE_PX = 24  # smaller boxes are not a usable source


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face in the image (x, y pixels), with its landmarks; any order."""
        ...

    def landmarks203(self, image: np.ndarray, face: Face) -> np.ndarray | None:
        """LivePortrait's 203 points for the chosen face, or None when the detector has no such model."""
        ...


def _area(face: Face) -> float:
    x1, y1, x2, y2 = face.box
    return float(max(0.0, x2 - x1) * max(0.0, y2 - y1))


class FacePipeline:
    """Owns the detector; ``crop`` is the one call the engine makes per uploaded photo."""

    def __init__(self, detector: Detector, reason: str = "") -> None:
        self.detector = detector
        self.reason = reason

    @classmethod
    def create(cls, models_dir: str | Path | None = None, mode: str = "auto") -> FacePipeline:
        """``mode``: "auto" (ONNX when its files are present, else dlib), "onnx" or "dlib"."""
        if mode not in ("auto", "onnx", "dlib"):
            raise ValueError(f"face detector mode must be auto, onnx or dlib, not {mode!r}")
        if mode in ("auto", "onnx"):
            try:
                from engine.face.detect_onnx import OnnxDetector

                detector = OnnxDetector.from_dir(Path(models_dir) if models_dir else Path("models"))
                return cls(detector, "ONNX face models found")
            except (ImportError, ModelsMissing) as exc:
                if mode == "onnx":
                    raise ModelsMissing(str(exc)) from exc
                reason = f"ONNX face models unavailable ({exc}); using the offline dlib detector"
                log.warning(reason)
        else:
            reason = "dlib detector requested"
        from engine.face.detect_dlib import DlibDetector

        dlib_detector = DlibDetector()
        log.info("face detector: %s (%s)", dlib_detector.description, reason)
        return cls(dlib_detector, reason)

    @property
    def name(self) -> str:
        return self.detector.name

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = [f for f in self.detector.detect(image) if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= MIN_FACE_PX]
        return sorted(faces, key=_area, reverse=True)

    def crop(self, image: np.ndarray) -> FaceCrop:
        """The aligned crop of the largest face; NoFaceDetected when there is none.

        The image is first brought to the reference's source size (longer side <= 1280, even sides), so that
        FaceCrop.image is the photo that paste-back writes into.
        """
        image = limit_size(image)
        faces = self.detect(image)
        if not faces:
            raise NoFaceDetected(NO_FACE_MESSAGE)
        face = faces[0]
        return make_crop(image, face, n_faces=len(faces), detector=self.name,
                         landmarks203=self.detector.landmarks203(image, face))

    def crop_bytes(self, data: bytes, max_bytes: int = 20_000_000, max_pixels: int = 40_000_000) -> FaceCrop:
        """Uploaded bytes -> FaceCrop: intake with its limits, then ``crop``.

        The heap goes back to the OS after detection too: the detectors' scratch for a large photo is freed but
        glibc would keep it (+70 MB after a 6000x6000 RGBA upload with no face, measured)."""
        try:
            return self.crop(decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels))
        finally:
            give_back_memory()


def make_crop(image: np.ndarray, face: Face, n_faces: int = 1, detector: str = "dlib",
              landmarks203: np.ndarray | None = None) -> FaceCrop:
    """Build the FaceCrop for one face: 512 source crop, 256 network input, transforms, openness ratios."""
    m_o2c = crop_transform(face.landmarks, SOURCE_CROP)
    crop = warp_crop(image, m_o2c, SOURCE_CROP.dsize)
    ratio_points = landmarks203 if landmarks203 is not None else face.landmarks
    eye_ratio, lip_ratio = openness_ratios(ratio_points) if len(ratio_points) in (68, 203) else (
        np.full((1, 2), 0.3, np.float32), np.zeros((1, 1), np.float32))
    return FaceCrop(
        image=image,
        crop=crop,
        input_256=network_input(crop),
        M_o2c=m_o2c,
        M_c2o=np.linalg.inv(m_o2c),
        face=face,
        crop_landmarks=apply(m_o2c, face.landmarks),
        eye_ratio=eye_ratio,
        lip_ratio=lip_ratio,
        n_faces=n_faces,
        detector=detector,
        landmarks203=landmarks203,
    )
