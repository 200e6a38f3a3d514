"""The production face detector: SCRFD + 106 points (InsightFace buffalo_l) + LivePortrait's 203 points, on onnxruntime.

Our own small runner instead of the ``insightface`` package, which pulls a second OpenCV, detects at other sizes
than the reference and fails with a bare AssertionError on an empty folder. Every convention below (letterbox,
normalisation, anchor layout, distance decoding, thresholds, crops) follows sections 1, 2 and 4 of
shared/reference/face_pipeline.md. Images are (H, W, 3) uint8 RGB throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import ModelsMissing, WeightsInvalid
from engine.face.crop import LANDMARK_CROP, apply, crop_transform, warp_crop
from engine.face.types import Face
from engine.models.layout import HF_REPO, LANDMARK_106, LANDMARK_203, SCRFD

DET_SIZE = 512  # the reference's det_size
DET_THRESH = 0.15  # ArgumentConfig's default, which is what runs (not CropConfig's 0.1)
NMS_THRESH = 0.4
STRIDES = (8, 16, 32)
NUM_ANCHORS = 2
LMK106_SIZE = 192
LMK106_BOX_SCALE = 1.5  # the 192 crop's side is 1.5 x the box's longer side
LMK203_OUTPUT = 2  # landmark.onnx returns 3 tensors; the third holds the 203 points


def _session(path: Path, threads: int):
    """A CPU onnxruntime session; a file that does not load is WeightsInvalid, not a crash."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise WeightsInvalid(f"{path} is not a loadable ONNX model ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------- SCRFD (det_10g.onnx)


def letterbox(image: np.ndarray, size: int = DET_SIZE) -> tuple[np.ndarray, float]:
    """Aspect-preserving resize pasted at the top-left of a black size x size canvas; returns (canvas, det_scale)."""
    h, w = image.shape[:2]
    if h / w > 1:
        new_h, new_w = size, int(size * w / h)
    else:
        new_w, new_h = size, int(size * h / w)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
    return canvas, new_h / h


def scrfd_blob(canvas: np.ndarray) -> np.ndarray:
    """RGB, (v - 127.5) / 128, NCHW float32."""
    return ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None].copy()


def anchor_centres(height: int, width: int, stride: int, num_anchors: int = NUM_ANCHORS) -> np.ndarray:
    """(rows, 2) anchor centres (x, y): the cell's top-left corner, cell-major and anchor-minor."""
    ys, xs = np.mgrid[:height, :width]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, num_anchors, axis=0)


def distance_to_box(centres: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(l, t, r, b) distances from the centre -> (x1, y1, x2, y2)."""
    return np.concatenate([centres - dist[:, 0:2], centres + dist[:, 2:4]], axis=1)


def distance_to_kps(centres: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(dx0, dy0, dx1, dy1, ...) offsets from the centre -> (rows, K, 2) points."""
    return centres[:, None, :] + dist.reshape(len(dist), dist.shape[1] // 2, 2)


def nms(boxes: np.ndarray, scores: np.ndarray, thresh: float = NMS_THRESH) -> list[int]:
    """Greedy NMS, highest score first, areas with the +1 pixel convention; keeps a box whose IoU <= thresh."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= thresh]
    return keep


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (N, 4) float32, image pixels, highest score first
    scores: np.ndarray  # (N,) float32
    kps: np.ndarray  # (N, 5, 2) float32


def decode_scrfd(outputs: list[np.ndarray], det_scale: float, size: int = DET_SIZE,
                 thresh: float = DET_THRESH, nms_thresh: float = NMS_THRESH) -> Detections:
    """The 9 SCRFD outputs (scores, boxes, kps for strides 8, 16, 32) -> detections in image pixels."""
    n = len(STRIDES)
    if len(outputs) != 3 * n:
        raise WeightsInvalid(f"SCRFD model has {len(outputs)} outputs; det_10g.onnx has {3 * n}")
    all_boxes, all_scores, all_kps = [], [], []
    for k, stride in enumerate(STRIDES):
        scores, boxes, kps = (np.asarray(outputs[k + j * n], dtype=np.float32) for j in range(3))
        if scores.ndim == 3:  # batched export: drop the batch axis
            scores, boxes, kps = scores[0], boxes[0], kps[0]
        cells = size // stride
        centres = anchor_centres(cells, cells, stride)
        if len(scores) != len(centres):
            raise WeightsInvalid(f"SCRFD stride {stride}: {len(scores)} rows, expected {len(centres)}")
        hit = scores.reshape(-1) >= thresh
        all_scores.append(scores.reshape(-1)[hit])
        all_boxes.append(distance_to_box(centres[hit], boxes[hit] * stride))
        all_kps.append(distance_to_kps(centres[hit], kps[hit] * stride))
    scores = np.concatenate(all_scores)
    boxes = np.concatenate(all_boxes) / det_scale
    kps = np.concatenate(all_kps) / det_scale
    order = np.argsort(-scores, kind="stable")
    scores, boxes, kps = scores[order], boxes[order], kps[order]
    keep = nms(boxes, scores, nms_thresh) if len(scores) else []
    return Detections(boxes[keep].astype(np.float32), scores[keep].astype(np.float32), kps[keep].astype(np.float32))


class Scrfd:
    """det_10g.onnx at the reference's 512x512 input."""

    def __init__(self, session, thresh: float = DET_THRESH) -> None:
        outs = session.get_outputs()
        if len(outs) != 9:
            raise WeightsInvalid(f"{len(outs)} outputs where det_10g.onnx (SCRFD with keypoints) has 9")
        self._session = session
        self._input = session.get_inputs()[0].name
        self.thresh = thresh

    def __call__(self, image: np.ndarray) -> Detections:
        canvas, det_scale = letterbox(image)
        outputs = self._session.run(None, {self._input: scrfd_blob(canvas)})
        return decode_scrfd(outputs, det_scale, thresh=self.thresh)


# ---------------------------------------------------------------- 106 points (2d106det.onnx)


def lmk106_transform(box: np.ndarray) -> np.ndarray:
    """2x3 image-to-crop map: centred on the box, side 1.5 x its longer side, no rotation."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    s = LMK106_SIZE / (max(x2 - x1, y2 - y1) * LMK106_BOX_SCALE)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = LMK106_SIZE / 2
    return np.array([[s, 0.0, half - s * cx], [0.0, s, half - s * cy]])


def lmk106_blob(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The 192 crop, RGB, raw 0..255 (the model's mean is 0, std 1), NCHW float32."""
    crop = cv2.warpAffine(image, m, (LMK106_SIZE, LMK106_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crop.astype(np.float32).transpose(2, 0, 1)[None].copy()


def decode_106(output: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(1, 212) values in about [-1, 1] -> (106, 2) image pixels: (v + 1) * 96, then the inverse crop map."""
    pts = np.asarray(output, dtype=np.float64).reshape(-1, 2)
    pts = (pts + 1.0) * (LMK106_SIZE // 2)
    inv = cv2.invertAffineTransform(m)
    return (pts @ inv[:, :2].T + inv[:, 2]).astype(np.float32)


class Landmark106:
    def __init__(self, session) -> None:
        inp = session.get_inputs()[0]
        if list(inp.shape[2:]) != [LMK106_SIZE, LMK106_SIZE]:
            raise WeightsInvalid(f"2d106det input shape {inp.shape}; expected [N, 3, 192, 192]")
        self._session = session
        self._input = inp.name

    def __call__(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        m = lmk106_transform(box)
        out = self._session.run(None, {self._input: lmk106_blob(image, m)})[0]
        if out.size != 212:
            raise WeightsInvalid(f"2d106det returned {out.size} values; expected 212")
        return decode_106(out, m)


# ---------------------------------------------------------------- 203 points (LivePortrait landmark.onnx)


def lmk203_blob(image: np.ndarray, m_o2c: np.ndarray) -> np.ndarray:
    """The 224 crop (scale 1.5, vy -0.1, roll removed), RGB / 255, NCHW float32."""
    crop = warp_crop(image, m_o2c, LANDMARK_CROP.dsize)
    return (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()


def decode_203(output: np.ndarray, m_o2c: np.ndarray) -> np.ndarray:
    """(1, 406) values in [0, 1] crop units -> (203, 2) image pixels."""
    pts = np.asarray(output, dtype=np.float64).reshape(-1, 2) * LANDMARK_CROP.dsize
    return apply(np.linalg.inv(m_o2c), pts)


class Landmark203:
    def __init__(self, session) -> None:
        inp = session.get_inputs()[0]
        if list(inp.shape[2:]) != [LANDMARK_CROP.dsize, LANDMARK_CROP.dsize]:
            raise WeightsInvalid(f"landmark.onnx input shape {inp.shape}; expected [1, 3, 224, 224]")
        if len(session.get_outputs()) <= LMK203_OUTPUT:
            raise WeightsInvalid(f"landmark.onnx has {len(session.get_outputs())} outputs; expected 3")
        self._session = session
        self._input = inp.name

    def __call__(self, image: np.ndarray, points106: np.ndarray) -> np.ndarray:
        m = crop_transform(points106, LANDMARK_CROP)
        out = self._session.run(None, {self._input: lmk203_blob(image, m)})[LMK203_OUTPUT]
        if out.size != 406:
            raise WeightsInvalid(f"landmark.onnx returned {out.size} values in its third output; expected 406")
        return decode_203(out, m)


# ---------------------------------------------------------------- the detector the pipeline uses


def missing_files(models_dir: Path) -> list[str]:
    return [rel for rel in (SCRFD, LANDMARK_106, LANDMARK_203) if not (models_dir / rel).is_file()]


class OnnxDetector:
    """SCRFD boxes + 5 points, 106 points per face (the crop's landmarks), 203 points on request (the ratios)."""

    name = "onnx"

    def __init__(self, det, lmk106, lmk203) -> None:
        self.scrfd = Scrfd(det)
        self.lmk106 = Landmark106(lmk106)
        self.lmk203 = Landmark203(lmk203)

    @classmethod
    def from_dir(cls, models_dir: str | Path, threads: int = 0) -> OnnxDetector:
        """Load the three files from the HF layout; ModelsMissing names every absent file and where it goes."""
        root = Path(models_dir)
        missing = missing_files(root)
        if missing:
            where = ", ".join(str(root / rel) for rel in missing)
            raise ModelsMissing(f"face models missing: {where} (the {HF_REPO} layout under {root}; "
                                f"run the model download or copy the files there)")
        return cls(*(_session(root / rel, threads) for rel in (SCRFD, LANDMARK_106, LANDMARK_203)))

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face SCRFD finds (score >= 0.15, NMS 0.4), each with its 106 points; highest score first."""
        dets = self.scrfd(image)
        return [
            Face(box=box, score=float(score), landmarks=self.lmk106(image, box), layout="insightface106", kps5=kps)
            for box, score, kps in zip(dets.boxes, dets.scores, dets.kps, strict=True)
        ]

    def landmarks203(self, image: np.ndarray, face: Face) -> np.ndarray:
        """LivePortrait's 203 points for one face, guided by its 106 points; image pixels."""
        return self.lmk203(image, face.landmarks)
