"""Our core equals the reference on the golden-0 synthetic weights, stage by stage, at check_core's tolerances.

The golden file holds the reference implementation's outputs (CPU float32) on exactly these weights; the real
weights can never reach this machine, so this equality is the proof that they will work.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.liveportrait import LivePortrait

# check_core.py's tolerances (shared/reference/README.md)
KP_ATOL = 1e-4
POSE_ATOL = 2e-3
FEATURE_ATOL = 1e-3
IMAGE_ATOL, IMAGE_MEAN_ATOL = 3e-3, 2e-4


def f32(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return (x.detach().float().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)).astype(np.float32)


def assert_close(name: str, got, want: np.ndarray, atol: float, mean_atol: float | None = None) -> None:
    got = f32(got).reshape(want.shape)
    d = np.abs(got - want.astype(np.float32))
    assert np.all(np.isfinite(got)), f"{name}: not finite"
    assert d.max() <= atol, f"{name}: max|d| {d.max():.2e} > {atol:.0e}"
    if mean_atol is not None:
        assert d.mean() <= mean_atol, f"{name}: mean|d| {d.mean():.2e} > {mean_atol:.0e}"


@pytest.fixture(scope="module")
def core(golden_renderer) -> LivePortrait:
    """The renderer's core: ``LivePortrait.from_dir`` of the golden checkpoints, CPU float32 (loaded once per
    session in tests/liveportrait/conftest.py, shared with test_lp_renderer.py)."""
    core = golden_renderer.core
    assert isinstance(core, LivePortrait) and core.device.type == "cpu" and core.dtype == torch.float32
    return core


def T(golden: dict, key: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(golden[key], np.float32))


def test_source_encoding_matches_reference(core, golden):
    src = core.encode_source(np.asarray(golden["input_256"], np.uint8))
    assert tuple(src.feature.shape) == (1, 32, 16, 64, 64)
    assert_close("feature", f32(src.feature).reshape(-1)[golden["idx_feature"]], golden["feature_sampled"],
                 FEATURE_ATOL)
    for k in ("pitch", "yaw", "roll"):
        assert_close(k, src.motion[k], golden[f"kp_info_{k}"], POSE_ATOL)
    for k in ("t", "exp", "scale", "kp"):
        assert_close(k, src.motion[k], golden[f"kp_info_{k}"], KP_ATOL)
    assert_close("x_s", src.keypoints, golden["x_s"], KP_ATOL)


def test_keypoint_maths_match_reference(core, golden):
    motion = {k: T(golden, f"kp_info_{k}") for k in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")}
    x_s = T(golden, "x_s")
    drv = dict(motion)
    drv["exp"] = motion["exp"] + T(golden, "drive_delta_exp")
    dp = golden["drive_delta_pose"]
    for i, k in enumerate(("pitch", "yaw", "roll")):
        drv[k] = motion[k] + float(dp[i])
    assert_close("x_d", core.transform_keypoints(drv), golden["x_d"], KP_ATOL)
    assert_close("x_d stitched", core.stitch(x_s, T(golden, "x_d")), golden["x_d_stitched"], KP_ATOL)
    assert_close("retarget eye", core.retarget_eye(x_s, T(golden, "eye_ratio")), golden["retarget_eye"], KP_ATOL)
    assert_close("retarget lip", core.retarget_lip(x_s, T(golden, "lip_ratio")), golden["retarget_lip"], KP_ATOL)


def test_warp_decode_matches_reference(core, golden):
    # The golden's own feature volume is only sampled, so encode it again (checked above) and warp x_s -> x_d.
    src = core.encode_source(np.asarray(golden["input_256"], np.uint8))
    out = core.warp_decode(src.feature, T(golden, "x_s"), T(golden, "x_d_stitched"))
    assert tuple(out["image"].shape) == (1, 3, 512, 512)
    assert_close("warped", f32(out["warped"]).reshape(-1)[golden["idx_warp"]], golden["warp_sampled"], FEATURE_ATOL)
    assert_close("occlusion", out["occlusion"], golden["occlusion_map"], KP_ATOL)
    assert_close("image", out["image"], golden["image_512"], IMAGE_ATOL, IMAGE_MEAN_ATOL)
