"""The offline face detector: dlib's HOG frontal detector, its CNN detector for turned faces, and 68 points.

No model download: the HOG detector is built into dlib; the CNN detector (``mmod_human_face_detector.dat``) and the
68-point predictor ship in the PyPI package ``face-recognition-models`` (the ``[offline]`` extra; the predictor's
training data, iBUG 300-W, excludes commercial use).

Why two detectors: HOG sees frontal faces only (a painting turned about 40 degrees, Vermeer's girl in
tests/data/s10.jpg, gets "no face"); the CNN finds turned faces but costs about a second on a CPU, holding the GIL
all along (bench/bench_prep.py; hence the engine's prep process, engine/prep.py), so it runs only when HOG finds
nothing, on the image scaled to ``CNN_MAX_SIDE``. Detection runs on the image scaled to at most 1280 on its longer
side; the 68 points are always fitted at full size.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np

from engine.errors import ModelsMissing
from engine.face.types import Face

log = logging.getLogger(__name__)

DETECT_MAX_SIDE = 1280
# HOG score threshold. Measured on tests/data and JPEG re-encodes of it (quality 75-90): the weakest true face
# scores 0.206 (t1.jpg, the half-turned woman), the strongest false positive 0.121 (the astronaut's round mission
# patch after a quality-75 re-encode; 0.066 in astronaut.jpg itself). dlib's own default, 0, keeps the patch.
DETECT_THRESHOLD = 0.15
# The CNN runs on the image scaled to this longer side: a portrait's face stays well above the detector's ~40 px
# minimum, and it costs 0.8-2.6 s on this 2-core machine under load (1.3-1.9 s without upscaling at 480 px was
# measured too, for no extra find). Its confidence on the turned faces measured: s10.jpg 1.03; on every negative
# in tests/data and LivePortrait's animal examples (dogs, cats, alpacas, a monkey) it found nothing at all.
CNN_MAX_SIDE = 384
CNN_THRESHOLD = 0.5
CNN_MODEL = "mmod_human_face_detector.dat"


def models_dir() -> Path:
    """The models folder inside face_recognition_models, found without importing it (it needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelsMissing("the offline face detector needs `pip install 'liveportrait-engine[offline]'`")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def predictor_path() -> Path:
    """The 68-point model inside face_recognition_models."""
    path = models_dir() / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise ModelsMissing(f"face_recognition_models is installed but {path} is missing")
    return path


class DlibDetector:
    """HOG first; the CNN only when HOG finds nothing (``turned=False`` turns the CNN off)."""

    name = "dlib"

    def __init__(self, turned: bool = True) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ModelsMissing("the offline face detector needs `pip install 'liveportrait-engine[offline]'`") from exc
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path()))
        self._cnn = None
        cnn_path = models_dir() / CNN_MODEL
        if turned and cnn_path.is_file():
            self._cnn = dlib.cnn_face_detection_model_v1(str(cnn_path))
        elif turned:
            log.warning("dlib CNN face detector %s missing: turned faces will not be found", cnn_path)

    @property
    def description(self) -> str:
        """What the detector is, for the log line that announces it."""
        second = f", then dlib's CNN ({CNN_MODEL}) for turned faces when HOG finds none" if self._cnn else ""
        return f"dlib HOG (frontal){second}; 68-point landmarks"

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = self._detect_hog(image)
        if not faces and self._cnn is not None:
            faces = self._detect_cnn(image)
        return faces

    def _detect_hog(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = cv2.resize(image, (round(w * scale), round(h * scale))) if scale < 1.0 else image
        rects, scores, _ = self._detector.run(np.ascontiguousarray(small), 0, DETECT_THRESHOLD)
        return [self._fit(image, np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64) / scale, float(s))
                for r, s in zip(rects, scores, strict=True)]

    def _detect_cnn(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        scale = min(1.0, CNN_MAX_SIDE / max(h, w))
        small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        found = self._cnn(np.ascontiguousarray(small), 0)
        faces = []
        for d in found:
            if d.confidence < CNN_THRESHOLD:
                continue
            r = d.rect
            box = np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64) / scale
            faces.append(self._fit(image, box, float(d.confidence)))
        if faces:
            log.info("HOG found no face; dlib's CNN found %d (turned face)", len(faces))
        return faces

    def _fit(self, image: np.ndarray, box: np.ndarray, score: float) -> Face:
        full = self._dlib.rectangle(*(int(round(v)) for v in box))
        shape = self._predictor(image, full)
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        return Face(box=box.astype(np.float32), score=score, landmarks=points, layout="ibug68")

    def landmarks203(self, image: np.ndarray, face: Face) -> None:
        """dlib has no 203-point model: the crop and the ratios use the 68 points."""
        return None
