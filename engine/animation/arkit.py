"""Apple's 52 ARKit blendshapes as control input, so Audio2Face or a phone's face capture can drive the face as is.

Every ARKit name is accepted by ``parse_controls`` (0..1, like ARKit) and every one is drawn (docs/animation.md
says how on each renderer). Names that are also our controls pass through; the ones in ``MAPPED`` become weighted
contributions to our controls. "Left"/"Right" are the face's own sides in ARKit and here.

- the same name: every Left/Right of our sided controls (eyeBlink, eyeWide, mouthSmile, mouthFrown, browDown,
  browOuterUp, mouthPress, mouthUpperUp, mouthLowerDown, mouthStretch, cheekSquint, noseSneer, mouthDimple), and
  browInnerUp, jawOpen, jawForward, mouthPucker, mouthFunnel, mouthClose, mouthRollLower, mouthRollUpper,
  mouthShrugLower, mouthShrugUpper, cheekPuff, tongueOut;
- eyeLookUp/Down/In/Out per eye: gazeY (up +) and gazeX (+ toward the face's left = image right: eyeLookOutLeft,
  eyeLookInRight), each eye's own direction (e.g. eyeLookOutLeft - eyeLookInLeft), averaged over the eyes the
  client named: both eyes sent look where they agree, one eye alone moves the gaze all the way (our gaze is one
  for both eyes, and a control at 1.0 must show as a full look, not half of one);
- eyeSquintL/R: eyeBlinkL/R x 0.3 (a squint narrows the lids);
- mouthLeft/mouthRight: mouthX +1/-1, jawLeft/jawRight: jawX +1/-1 (signed controls; the face's left is the
  image's right, +).
``UNRENDERED`` (names accepted and not drawn) is empty; ``parse_controls`` still reports any, for a future table.

When a client sends a control directly and an ARKit name that maps onto it, the direct value wins.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

from engine.animation.controls import BY_NAME, validate_control
from engine.errors import BadRequest

_SIDES = ("Left", "Right")
ARKIT_NAMES: tuple[str, ...] = (
    *(f"eye{part}{side}" for part in ("Blink", "LookDown", "LookIn", "LookOut", "LookUp", "Squint", "Wide")
      for side in _SIDES),
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    *(f"mouth{part}{side}" for part in ("Smile", "Frown", "Dimple", "Stretch") for side in _SIDES),
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    *(f"mouth{part}{side}" for part in ("Press", "LowerDown", "UpperUp") for side in _SIDES),
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)

# ARKit name -> ((our control, gain), ...) for names that are not our controls themselves. The gaze names' gains are
# each eye's direction; ``parse_controls`` averages them per eye (see the module docstring).
MAPPED: dict[str, tuple[tuple[str, float], ...]] = {
    "eyeLookUpLeft": (("gazeY", 1.0),), "eyeLookUpRight": (("gazeY", 1.0),),
    "eyeLookDownLeft": (("gazeY", -1.0),), "eyeLookDownRight": (("gazeY", -1.0),),
    "eyeLookOutLeft": (("gazeX", 1.0),), "eyeLookInRight": (("gazeX", 1.0),),
    "eyeLookInLeft": (("gazeX", -1.0),), "eyeLookOutRight": (("gazeX", -1.0),),
    "eyeSquintLeft": (("eyeBlinkLeft", 0.3),), "eyeSquintRight": (("eyeBlinkRight", 0.3),),
    # The face's left is the image's right (+): both lips (or the jaw) to the face's left is mouthX (jawX) +.
    "mouthLeft": (("mouthX", 1.0),), "mouthRight": (("mouthX", -1.0),),
    "jawLeft": (("jawX", 1.0),), "jawRight": (("jawX", -1.0),),
}
RENDERED: frozenset[str] = frozenset(n for n in ARKIT_NAMES if n in BY_NAME or n in MAPPED)
UNRENDERED: tuple[str, ...] = tuple(n for n in ARKIT_NAMES if n not in RENDERED)


def _arkit_weight(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadRequest(f"ARKit blendshape {name!r} must be a number in 0..1, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise BadRequest(f"ARKit blendshape {name!r} is {number:g}, outside its range 0..1")
    return number + 0.0


def parse_controls(values: Mapping[str, object]) -> tuple[dict[str, float], tuple[str, ...]]:
    """Client controls (ours and ARKit's 52) -> (validated control values, ARKit names accepted but not rendered).

    Unknown names, non-numbers, NaN/inf and out-of-range values are a BadRequest, as for our own controls.
    """
    if not isinstance(values, Mapping):
        raise BadRequest(f"controls must be a map of name to number, got {type(values).__name__}")
    direct: dict[str, float] = {}
    mapped: dict[str, float] = {}
    eyes: dict[str, set[str]] = {}  # gaze control -> the eyes ("Left"/"Right") that sent a direction for it
    unrendered: list[str] = []
    for name, value in values.items():
        if isinstance(name, str) and name in BY_NAME:
            direct[name] = validate_control(name, value)
        elif isinstance(name, str) and name in MAPPED:
            weight = _arkit_weight(name, value)
            for target, gain in MAPPED[name]:
                mapped[target] = mapped.get(target, 0.0) + gain * weight
                if target.startswith("gaze"):
                    eyes.setdefault(target, set()).add("Left" if name.endswith("Left") else "Right")
        elif isinstance(name, str) and name in ARKIT_NAMES:
            _arkit_weight(name, value)
            unrendered.append(name)
        else:
            validate_control(name, value)  # raises the unknown-control BadRequest
    for target, total in mapped.items():
        total /= max(len(eyes.get(target, ())), 1)  # gaze: the mean of the eyes that were named
        if target not in direct:
            direct[target] = BY_NAME[target].clamp(total) + 0.0
    return direct, tuple(unrendered)
