"""The named continuous controls: one table, shared by the protocol, the animation and every renderer.

Names follow ARKit blendshapes where one fits, so an Audio2Face-style lip-sync stream can drive them
directly. Blendshape-like controls are 0..1; head angles are degrees; gaze is -1..1 (left/down negative).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

from engine.errors import BadRequest


@dataclass(frozen=True)
class Control:
    name: str
    minimum: float
    maximum: float
    unit: str
    doc: str
    arkit: str = ""  # the ARKit blendshape this matches ("" where none fits)

    def clamp(self, value: float) -> float:
        """Clamp into the range: for values the engine computes itself, never for client input."""
        return min(self.maximum, max(self.minimum, value))


CONTROLS: tuple[Control, ...] = (
    Control("mouthSmile", 0.0, 1.0, "weight", "both mouth corners up and out", "mouthSmileLeft + mouthSmileRight"),
    Control("mouthFrown", 0.0, 1.0, "weight", "both mouth corners down", "mouthFrownLeft + mouthFrownRight"),
    Control("browInnerUp", 0.0, 1.0, "weight", "inner brows raised (worry, surprise)", "browInnerUp"),
    Control("browOuterUp", 0.0, 1.0, "weight", "outer brows raised", "browOuterUpLeft + browOuterUpRight"),
    Control("browDown", 0.0, 1.0, "weight", "brows lowered and drawn together", "browDownLeft + browDownRight"),
    Control("eyeBlink", 0.0, 1.0, "weight", "0 open, 1 closed", "eyeBlinkLeft + eyeBlinkRight"),
    Control("eyeWide", 0.0, 1.0, "weight", "eyes opened wider than rest", "eyeWideLeft + eyeWideRight"),
    Control("jawOpen", 0.0, 1.0, "weight", "jaw and mouth open (the main lip-sync control)", "jawOpen"),
    Control("mouthPucker", 0.0, 1.0, "weight", "lips pushed forward and narrowed ('oo')", "mouthPucker"),
    Control("mouthFunnel", 0.0, 1.0, "weight", "lips rounded open ('oh')", "mouthFunnel"),
    Control("mouthShrugLower", 0.0, 1.0, "weight", "chin raised, lower lip pushed up and lips pressed (AU17)",
            "mouthShrugLower"),
    # Speech articulation (docs/speech.md): the lip axis apart from the jaw (JALI), and the consonant shapes.
    Control("mouthUpperUp", 0.0, 1.0, "weight", "upper lip raised off the teeth (lips part without the jaw)",
            "mouthUpperUpLeft + mouthUpperUpRight"),
    Control("mouthLowerDown", 0.0, 1.0, "weight", "lower lip lowered off the teeth (lips part without the jaw)",
            "mouthLowerDownLeft + mouthLowerDownRight"),
    Control("mouthPress", 0.0, 1.0, "weight", "lips pressed together and thinned (m, b, p)",
            "mouthPressLeft + mouthPressRight"),
    Control("mouthRollLower", 0.0, 1.0, "weight", "lower lip rolled in under the upper teeth (f, v)",
            "mouthRollLower"),
    Control("mouthStretch", 0.0, 1.0, "weight", "lips spread wide, corners out, not up (i, e)",
            "mouthStretchLeft + mouthStretchRight"),
    # The rest of ARKit's 52 (docs/animation.md "ARKit blendshapes"): cheeks, nose, dimples, the upper lip's roll
    # and shrug, lips closed over an open jaw, the jaw's own moves and the tongue.
    Control("cheekSquint", 0.0, 1.0, "weight", "cheeks raised, lower lids bunched up from below (AU6)",
            "cheekSquintLeft + cheekSquintRight"),
    Control("noseSneer", 0.0, 1.0, "weight", "nostril wings and upper lip drawn up, nose wrinkled (AU9)",
            "noseSneerLeft + noseSneerRight"),
    Control("mouthDimple", 0.0, 1.0, "weight", "mouth corners pulled straight back into the cheeks (AU14)",
            "mouthDimpleLeft + mouthDimpleRight"),
    Control("cheekPuff", 0.0, 1.0, "weight", "cheeks blown out, lips held shut", "cheekPuff"),
    Control("mouthClose", 0.0, 1.0, "weight", "lips closed whatever the jaw does (with jawOpen: jaw open, lips shut)",
            "mouthClose"),
    Control("mouthRollUpper", 0.0, 1.0, "weight", "upper lip rolled in over the upper teeth", "mouthRollUpper"),
    Control("mouthShrugUpper", 0.0, 1.0, "weight", "upper lip pushed up and out, lips together",
            "mouthShrugUpper"),
    Control("mouthX", -1.0, 1.0, "normalised", "both lips sideways: image left (-) / right (+)",
            "mouthLeft - mouthRight (signed)"),
    Control("jawX", -1.0, 1.0, "normalised", "jaw sideways: image left (-) / right (+)", "jawLeft - jawRight (signed)"),
    Control("jawForward", 0.0, 1.0, "weight", "lower jaw thrust forward (the chin out and down)", "jawForward"),
    Control("tongueOut", 0.0, 1.0, "weight", "tongue out over the lower lip (the lips part for it)", "tongueOut"),
    Control("headYaw", -20.0, 20.0, "degrees", "turn left (-) / right (+)", ""),
    Control("headPitch", -20.0, 20.0, "degrees", "nod down (-) / up (+)", ""),
    Control("headRoll", -20.0, 20.0, "degrees", "tilt left (-) / right (+)", ""),
    Control("gazeX", -1.0, 1.0, "normalised", "look left (-) / right (+)", "eyeLookIn/Out (signed)"),
    Control("gazeY", -1.0, 1.0, "normalised", "look down (-) / up (+)", "eyeLookUp/Down (signed)"),
)

# Controls that act on one side of the face each. "Left" is the face's own left, which is the image's right for a
# face looking at the camera (ARKit's convention, so a phone's capture or Audio2Face drives it unchanged).
# The bilateral control and a side's own control add up, capped at 1: `side_values` is how renderers read them.
SIDED: tuple[str, ...] = ("mouthSmile", "mouthFrown", "browOuterUp", "browDown", "eyeBlink", "eyeWide",
                          "mouthUpperUp", "mouthLowerDown", "mouthPress", "mouthStretch", "cheekSquint", "noseSneer",
                          "mouthDimple")
CONTROLS += tuple(
    Control(f"{base}{side}", 0.0, 1.0, "weight", f"{base} on the face's {side.lower()} side only", f"{base}{side}")
    for base in SIDED
    for side in ("Left", "Right")
)

BY_NAME: dict[str, Control] = {c.name: c for c in CONTROLS}
NAMES: tuple[str, ...] = tuple(c.name for c in CONTROLS)
NEUTRAL: dict[str, float] = {c.name: 0.0 for c in CONTROLS}


def side_values(controls: Mapping[str, float], base: str) -> tuple[float, float]:
    """(left, right) weight of a sided control: the bilateral value plus each side's own, capped at 1.

    Left and right are the face's own (image right and image left for a face looking at the camera).
    """
    both = float(controls.get(base, 0.0))
    left = min(1.0, both + float(controls.get(base + "Left", 0.0)))
    right = min(1.0, both + float(controls.get(base + "Right", 0.0)))
    return left, right


def validate_control(name: object, value: object) -> float:
    """One control's value as a float, or BadRequest saying which control and what range (no silent clamp)."""
    if not isinstance(name, str) or name not in BY_NAME:
        raise BadRequest(f"unknown control {name!r}; known controls: {', '.join(NAMES)}")
    control = BY_NAME[name]
    span = f"{control.minimum:g}..{control.maximum:g} {control.unit}"
    # bool is an int subclass; a true/false for a weight is a client bug, not a number.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadRequest(f"control {name!r} must be a number in {span}, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise BadRequest(f"control {name!r} must be a finite number in {span}, got {number}")
    if not control.minimum <= number <= control.maximum:
        raise BadRequest(f"control {name!r} is {number:g}, outside its range {span}")
    return number + 0.0  # -0.0 -> 0.0, so neutral compares and hashes as neutral


def validate_controls(values: Mapping[str, object]) -> dict[str, float]:
    """Client control values -> floats, refusing unknown names, non-numbers, NaN/inf and out-of-range values."""
    if not isinstance(values, Mapping):
        raise BadRequest(f"controls must be a map of name to number, got {type(values).__name__}")
    return {name: validate_control(name, value) for name, value in values.items()}
