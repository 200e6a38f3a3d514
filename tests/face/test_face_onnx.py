"""The production decoding (SCRFD, 106 and 203 points) against look-alike graphs with known answers.

The official files never reach CI; these graphs carry their input/output names and shapes, and either return
planted constants (the decoding maths) or locate a red dot in their input crop (the crop warps, channel order and
the mapping back to the photo).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from face_lookalike import (
    Plant,
    lmk106_dot,
    lmk203_dot,
    scrfd_planted,
    template106,
    template203,
    write_models,
)

from engine.errors import ModelsMissing, WeightsInvalid
from engine.face.crop import LANDMARK_CROP, apply, crop_transform
from engine.face.detect_onnx import (
    Landmark106,
    Landmark203,
    OnnxDetector,
    Scrfd,
    _session,
    anchor_centres,
    letterbox,
    lmk106_blob,
    lmk106_transform,
    nms,
    scrfd_blob,
)
from engine.face.pipeline import FacePipeline

# A 1024 x 768 photo letterboxes to 512 x 384: det_scale = 0.5, so image pixels are twice the detector's.
W, H, SCALE = 1024, 768, 0.5
BIG = Plant(16, 10, 12, 1, 0.9, (3, 4, 5, 6), (-1.0, -1.0, 1.0, -1.0, 0.0, 0.5, -1.0, 2.0, 1.0, 2.0))
# the same face seen by stride 8, a little shifted: IoU with BIG > 0.4, lower score -> suppressed
DUPLICATE = Plant(8, 20, 24, 0, 0.8, (6, 8, 10, 12))
SMALL = Plant(32, 2, 13, 0, 0.15, (1, 1, 1, 1))  # exactly the threshold: kept
FAINT = Plant(8, 50, 5, 1, 0.1499, (2, 2, 2, 2))  # just under the threshold: dropped


def expected_box(p: Plant) -> np.ndarray:
    cx, cy = p.j * p.stride, p.i * p.stride
    l, t, r, b = (v * p.stride for v in p.dist)
    return np.array([cx - l, cy - t, cx + r, cy + b]) / SCALE


def expected_kps(p: Plant) -> np.ndarray:
    cx, cy = p.j * p.stride, p.i * p.stride
    return (np.array([cx, cy]) + np.array(p.kps).reshape(5, 2) * p.stride) / SCALE


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return write_models(tmp_path_factory.mktemp("models"), [BIG, DUPLICATE, SMALL, FAINT])


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)


# ------------------------------------------------------------------ pure pieces


def test_letterbox_pads_right_or_bottom() -> None:
    canvas, scale = letterbox(np.full((768, 1024, 3), 200, np.uint8))
    assert scale == 0.5 and canvas.shape == (512, 512, 3)
    assert canvas[383, 511, 0] == 200 and canvas[384:].max() == 0
    canvas, scale = letterbox(np.full((1000, 300, 3), 200, np.uint8))  # tall: height 512, width int(512 * 0.3)
    assert scale == pytest.approx(0.512) and canvas[:, :153].min() == 200 and canvas[:, 153:].max() == 0


def test_scrfd_blob_is_rgb_centred_on_127_5_over_128() -> None:
    canvas = np.zeros((512, 512, 3), np.uint8)
    canvas[..., 0] = 255
    blob = scrfd_blob(canvas)
    assert blob.shape == (1, 3, 512, 512) and blob.dtype == np.float32
    assert blob[0, 0, 0, 0] == pytest.approx((255 - 127.5) / 128)
    assert blob[0, 2, 0, 0] == pytest.approx(-127.5 / 128)


def test_anchor_centres_are_cell_corners_anchor_minor() -> None:
    c = anchor_centres(64, 64, 8)
    assert c.shape == (8192, 2)
    assert c[:4].tolist() == [[0, 0], [0, 0], [8, 0], [8, 0]]
    assert c[128].tolist() == [0, 8]  # second row of cells starts after 64 cells x 2 anchors
    assert len(anchor_centres(16, 16, 32)) == 512


def test_nms_uses_the_plus_one_area_and_keeps_iou_at_threshold() -> None:
    boxes = np.array([[0, 0, 9, 9], [0, 0, 9, 9], [20, 20, 29, 29]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.7], np.float32)) == [1, 2]
    # 10x10 boxes (+1 convention) sharing 4x10 pixels: IoU = 40 / 160 = 0.25 -> both kept
    pair = np.array([[0, 0, 9, 9], [6, 0, 15, 9]], np.float32)
    assert nms(pair, np.array([0.9, 0.8], np.float32)) == [0, 1]
    assert nms(pair, np.array([0.9, 0.8], np.float32), thresh=0.2) == [0]


def test_106_crop_is_centred_on_the_box_at_1_5_times_its_side() -> None:
    m = lmk106_transform(np.array([100, 200, 300, 350]))
    assert apply(np.vstack([m, [0, 0, 1]]), np.array([[200, 275]]))[0].tolist() == [96, 96]
    assert m[0, 0] == pytest.approx(192 / 300)
    image = np.zeros((400, 400, 3), np.uint8)
    image[..., 0] = 7
    blob = lmk106_blob(image, m)
    assert blob.shape == (1, 3, 192, 192) and blob[0, 0, 96, 96] == 7.0 and blob[0, 1, 96, 96] == 0.0


# ------------------------------------------------------------------ planted SCRFD


def test_scrfd_decoding_of_planted_rows(models: Path, photo: np.ndarray) -> None:
    det = Scrfd(_session(models / "insightface/models/buffalo_l/det_10g.onnx", 1))
    out = det(photo)
    assert len(out.scores) == 2  # BIG and SMALL: DUPLICATE suppressed by NMS, FAINT under 0.15
    np.testing.assert_allclose(out.scores, [0.9, 0.15], rtol=1e-6)
    np.testing.assert_allclose(out.boxes[0], expected_box(BIG), atol=1e-3)
    np.testing.assert_allclose(out.boxes[1], expected_box(SMALL), atol=1e-3)
    np.testing.assert_allclose(out.kps[0], expected_kps(BIG), atol=1e-3)
    assert out.kps.shape == (2, 5, 2)


def test_scrfd_without_the_duplicate_sees_it(tmp_path: Path, photo: np.ndarray) -> None:
    """The duplicate is a real detection on its own: NMS, not decoding, removed it above."""
    det = Scrfd(_session(scrfd_planted(tmp_path / "d.onnx", [DUPLICATE]), 1))
    out = det(photo)
    np.testing.assert_allclose(out.boxes, [expected_box(DUPLICATE)], atol=1e-3)


def test_scrfd_on_a_tall_photo_scales_by_the_height(tmp_path: Path) -> None:
    det = Scrfd(_session(scrfd_planted(tmp_path / "d.onnx", [BIG]), 1))
    out = det(np.zeros((1024, 600, 3), np.uint8))  # det_scale = 512 / 1024 as well
    np.testing.assert_allclose(out.boxes[0], expected_box(BIG), atol=1e-3)


# ------------------------------------------------------------------ planted pipeline


def test_onnx_pipeline_end_to_end_with_planted_models(models: Path, photo: np.ndarray) -> None:
    pipeline = FacePipeline.create(models, mode="onnx")
    assert pipeline.name == "onnx"
    face = pipeline.crop(photo)
    assert face.detector == "onnx" and face.n_faces == 2
    assert face.face.layout == "insightface106"
    np.testing.assert_allclose(face.face.box, expected_box(BIG), atol=1e-3)
    np.testing.assert_allclose(face.face.kps5, expected_kps(BIG), atol=1e-3)
    # 106: (v + 1) * 96 in the 192 crop, which spans 1.5 x the box's longer side around its centre
    box = expected_box(BIG)
    centre, half = (box[:2] + box[2:]) / 2, 0.75 * (box[2:] - box[:2]).max()
    np.testing.assert_allclose(face.face.landmarks, centre + template106() * half, atol=1e-3)
    # the source crop comes from the 106 points
    np.testing.assert_allclose(face.M_o2c, crop_transform(face.face.landmarks), atol=1e-9)
    # 203: x 224 in the 224 crop guided by the 106 points, mapped back to the photo
    m224 = crop_transform(face.face.landmarks, LANDMARK_CROP)
    np.testing.assert_allclose(apply(m224, face.landmarks203), template203() * 224, atol=1e-3)
    # ratios from the 203 points with the reference's formula (similarity-invariant: the planted values)
    np.testing.assert_allclose(face.eye_ratio, [[0.3, 0.25]], atol=1e-5)
    np.testing.assert_allclose(face.lip_ratio, [[0.1]], atol=1e-5)


def test_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "insightface/models/buffalo_l").mkdir(parents=True)
    (tmp_path / "insightface/models/buffalo_l/det_10g.onnx").write_bytes(b"")
    with pytest.raises(ModelsMissing) as info:
        OnnxDetector.from_dir(tmp_path)
    msg = str(info.value)
    assert "2d106det.onnx" in msg and "liveportrait/landmark.onnx" in msg and "det_10g" not in msg


def test_corrupt_file_is_weights_invalid(models: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(models, tmp_path / "m")
    (tmp_path / "m/liveportrait/landmark.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(WeightsInvalid):
        OnnxDetector.from_dir(tmp_path / "m")


def test_swapped_files_are_refused(models: Path, tmp_path: Path) -> None:
    """A 106 model where the detector should be: 1 output, not 9."""
    with pytest.raises(WeightsInvalid):
        Scrfd(_session(models / "insightface/models/buffalo_l/2d106det.onnx", 1))


# ------------------------------------------------------------------ dot locators: warps and mapping back


def _dot_photo(x: float, y: float, shape: tuple[int, int] = (600, 800)) -> np.ndarray:
    """Cyan background (red 0) with a Gaussian red dot at (x, y): only the red channel marks the dot."""
    h, w = shape
    ys, xs = np.mgrid[:h, :w]
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 1:] = 180
    image[..., 0] = np.round(255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 4.0**2))).astype(np.uint8)
    return image


def test_106_points_map_back_to_the_photo(tmp_path: Path) -> None:
    lmk = Landmark106(_session(lmk106_dot(tmp_path / "d106.onnx"), 1))
    dot = (431.3, 287.6)
    pts = lmk(_dot_photo(*dot), np.array([350, 200, 520, 380], np.float32))
    assert pts.shape == (106, 2)
    np.testing.assert_allclose(pts, np.tile(dot, (106, 1)), atol=0.3)


def test_203_points_map_back_through_the_rotated_crop(tmp_path: Path) -> None:
    lmk = Landmark203(_session(lmk203_dot(tmp_path / "d203.onnx"), 1))
    # a face rolled by about 20 degrees: the 224 crop rotates, the answer must still land on the dot
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts106 = template106() * 120 @ rot.T + [400, 300]
    dot = (412.7, 322.4)
    pts = lmk(_dot_photo(*dot), pts106)
    assert pts.shape == (203, 2)
    np.testing.assert_allclose(pts, np.tile(dot, (203, 1)), atol=0.3)


def test_no_detection_is_no_face(tmp_path: Path, photo: np.ndarray) -> None:
    from engine.errors import NoFaceDetected

    pipeline = FacePipeline.create(write_models(tmp_path, [FAINT]), mode="onnx")
    assert pipeline.detect(photo) == []
    with pytest.raises(NoFaceDetected):
        pipeline.crop(photo)
