"""The offline face detector: dlib's HOG frontal detector plus the 68-point shape predictor.

No model download: the HOG detector is built into dlib and the predictor ships in the PyPI package
``face-recognition-models`` (the ``[offline]`` extra; its training data, iBUG 300-W, excludes commercial use).
Detection runs on the image scaled to at most 1280 on its longer side; the 68 points are fitted at full size.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from engine.errors import ModelsMissing
from engine.face.types import Face

DETECT_MAX_SIDE = 1280
# HOG score threshold. Measured on tests/data and JPEG re-encodes of it (quality 75-90): the weakest true face
# scores 0.206 (t1.jpg, the half-turned woman), the strongest false positive 0.121 (the astronaut's round mission
# patch after a quality-75 re-encode; 0.066 in astronaut.jpg itself). dlib's own default, 0, keeps the patch.
DETECT_THRESHOLD = 0.15


def predictor_path() -> Path:
    """The 68-point model inside face_recognition_models, found without importing it (it needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelsMissing("the offline face detector needs `pip install 'liveportrait-engine[offline]'`")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise ModelsMissing(f"face_recognition_models is installed but {path} is missing")
    return path


class DlibDetector:
    name = "dlib"

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ModelsMissing("the offline face detector needs `pip install 'liveportrait-engine[offline]'`") from exc
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path()))

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = cv2.resize(image, (round(w * scale), round(h * scale))) if scale < 1.0 else image
        rects, scores, _ = self._detector.run(np.ascontiguousarray(small), 0, DETECT_THRESHOLD)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64) / scale
            full = self._dlib.rectangle(*(int(round(v)) for v in box))
            shape = self._predictor(image, full)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            faces.append(Face(box=box.astype(np.float32), score=float(score), landmarks=points, layout="ibug68"))
        return faces

    def landmarks203(self, image: np.ndarray, face: Face) -> None:
        """dlib has no 203-point model: the crop and the ratios use the 68 points."""
        return None
