"""The LivePortrait renderer on synthetic weights and a real face crop (dlib path): it loads, prepares once, and
renders (512, 512, 3) uint8 frames that follow the controls. The weights are synthetic, so the pictures are not a
face; equality to the reference is proven in test_lp_equivalence.py."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.animation.controls import NEUTRAL
from engine.animation.state import AnimationState
from engine.errors import ModelsMissing
from engine.face.pipeline import FacePipeline
from engine.render.base import SourceState
from engine.render.liveportrait import LivePortraitRenderer, LivePortraitSource, resolve_precision

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def face():
    image = cv2.cvtColor(cv2.imread(str(DATA / "s6.jpg")), cv2.COLOR_BGR2RGB)
    return FacePipeline.create(mode="dlib").crop(image)


@pytest.fixture(scope="module")
def renderer(golden_renderer: LivePortraitRenderer) -> LivePortraitRenderer:
    return golden_renderer  # LivePortraitRenderer.load on the CPU (tests/liveportrait/conftest.py)


@pytest.fixture(scope="module")
def source(renderer, face) -> LivePortraitSource:
    return renderer.prepare(face)


def state(**controls: float) -> AnimationState:
    return AnimationState(expression="test", intensity=1.0, controls={**NEUTRAL, **controls})


def test_info_on_cpu(renderer):
    info = renderer.info()
    assert info["renderer"] == "liveportrait" and info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["cuda_graphs"] is False and info["channels_last"] is False


def test_precision_resolution():
    assert resolve_precision("auto", torch.device("cpu"))[0] == torch.float32
    assert resolve_precision("fp16", torch.device("cpu"))[0] == torch.float32  # half needs CUDA
    assert resolve_precision("auto", torch.device("cuda"))[0] == torch.float16
    assert resolve_precision("bf16", torch.device("cuda"))[0] == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int8", torch.device("cpu"))


def test_missing_models_raise_models_missing(tmp_path):
    with pytest.raises(ModelsMissing):
        LivePortraitRenderer.load(tmp_path, device="cpu")


def test_prepare_keeps_the_source_resident(source, face):
    assert tuple(source.feature.shape) == (1, 32, 16, 64, 64)
    assert tuple(source.x_s.shape) == (1, 21, 3) and source.x_s.dtype == torch.float32
    assert source.eye_ratio.shape == (1, 2) and source.lip_ratio.shape == (1, 1)
    assert source.face is face


def test_driving_keypoints_follow_controls_deterministically(renderer, source):
    neutral = renderer.driving_keypoints(source, AnimationState())
    assert torch.equal(neutral, renderer.driving_keypoints(source, AnimationState()))
    smile = renderer.driving_keypoints(source, state(mouthSmile=1.0, jawOpen=0.5))
    turned = renderer.driving_keypoints(source, state(headYaw=15.0))
    assert (smile - neutral).abs().max() > 1e-4
    assert (turned - neutral).abs().max() > 1e-3


def test_eye_retargeting_closes_by_network(golden_models, renderer, source):
    retarget = LivePortraitRenderer(renderer.core, eye_retargeting=True)
    open_ = retarget.driving_keypoints(source, AnimationState())
    closed = retarget.driving_keypoints(source, state(eyeBlink=1.0))
    assert (closed - open_).abs().max() > 1e-5
    target = retarget.eye_target(source, 1.0)
    assert target.shape == (1, 3) and float(target[0, 2]) == 0.0


def test_render_neutral_and_animated_frames(renderer, source):
    neutral = renderer.render(source, AnimationState())
    assert neutral.shape == (512, 512, 3) and neutral.dtype == np.uint8
    assert neutral.std() > 5  # a picture, not a constant
    assert np.array_equal(renderer.render(source, AnimationState()), neutral)  # so any change below is the controls'
    animated = renderer.render(source, state(mouthSmile=1.0, headYaw=10.0, eyeBlink=1.0))
    assert animated.shape == (512, 512, 3) and animated.dtype == np.uint8
    # 10 degrees of yaw moves most of the face: measured on these weights, the mean change is ~11 levels and ~80% of
    # pixels move by more than 8; a renderer that barely applied the controls (a few pixels) fails here.
    diff = np.abs(animated.astype(int) - neutral.astype(int)).max(axis=-1)
    assert diff.mean() > 2.0 and (diff > 8).mean() > 0.1, (diff.mean(), (diff > 8).mean())


def test_render_refuses_a_foreign_source(renderer, face):
    with pytest.raises(TypeError, match="LivePortraitSource"):
        renderer.render(SourceState(face=face), AnimationState())
