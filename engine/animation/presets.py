"""Expression presets: weights over the controls, scaled by an intensity.

A preset never touches the head pose or gaze: those move only when a control (or idle life) asks.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.animation.controls import BY_NAME, NEUTRAL, validate_controls
from engine.animation.state import AnimationState
from engine.constants import (  # noqa: F401  (re-exported: the names are owned by engine/constants.py)
    EXPRESSIONS,
    INTENSITY_MAX,
    INTENSITY_MIN,
    INTENSITY_RANGE,
    validate_expression,
    validate_intensity,
)

# Weights at intensity 1.0, built from FACS prototypes (docs/animation.md): happy AU6+AU10+AU12, a Duchenne smile
# (the cheeks push the lower lids up from below while the upper lids stay; the upper lip comes off the teeth from
# about 0.4 on: a closed-lip smile at 0.3, the upper teeth showing from 0.5, a broad smile at full), its corners
# also drawn back (mouthDimple: AU12's oblique pull alone left narrow mouths 0.82-0.92 iod wide, where real broad
# smiles are about 1.0); sad AU1+AU4+AU15+AU17+AU24 (inner brows up and knit, lids a little lowered, corners down,
# chin raised, lips pressed: a photo's parted lips shut); surprised AU1+AU2+AU5+AU26/27 (brows up high, upper lids
# raised, the jaw dropped with relaxed lips: an oval mouth; the rounding (funnel, pucker) keeps the corners in, so no
# smile pull and no teeth in a smile shape).
# The weights were checked against independent judges (bench/bench_expressions.py, FER-2013 classifiers) on nine
# portraits, with sad's LivePortrait direction kept within the real clips' (the test below): the judges want teeth
# for happy and pressed lips for sad; heavier lids read sleepy to a person and neutral to the steadiest judge on the
# cartoon (docs/animation.md has the figures).
# Each control's LivePortrait delta at 1.0 is inside the range real faces produce; tests/render/test_lp_motion_map.py
# checks each preset against the clips.
# A weight above 1 saturates early (values are capped at the control's maximum): happy's smile is full from
# intensity 0.55 on, so a half-intensity smile already reads as one; above that the cheeks and lip keep rising.
PRESETS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouthSmile": 1.8, "cheekSquint": 1.4, "jawOpen": 0.35, "mouthUpperUp": 1.6, "mouthDimple": 0.3},
    "sad": {"browInnerUp": 0.8, "browDown": 0.65, "mouthFrown": 1.6, "mouthShrugLower": 0.8, "mouthPress": 0.4,
            "eyeBlink": 0.3},
    "surprised": {"browInnerUp": 0.6, "browOuterUp": 1.0, "eyeWide": 1.0, "jawOpen": 1.0, "mouthFunnel": 0.5,
                  "mouthPucker": 0.5},
}
assert tuple(PRESETS) == EXPRESSIONS, "engine/constants.py's EXPRESSIONS and the presets name the same expressions"


def preset_controls(expression: str, intensity: float) -> dict[str, float]:
    """Every control's value for a preset at an intensity: weight * intensity, capped at the control's maximum (0
    gives exact zeros)."""
    weights = PRESETS[validate_expression(expression)]
    scale = validate_intensity(intensity)
    values = dict(NEUTRAL)
    for name, weight in weights.items():
        values[name] = min(weight * scale, BY_NAME[name].maximum) + 0.0
    return values


def preset_state(expression: str, intensity: float, controls: Mapping[str, float] | None = None) -> AnimationState:
    """The static state of a preset at an intensity (0 is exactly neutral), plus explicit controls on top.

    An explicit control replaces the preset's value for that control (a client asking for mouthSmile 0.3
    gets 0.3, not the preset's smile plus 0.3).
    """
    values = preset_controls(expression, intensity)
    if controls:
        values.update(validate_controls(controls))
    return AnimationState(expression=expression, intensity=float(intensity) + 0.0, controls=values)
