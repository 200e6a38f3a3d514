"""The offline path (dlib HOG + 68 points) on real photos: counts, negatives, crop stability, the no-face error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.errors import ModelsMissing, NoFaceDetected
from engine.face.crop import SOURCE_CROP
from engine.face.intake import decode_image
from engine.face.pipeline import NO_FACE_MESSAGE, FacePipeline
from tests.face.conftest import DATA, generated_negatives, load

SINGLE = ["s1.jpg", "s3.jpg", "s5.jpg", "s6.jpg", "s7.jpg", "s11.jpg", "s12.jpg", "s42.jpg",
          "Tom_Hanks_54745.png", "astronaut.jpg"]
NEGATIVE_PHOTOS = ["chelsea.jpg", "coffee.jpg", "skimage_rocket.jpg"]


@pytest.mark.parametrize("name", SINGLE)
def test_one_face_in_each_single_portrait(dlib_pipeline: FacePipeline, name: str) -> None:
    face = dlib_pipeline.crop(load(name))
    assert face.n_faces == 1
    assert face.detector == "dlib" and face.face.layout == "ibug68"
    assert face.crop.shape == (512, 512, 3) and face.input_256.shape == (256, 256, 3)
    # the face's own landmarks land inside the crop, around its centre
    centre = face.crop_landmarks.mean(axis=0)
    assert np.all(np.abs(centre - 256) < 100), centre
    assert face.eye_ratio.min() > 0.0 and face.eye_ratio.max() < 1.0


def test_six_faces_in_the_group_photo(dlib_pipeline: FacePipeline) -> None:
    image = load("t1.jpg")
    faces = dlib_pipeline.detect(image)
    assert len(faces) == 6
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces]
    assert areas == sorted(areas, reverse=True)
    assert dlib_pipeline.crop(image).n_faces == 6


@pytest.mark.parametrize("name", NEGATIVE_PHOTOS)
def test_no_face_in_negative_photos(dlib_pipeline: FacePipeline, name: str) -> None:
    assert dlib_pipeline.detect(load(name)) == []


@pytest.mark.parametrize("name", ["gradient", "gray", "noise"])
def test_no_face_in_generated_negatives(dlib_pipeline: FacePipeline, name: str) -> None:
    assert dlib_pipeline.detect(generated_negatives()[name]) == []


def test_no_face_is_a_typed_error_a_person_can_act_on(dlib_pipeline: FacePipeline) -> None:
    with pytest.raises(NoFaceDetected) as info:
        dlib_pipeline.crop(load("coffee.jpg"))
    assert info.value.code == "no_face"
    assert str(info.value) == NO_FACE_MESSAGE
    assert "frontal portrait" in info.value.message


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = np.maximum(a[:2], b[:2])
    x2, y2 = np.minimum(a[2:], b[2:])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return float(inter / (area - inter))


def _crop_box(m_c2o: np.ndarray) -> np.ndarray:
    """The axis-aligned box, in the photo, of the 512 crop's square."""
    corners = np.array([[0, 0, 1], [512, 0, 1], [0, 512, 1], [512, 512, 1]], dtype=np.float64) @ m_c2o[:2].T
    return np.concatenate([corners.min(axis=0), corners.max(axis=0)])


@pytest.mark.parametrize("name", ["s1.jpg", "s6.jpg", "s12.jpg", "astronaut.jpg", "Tom_Hanks_54745.png"])
def test_crop_survives_a_jpeg_reencode(dlib_pipeline: FacePipeline, name: str) -> None:
    image = load(name)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=85)
    a = dlib_pipeline.crop(image)
    b = dlib_pipeline.crop(decode_image(buf.getvalue()))
    assert _box_iou(_crop_box(a.M_c2o), _crop_box(b.M_c2o)) >= 0.95
    assert _box_iou(a.face.box, b.face.box) >= 0.95


def test_large_photo_is_brought_to_the_source_size(dlib_pipeline: FacePipeline) -> None:
    """s1 is 1145 px: upscaled to 2291 x 2290 it comes back at most 1280, even-sided, and the face is still found."""
    import cv2

    big = cv2.resize(load("s1.jpg"), (2291, 2290))
    face = dlib_pipeline.crop(big)
    h, w = face.image.shape[:2]
    assert max(h, w) == 1280 and h % 2 == 0 and w % 2 == 0
    assert face.n_faces == 1


def test_crop_bytes_goes_through_intake(dlib_pipeline: FacePipeline) -> None:
    face = dlib_pipeline.crop_bytes((DATA / "s42.jpg").read_bytes())
    assert face.image.shape == (512, 512, 3) and face.n_faces == 1


def test_crop_transform_is_the_reference_scale(dlib_pipeline: FacePipeline) -> None:
    """The crop side in the photo is 2.3 x the landmarks' extent in the face frame."""
    face = dlib_pipeline.crop(load("s42.jpg"))
    side = float(np.linalg.norm(face.M_c2o[:2, 0])) * 512
    local = face.crop_landmarks / 512 * side
    extent = float((local.max(axis=0) - local.min(axis=0)).max())
    assert side == pytest.approx(extent * SOURCE_CROP.scale, rel=1e-4)


def test_auto_falls_back_to_dlib_and_says_why(tmp_path) -> None:
    pipeline = FacePipeline.create(tmp_path, mode="auto")
    assert pipeline.name == "dlib"
    assert "det_10g.onnx" in pipeline.reason and "dlib" in pipeline.reason
    with pytest.raises(ModelsMissing):
        FacePipeline.create(tmp_path, mode="onnx")


# A three-quarter view: Vermeer's "Girl with a Pearl Earring" (LivePortrait's example s10.jpg), turned about 40
# degrees; HOG alone finds nothing in it at its intake size, the CNN fallback does. Its mirror image is the same
# real face turned the other way.
@pytest.fixture(scope="module")
def three_quarter() -> np.ndarray:
    return load("s10.jpg")


def test_hog_alone_misses_the_three_quarter_view(three_quarter: np.ndarray) -> None:
    from engine.face.detect_dlib import DlibDetector
    from engine.face.intake import limit_size

    assert DlibDetector(turned=False).detect(limit_size(three_quarter)) == []


@pytest.mark.parametrize("mirrored", [False, True])
def test_three_quarter_views_are_found(dlib_pipeline: FacePipeline, three_quarter: np.ndarray, mirrored: bool) -> None:
    image = np.ascontiguousarray(three_quarter[:, ::-1]) if mirrored else three_quarter
    face = dlib_pipeline.crop(image)
    assert face.n_faces == 1 and face.face.layout == "ibug68"
    # The face is where the painting has it: its eyes in the upper half of the crop, its mouth below them.
    lm = face.crop_landmarks
    assert lm[36:48, 1].mean() < lm[48:68, 1].mean()
    assert np.all(np.abs(lm.mean(axis=0) - 256) < 110)
    # The mirrored painting's face is found at the mirrored place.
    centre_x = float(face.face.box[0] + face.face.box[2]) / 2 / image.shape[1]
    assert (centre_x > 0.5) == mirrored


def test_the_detectors_are_announced_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="engine.face.pipeline"):
        FacePipeline.create(mode="dlib")
    text = caplog.text
    assert "dlib HOG" in text and "CNN" in text and "turned faces" in text
