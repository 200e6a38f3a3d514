"""Paste-back: the mask matches the reference template's ramp, the identity round trip holds, no visible seam."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.face.pasteback import PasteBack, feather_mask
from engine.face.pipeline import FacePipeline
from engine.face.types import FaceCrop
from tests.face.conftest import load


@pytest.fixture(scope="module")
def s1(dlib_pipeline: FacePipeline) -> FaceCrop:
    return dlib_pipeline.crop(load("s1.jpg"))


def test_mask_is_the_reference_ramp() -> None:
    m = feather_mask()
    assert m.shape == (512, 512) and m.dtype == np.uint8
    assert m[256, :3].tolist() == [0, 15, 31] and m[256, 16] == 255 and m[256, 511] == 15
    assert m[256, 256] == 255 and m[0, 0] == 0
    assert abs(m.mean() / 255 - 0.938) < 0.002  # the template's mean


def test_pasting_the_source_crop_back_returns_the_photo(s1: FaceCrop) -> None:
    out = PasteBack(s1).apply(s1.crop)
    assert out.shape == s1.image.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - s1.image.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 12  # only resampling blur, twice


def test_outside_the_box_the_photo_is_untouched(s1: FaceCrop) -> None:
    paste = PasteBack(s1)
    out = paste.apply(np.full((512, 512, 3), 255, np.uint8))
    x0, y0, x1, y1 = paste.bbox
    outside = np.ones(out.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], s1.image[outside])
    assert (out[y0:y1, x0:x1] != s1.image[y0:y1, x0:x1]).any()


def test_matches_the_reference_full_frame_blend(s1: FaceCrop) -> None:
    """The bbox shortcut equals warping and blending the whole frame, as the reference does."""
    rng = np.random.default_rng(0)
    crop = cv2.GaussianBlur(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), (0, 0), 3)
    h, w = s1.image.shape[:2]
    mask = cv2.warpAffine(feather_mask(), s1.M_c2o[:2], (w, h)).astype(np.float32)[..., None] / 255
    warped = cv2.warpAffine(crop, s1.M_c2o[:2], (w, h)).astype(np.float32)
    ref = np.clip(mask * warped + (1 - mask) * s1.image + 0.5, 0, 255).astype(np.uint8)
    out = PasteBack(s1).apply(crop)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_a_256_crop_lands_where_the_512_does(s1: FaceCrop) -> None:
    paste = PasteBack(s1)
    a = paste.apply(s1.crop)
    b = paste.apply(s1.input_256)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0


def test_out_buffer_is_reused(s1: FaceCrop) -> None:
    paste = PasteBack(s1)
    buf = np.zeros_like(s1.image)
    assert paste.apply(s1.crop, out=buf) is buf
    assert np.array_equal(buf, paste.apply(s1.crop))


def test_crop_partly_outside_a_small_photo(dlib_pipeline: FacePipeline) -> None:
    """Tom Hanks fills his 112 px frame: the 2.3x crop overhangs it; paste-back still covers only the photo."""
    face = dlib_pipeline.crop(load("Tom_Hanks_54745.png"))
    paste = PasteBack(face)
    assert paste.bbox[0] >= 0 and paste.bbox[2] <= 112
    assert paste.apply(face.crop).shape == (112, 112, 3)


def _step(image: np.ndarray) -> np.ndarray:
    """Per-pixel intensity step: the larger of the horizontal and vertical neighbour differences (gray levels)."""
    gray = image.astype(np.float32).mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
    gx = np.abs(np.diff(gray, axis=1))[:-1, :]
    gy = np.abs(np.diff(gray, axis=0))[:, :-1]
    return np.maximum(gx, gy)


@pytest.mark.parametrize("name", ["s1.jpg", "s5.jpg", "s6.jpg"])
def test_no_visible_seam(dlib_pipeline: FacePipeline, name: str) -> None:
    """A render whose brightness drifted by 30 levels (what a generator does) blends in: along the crop border
    the step the paste-back adds to the photo is no larger than the photo's own steps inside the face.
    A hard paste of the same render fails the same check, so the check can see a seam."""
    face = dlib_pipeline.crop(load(name))
    image = face.image.astype(np.float32)
    drifted = np.clip(face.crop.astype(np.int16) + 30, 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    # the crop border in the photo: a band 16 crop pixels wide along the inside of the 512 square's edge
    outline = np.zeros((512, 512), np.uint8)
    cv2.rectangle(outline, (8, 8), (503, 503), 255, 16)
    border = cv2.warpAffine(outline, face.M_c2o[:2], (w, h), flags=cv2.INTER_NEAREST)[:-1, :-1] > 0
    assert border.sum() > 5000
    x1, y1, x2, y2 = face.face.box.astype(int)

    pasted = PasteBack(face).apply(drifted)
    inside = float(np.percentile(_step(pasted)[y1:y2, x1:x2], 95))
    seam = float(np.percentile(_step(pasted - image)[border], 99))
    assert seam <= inside, (seam, inside)

    covered = cv2.warpAffine(np.ones((512, 512), np.uint8), face.M_c2o[:2], (w, h))[..., None] > 0
    hard = np.where(covered, cv2.warpAffine(drifted, face.M_c2o[:2], (w, h)), face.image)
    hard_seam = float(np.percentile(_step(hard - image)[border], 99))
    assert hard_seam > inside, (hard_seam, inside)


def test_crop_wholly_outside_the_photo_leaves_it_alone(s1: FaceCrop) -> None:
    import dataclasses

    shifted = s1.M_c2o.copy()
    shifted[0, 2] += 5000
    paste = PasteBack(dataclasses.replace(s1, M_c2o=shifted))
    assert paste.bbox == (0, 0, 0, 0)
    assert np.array_equal(paste.apply(s1.crop), s1.image)


def test_bad_crop_shape_is_refused(s1: FaceCrop) -> None:
    with pytest.raises(ValueError):
        PasteBack(s1).apply(np.zeros((512, 300, 3), np.uint8))


def test_nbytes_counts_the_per_avatar_arrays(s1: FaceCrop) -> None:
    paste = PasteBack(s1)
    x0, y0, x1, y1 = paste.bbox
    assert paste.nbytes == (x1 - x0) * (y1 - y0) * (4 + 4 + 3)


@pytest.mark.parametrize(("kind", "width", "height"), [("head", 512, 512), ("head", 1280, 720), ("full", 640, 480),
                                                      ("head", 1920, 1080)])  # the last grows its region
def test_a_framed_view_is_the_pasted_photo_cut_and_resized(s1: FaceCrop, kind: str, width: int, height: int) -> None:
    """engine/framing.py pastes straight into the framed region (PasteBack.onto with the crop-to-frame map): the
    same picture as pasting into the whole photo, then cutting the region and resizing it, up to resampling."""
    from engine.framing import face_region, resize, view
    from engine.protocol import Framing

    framing = Framing(kind, width, height)
    paste = PasteBack(s1)
    crop = np.full((512, 512, 3), (200, 40, 40), np.uint8)  # unlike the photo
    crop[::16] = crop[:, ::16] = 255  # a grid, soft enough to resample well: one pixel off either way shows
    crop = cv2.GaussianBlur(crop, (0, 0), 2)
    framed_view = view(paste, framing)
    framed = framed_view.apply(crop)
    r = face_region(paste, framing)
    assert framed.shape == (height, width, 3)
    assert 0 <= r.x0 < r.x1 <= s1.image.shape[1] and 0 <= r.y0 < r.y1 <= s1.image.shape[0]
    assert abs((r.x1 - r.x0) / (r.y1 - r.y0) - width / height) < 0.01  # the frame's aspect
    expected = resize(np.ascontiguousarray(paste.apply(crop)[r.y0:r.y1, r.x0:r.x1]), width, height)
    assert (framed_view.size is not None) == (width > r.x1 - r.x0)  # a growing region is pasted, then resized
    kx, ky = width / (r.x1 - r.x0), height / (r.y1 - r.y0)  # where the face is pasted, in frame pixels:
    px0, py0, px1, py1 = paste.bbox
    x0, x1 = max(0, int((px0 - r.x0) * kx)), min(width, int((px1 - r.x0) * kx))
    y0, y1 = max(0, int((py0 - r.y0) * ky)), min(height, int((py1 - r.y0) * ky))
    diff = np.abs(framed.astype(int) - expected.astype(int))[y0:y1, x0:x1]
    assert diff.mean() < 1.0, diff.mean()  # resampling once vs twice: ~0.3; one frame pixel off: 2-4.5
