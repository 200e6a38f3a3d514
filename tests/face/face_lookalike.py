"""Small ONNX graphs shaped like the production face models, with planted outputs whose decoding is known.

Names and shapes follow the official files (shared/reference/face_pipeline.md): det_10g.onnx takes ``input.1``
[1, 3, ?, ?] and returns 9 tensors (scores, boxes, keypoints for strides 8, 16, 32; (N, 1), (N, 4), (N, 10) with
N = (512 / s)^2 x 2 at a 512 input); 2d106det.onnx takes ``data`` [N, 3, 192, 192] and returns ``fc1`` (1, 212);
LivePortrait's landmark.onnx takes ``input`` [1, 3, 224, 224] and returns 3 tensors, the third (1, 406).
Two kinds: "planted" graphs return constants; "dot" graphs return the centroid of the red channel of their input
crop, so that a red dot placed in the photo checks the crop warp, channel order and the mapping back.
Also used by bench/bench_face.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# det_10g.onnx's output names, in the order the runner reads them.
SCRFD_OUTPUTS = ("448", "471", "494", "451", "474", "497", "454", "477", "500")
STRIDES = (8, 16, 32)


def rows(stride: int, size: int = 512) -> int:
    return (size // stride) ** 2 * 2


def row_index(stride: int, i: int, j: int, anchor: int, size: int = 512) -> int:
    """Row of cell (i, j), anchor ``anchor`` in a stride's outputs: cell-major, anchor-minor."""
    return (i * (size // stride) + j) * 2 + anchor


@dataclass
class Plant:
    """One planted SCRFD row: where it is and what it says (distances in units of the stride)."""

    stride: int
    i: int
    j: int
    anchor: int
    score: float
    dist: tuple[float, float, float, float]
    kps: tuple[float, ...] = field(default=(0.0,) * 10)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lookalike")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value.astype(np.float32), name))


def scrfd_planted(path: Path, plants: list[Plant]) -> Path:
    """det_10g look-alike whose 9 outputs are constants with the planted rows (every other score 0)."""
    scores = {s: np.zeros((rows(s), 1), np.float32) for s in STRIDES}
    boxes = {s: np.zeros((rows(s), 4), np.float32) for s in STRIDES}
    kps = {s: np.zeros((rows(s), 10), np.float32) for s in STRIDES}
    for p in plants:
        r = row_index(p.stride, p.i, p.j, p.anchor)
        scores[p.stride][r, 0] = p.score
        boxes[p.stride][r] = p.dist
        kps[p.stride][r] = p.kps
    arrays = [scores[s] for s in STRIDES] + [boxes[s] for s in STRIDES] + [kps[s] for s in STRIDES]
    nodes = [_const(name, arr) for name, arr in zip(SCRFD_OUTPUTS, arrays, strict=True)]
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "?", "?"])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape)) for n, a in zip(SCRFD_OUTPUTS, arrays,
                                                                                             strict=True)]
    return _save(helper.make_graph(nodes, "scrfd_lookalike", [inp], outs), path)


def lmk106_planted(path: Path, values: np.ndarray) -> Path:
    """2d106det look-alike returning ``values`` (212 numbers in about [-1, 1]) as ``fc1``."""
    inp = helper.make_tensor_value_info("data", TensorProto.FLOAT, [None, 3, 192, 192])
    out = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 212])
    node = _const("fc1", np.asarray(values, np.float32).reshape(1, 212))
    return _save(helper.make_graph([node], "lmk106_lookalike", [inp], [out]), path)


LMK203_OUTPUTS = (("output_0", 214), ("output_1", 262), ("output_2", 406))  # only the third is documented


def lmk203_planted(path: Path, values: np.ndarray) -> Path:
    """landmark.onnx look-alike: 3 outputs, the third ``values`` (406 numbers in [0, 1] crop units)."""
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])
    nodes, outs = [], []
    for k, (name, n) in enumerate(LMK203_OUTPUTS):
        arr = np.asarray(values, np.float32).reshape(1, n) if k == 2 else np.full((1, n), 0.5, np.float32)
        nodes.append(_const(name, arr))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, n]))
    return _save(helper.make_graph(nodes, "lmk203_lookalike", [inp], outs), path)


def _centroid_nodes(input_name: str, size: int, scale: float, offset: float, copies: int, out: str) -> list:
    """Nodes computing (1, 2 * copies): (centroid of channel 0 in pixels) * scale + offset, tiled."""
    ys, xs = np.mgrid[:size, :size].astype(np.float32)
    return [
        helper.make_node("Constant", [], ["starts"], value=numpy_helper.from_array(np.array([0], np.int64))),
        helper.make_node("Constant", [], ["ends"], value=numpy_helper.from_array(np.array([1], np.int64))),
        helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([1], np.int64))),
        helper.make_node("Slice", [input_name, "starts", "ends", "axes"], ["red"]),
        _const("gx", xs[None, None]),
        _const("gy", ys[None, None]),
        helper.make_node("Mul", ["red", "gx"], ["wx"]),
        helper.make_node("Mul", ["red", "gy"], ["wy"]),
        helper.make_node("ReduceSum", ["red"], ["total"], keepdims=1),
        helper.make_node("ReduceSum", ["wx"], ["sx"], keepdims=1),
        helper.make_node("ReduceSum", ["wy"], ["sy"], keepdims=1),
        helper.make_node("Div", ["sx", "total"], ["cx4"]),
        helper.make_node("Div", ["sy", "total"], ["cy4"]),
        helper.make_node("Constant", [], ["shape11"], value=numpy_helper.from_array(np.array([1, 1], np.int64))),
        helper.make_node("Reshape", ["cx4", "shape11"], ["cx"]),
        helper.make_node("Reshape", ["cy4", "shape11"], ["cy"]),
        helper.make_node("Concat", ["cx", "cy"], ["cxy"], axis=1),
        _const("scale", np.array([scale])),
        _const("offset", np.array([offset])),
        helper.make_node("Mul", ["cxy", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["norm"]),
        helper.make_node("Constant", [], ["reps"], value=numpy_helper.from_array(np.array([1, copies], np.int64))),
        helper.make_node("Tile", ["norm", "reps"], [out]),
    ]


def lmk106_dot(path: Path) -> Path:
    """2d106det look-alike: all 106 points at the red centroid of its 192 crop, as (v + 1) * 96 expects."""
    nodes = _centroid_nodes("data", 192, 1 / 96, -1.0, 106, "fc1")
    inp = helper.make_tensor_value_info("data", TensorProto.FLOAT, [None, 3, 192, 192])
    out = helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 212])
    return _save(helper.make_graph(nodes, "lmk106_dot", [inp], [out]), path)


def lmk203_dot(path: Path) -> Path:
    """landmark.onnx look-alike: the third output holds 203 copies of the red centroid in [0, 1] crop units."""
    nodes = _centroid_nodes("input", 224, 1 / 224, 0.0, 203, "output_2")
    nodes += [
        helper.make_node("Constant", [], ["output_0"], value=numpy_helper.from_array(np.zeros((1, 214), np.float32))),
        helper.make_node("Constant", [], ["output_1"], value=numpy_helper.from_array(np.zeros((1, 262), np.float32))),
    ]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])
    outs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, n]) for name, n in LMK203_OUTPUTS]
    return _save(helper.make_graph(nodes, "lmk203_dot", [inp], outs), path)


# ---------------------------------------------------------------- a consistent planted face


def template106(seed: int = 0) -> np.ndarray:
    """(106, 2) values in [-0.6, 0.6]: scattered points with upright eyes and mouth at the crop code's indices."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-0.6, 0.6, (106, 2))
    pts[[33, 35, 40, 39]] = [-0.3, -0.2] + rng.uniform(-0.05, 0.05, (4, 2))
    pts[[87, 89, 94, 93]] = [0.3, -0.2] + rng.uniform(-0.05, 0.05, (4, 2))
    pts[[52, 61]] = [[-0.02, 0.35], [0.02, 0.35]]
    return pts.astype(np.float32)


def template203(seed: int = 1, eye: tuple[float, float] = (0.3, 0.25), lip: float = 0.1) -> np.ndarray:
    """(203, 2) values in [0, 1] with the given eye A, eye B and lip openness at the reference's indices."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.2, 0.8, (203, 2))

    def place(corner_a: int, corner_b: int, lid_a: int, lid_b: int, cx: float, cy: float, width: float,
              ratio: float) -> None:
        pts[corner_a], pts[corner_b] = (cx - width / 2, cy), (cx + width / 2, cy)
        pts[lid_a], pts[lid_b] = (cx, cy - ratio * width / 2), (cx, cy + ratio * width / 2)

    place(0, 12, 6, 18, 0.35, 0.4, 0.12, eye[0])
    place(24, 36, 30, 42, 0.65, 0.4, 0.12, eye[1])
    place(48, 66, 90, 102, 0.5, 0.7, 0.2, lip)
    return pts.astype(np.float32)


def write_models(root: Path, plants: list[Plant], values106: np.ndarray | None = None,
                 values203: np.ndarray | None = None) -> Path:
    """A models folder in the HF layout holding the three planted look-alikes."""
    scrfd_planted(root / "insightface/models/buffalo_l/det_10g.onnx", plants)
    lmk106_planted(root / "insightface/models/buffalo_l/2d106det.onnx",
                   template106() if values106 is None else values106)
    lmk203_planted(root / "liveportrait/landmark.onnx", template203() if values203 is None else values203)
    return root
