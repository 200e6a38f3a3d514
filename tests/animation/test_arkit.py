"""ARKit's 52 blendshape names as control input: accepted, each our own control or mapped onto ours."""

from __future__ import annotations

import pytest

from engine.animation.arkit import ARKIT_NAMES, MAPPED, RENDERED, UNRENDERED, parse_controls
from engine.animation.controls import BY_NAME
from engine.animation.timeline import Animator, IdleConfig, Keyframe
from engine.errors import BadRequest


def test_the_table_is_apples_52() -> None:
    assert len(ARKIT_NAMES) == 52 and len(set(ARKIT_NAMES)) == 52
    assert {"eyeBlinkLeft", "jawOpen", "mouthRollLower", "cheekPuff", "tongueOut", "noseSneerRight"} <= set(ARKIT_NAMES)
    assert set(RENDERED) | set(UNRENDERED) == set(ARKIT_NAMES) and not set(RENDERED) & set(UNRENDERED)
    for name, targets in MAPPED.items():
        assert name in ARKIT_NAMES and all(target in BY_NAME for target, _ in targets)


def test_every_arkit_name_is_accepted_and_drawn() -> None:
    controls, unrendered = parse_controls({name: 0.5 for name in ARKIT_NAMES})
    assert unrendered == () and UNRENDERED == ()  # all 52 are drawn (tests/render/test_offline_arkit.py)
    assert controls["eyeBlinkLeft"] == 0.5 and controls["jawOpen"] == 0.5 and controls["mouthSmileRight"] == 0.5
    assert controls["tongueOut"] == 0.5 and controls["cheekSquintLeft"] == 0.5 and controls["mouthClose"] == 0.5
    # sideways pairs are one signed control each; both sides at once cancel
    assert controls["mouthX"] == pytest.approx(0.0) and controls["jawX"] == pytest.approx(0.0)
    assert all(name in BY_NAME for name in controls)
    # up and down cancel, as do in and out of both eyes
    assert controls["gazeY"] == pytest.approx(0.0) and controls["gazeX"] == pytest.approx(0.0)


def test_mapped_names_drive_our_controls() -> None:
    controls, unrendered = parse_controls({"eyeLookUpLeft": 0.8, "eyeLookUpRight": 0.6, "eyeLookOutLeft": 1.0,
                                           "eyeLookInRight": 1.0, "mouthPressLeft": 0.4, "eyeSquintRight": 1.0})
    assert unrendered == ()
    assert controls["gazeY"] == pytest.approx(0.7)  # the mean of the two eyes, up is +
    assert controls["gazeX"] == pytest.approx(1.0)  # both eyes toward the face's left: image right, +
    assert controls["mouthPressLeft"] == pytest.approx(0.4)  # a control of its own since the speech shapes
    assert controls["eyeBlinkRight"] == pytest.approx(0.3)
    sideways, _ = parse_controls({"mouthLeft": 0.7, "jawRight": 0.4, "mouthRight": 0.2})
    assert sideways["mouthX"] == pytest.approx(0.5)  # the face's left is the image's right (+)
    assert sideways["jawX"] == pytest.approx(-0.4)
    direct, _ = parse_controls({"eyeLookUpLeft": 1.0, "gazeY": -0.25})
    assert direct["gazeY"] == -0.25  # a control sent directly wins over a mapped contribution


@pytest.mark.parametrize(("name", "control", "value"), [
    ("eyeLookUpLeft", "gazeY", 1.0), ("eyeLookUpRight", "gazeY", 1.0), ("eyeLookDownLeft", "gazeY", -1.0),
    ("eyeLookDownRight", "gazeY", -1.0), ("eyeLookOutLeft", "gazeX", 1.0), ("eyeLookInLeft", "gazeX", -1.0),
    ("eyeLookInRight", "gazeX", 1.0), ("eyeLookOutRight", "gazeX", -1.0)])
def test_one_eye_at_full_weight_is_a_full_look(name: str, control: str, value: float) -> None:
    """Our gaze is one for both eyes: an eye named alone moves it all the way (issue 15: half a look went unseen)."""
    controls, _ = parse_controls({name: 1.0})
    assert controls[control] == pytest.approx(value)


@pytest.mark.parametrize("values", [{"eyeLookUpLeft": 1.5}, {"cheekPuff": -0.1}, {"tongueOut": "x"},
                                    {"tongueOut": float("nan")}, {"mouthSmileLeft": True}, {"notAShape": 0.1}])
def test_bad_values_are_refused(values: dict) -> None:
    with pytest.raises(BadRequest):
        parse_controls(values)


def test_animator_takes_arkit_names_in_set_controls_and_keyframes() -> None:
    a = Animator(IdleConfig(enabled=False), 0.0)
    a.set_controls({"eyeBlinkLeft": 1.0, "eyeLookUpLeft": 1.0, "eyeLookUpRight": 1.0, "cheekPuff": 0.7}, 100, now=0.0)
    state = a.sample(1.0).controls
    assert state["eyeBlinkLeft"] == 1.0 and state["eyeBlinkRight"] == 0.0  # a wink
    assert state["gazeY"] == pytest.approx(1.0)
    a.schedule([Keyframe(2.0, {"jawOpen": 0.0, "mouthPressLeft": 1.0, "mouthPressRight": 1.0}),
                Keyframe(2.2, {"jawOpen": 0.8, "tongueOut": 0.3})], now=1.5)
    assert a.sample(2.0).controls["mouthPressLeft"] == pytest.approx(1.0)
    assert a.sample(2.2).controls["jawOpen"] == pytest.approx(0.8)
