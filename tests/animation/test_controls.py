"""validate_controls refusals and presets: intensity 0 is neutral, intensity is monotonic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.animation.controls import BY_NAME, CONTROLS, NAMES, NEUTRAL, validate_controls
from engine.animation.presets import EXPRESSIONS, PRESETS, preset_state
from engine.errors import BadRequest


def test_valid_controls_become_floats() -> None:
    out = validate_controls({"jawOpen": 1, "headYaw": -20, "gazeX": np.float32(0.5), "mouthSmile": -0.0})
    assert out == {"jawOpen": 1.0, "headYaw": -20.0, "gazeX": 0.5, "mouthSmile": 0.0}
    assert all(type(v) is float for v in out.values())
    assert math.copysign(1.0, out["mouthSmile"]) == 1.0


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"smile": 0.5}, ["unknown control", "'smile'"]),
        ({"jawOpen": "0.5"}, ["'jawOpen'", "0..1"]),
        ({"jawOpen": None}, ["'jawOpen'", "number"]),
        ({"jawOpen": True}, ["'jawOpen'", "number"]),
        ({"jawOpen": float("nan")}, ["'jawOpen'", "finite"]),
        ({"headYaw": float("inf")}, ["'headYaw'", "finite", "-20..20"]),
        ({"jawOpen": 1.0001}, ["'jawOpen'", "outside", "0..1"]),
        ({"eyeBlink": -0.1}, ["'eyeBlink'", "outside"]),
        ({"headPitch": 25}, ["'headPitch'", "-20..20 degrees"]),
        ({"gazeY": -1.5}, ["'gazeY'", "-1..1"]),
    ],
)
def test_refusals_name_the_control_and_range(values: dict, words: list[str]) -> None:
    with pytest.raises(BadRequest) as info:
        validate_controls(values)
    assert info.value.code == "bad_request"
    for word in words:
        assert word in str(info.value)


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(BadRequest):
        validate_controls([("jawOpen", 1.0)])  # type: ignore[arg-type]


def test_range_ends_are_accepted() -> None:
    for control in CONTROLS:
        assert validate_controls({control.name: control.minimum})[control.name] == control.minimum
        assert validate_controls({control.name: control.maximum})[control.name] == control.maximum


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_intensity_zero_is_exactly_neutral(expression: str) -> None:
    state = preset_state(expression, 0.0)
    assert state.controls == NEUTRAL
    assert state.key() == preset_state("neutral", 1.0).key()


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_intensity_is_monotonic(expression: str) -> None:
    previous = preset_state(expression, 0.0).controls
    for intensity in np.linspace(0.05, 1.0, 20):
        current = preset_state(expression, float(intensity)).controls
        for name in NAMES:
            # every control moves away from neutral (or stays), never back
            assert abs(current[name]) >= abs(previous[name])
            assert current[name] * previous[name] >= 0.0
        previous = current


def test_presets_leave_pose_and_gaze_alone() -> None:
    for expression in EXPRESSIONS:
        state = preset_state(expression, 1.0)
        for name in ("headYaw", "headPitch", "headRoll", "gazeX", "gazeY"):
            assert state.controls[name] == 0.0
    assert all(name in BY_NAME for weights in PRESETS.values() for name in weights)


def test_explicit_controls_replace_the_preset_value() -> None:
    state = preset_state("happy", 1.0, {"mouthSmile": 0.3, "headYaw": 5})
    assert state.controls["mouthSmile"] == 0.3 and state.controls["headYaw"] == 5.0
    assert state.expression == "happy" and state.intensity == 1.0


@pytest.mark.parametrize(("expression", "intensity"), [("angry", 0.5), ("happy", 1.5), ("happy", float("nan"))])
def test_preset_refusals(expression: str, intensity: float) -> None:
    with pytest.raises(BadRequest):
        preset_state(expression, intensity)


def test_sided_controls_add_to_the_bilateral_one_per_side() -> None:
    from engine.animation.controls import SIDED, side_values

    for base in SIDED:
        assert f"{base}Left" in BY_NAME and f"{base}Right" in BY_NAME
    assert side_values({"eyeBlinkLeft": 1.0}, "eyeBlink") == (1.0, 0.0)  # a wink
    assert side_values({"eyeBlink": 0.6, "eyeBlinkRight": 0.7}, "eyeBlink") == (0.6, 1.0)  # capped at 1
    assert side_values({}, "mouthSmile") == (0.0, 0.0)
