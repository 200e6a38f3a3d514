"""Every control's LivePortrait delta at weight 1.0 stays inside what real faces produced (the motion templates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.animation.controls import CONTROLS, NEUTRAL, SIDED
from engine.animation.liveportrait_map import BASIS_ARRAYS, control_delta, motion_delta
from engine.animation.presets import EXPRESSIONS, preset_state

DATA = Path(__file__).resolve().parents[1] / "data" / "motion" / "templates_exp.npz"
TOL = 1e-6


@pytest.fixture(scope="module")
def real_range() -> tuple[np.ndarray, np.ndarray]:
    """Per-coordinate min/max deviation from each template's first (rest) frame, over all real frames."""
    data = np.load(DATA)
    devs = []
    for name in data.files:
        exp = data[name].reshape(-1, 21, 3).astype(np.float64)
        devs.append(exp - exp[0])
    everything = np.concatenate(devs)
    return everything.min(0), everything.max(0)


def test_data_is_the_seven_templates() -> None:
    data = np.load(DATA)
    assert sorted(data.files) == sorted(["laugh", "shy", "aggrieved", "open_lip", "wink", "talking", "shake_face"])
    assert data["laugh"].shape == (54, 63)


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.name)
def test_every_control_at_its_ends_stays_in_the_real_range(control, real_range) -> None:
    lo, hi = real_range
    for weight in {control.minimum, control.maximum} - {0.0}:
        delta = motion_delta({control.name: weight}).exp
        assert delta.shape == (21, 3) and delta.dtype == np.float32
        outside = (delta < lo - TOL) | (delta > hi + TOL)
        assert not outside.any(), f"{control.name}={weight} leaves the real range at {np.argwhere(outside).tolist()}"
        # the unclipped basis itself is inside too (the clip in motion_delta is not what keeps it there)
        raw = control_delta(control.name, weight)
        assert not ((raw < lo - TOL) | (raw > hi + TOL)).any()


def test_expression_controls_move_their_keypoints() -> None:
    sided = {f"{base}{side}" for base in SIDED for side in ("Left", "Right")}
    assert set(BASIS_ARRAYS) == {c.name for c in CONTROLS} - {"headYaw", "headPitch", "headRoll"} - sided
    for name, basis in BASIS_ARRAYS.items():
        assert np.abs(basis).max() > 5e-4, name
    assert motion_delta({"jawOpen": 1.0}).exp[19, 1] > 0.03  # mouth opens (y down)
    assert motion_delta({"eyeBlink": 1.0}).exp[[11, 15], 1].min() > 0.005  # upper lids come down
    assert motion_delta({"mouthSmile": 1.0}).exp[14, 1] < 0  # corners up


def test_neutral_is_zero_and_pose_passes_through() -> None:
    delta = motion_delta(NEUTRAL)
    assert not delta.exp.any() and (delta.pitch, delta.yaw, delta.roll) == (0.0, 0.0, 0.0)
    delta = motion_delta({"headPitch": 3.0, "headYaw": -7.5, "headRoll": 1.0})
    assert (delta.pitch, delta.yaw, delta.roll) == (3.0, -7.5, 1.0) and not delta.exp.any()


def test_linear_in_weight_and_combinations_stay_in_range(real_range) -> None:
    lo, hi = real_range
    half = motion_delta({"jawOpen": 0.5}).exp
    np.testing.assert_allclose(half * 2, motion_delta({"jawOpen": 1.0}).exp, atol=1e-7)
    everything = {c.name: c.maximum for c in CONTROLS}
    delta = motion_delta(everything).exp
    assert ((delta >= lo - TOL) & (delta <= hi + TOL)).all()
    for expression in EXPRESSIONS:
        delta = motion_delta(preset_state(expression, 1.0).controls).exp
        assert ((delta >= lo - TOL) & (delta <= hi + TOL)).all()


def test_committed_table_matches_the_derivation() -> None:
    import sys

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "tools"))
    try:
        import derive_motion_basis
    finally:
        sys.path.pop(0)
    assert derive_motion_basis.main(["--check", "--templates", str(DATA)]) == 0
