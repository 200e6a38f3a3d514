"""The named continuous controls: one table, shared by the protocol, the animation and every renderer.

Names follow ARKit blendshapes where one fits, so an Audio2Face-style lip-sync stream can drive them
directly. Blendshape-like controls are 0..1; head angles are degrees; gaze is -1..1 (left/down negative).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Control:
    name: str
    minimum: float
    maximum: float
    unit: str
    doc: str


CONTROLS: tuple[Control, ...] = (
    Control("mouthSmile", 0.0, 1.0, "weight", "both mouth corners up and out"),
    Control("mouthFrown", 0.0, 1.0, "weight", "both mouth corners down"),
    Control("browInnerUp", 0.0, 1.0, "weight", "inner brows raised (worry, surprise)"),
    Control("browOuterUp", 0.0, 1.0, "weight", "outer brows raised"),
    Control("browDown", 0.0, 1.0, "weight", "brows lowered and drawn together"),
    Control("eyeBlink", 0.0, 1.0, "weight", "0 open, 1 closed"),
    Control("eyeWide", 0.0, 1.0, "weight", "eyes opened wider than rest"),
    Control("jawOpen", 0.0, 1.0, "weight", "jaw and mouth open (the main lip-sync control)"),
    Control("mouthPucker", 0.0, 1.0, "weight", "lips pushed forward and narrowed ('oo')"),
    Control("mouthFunnel", 0.0, 1.0, "weight", "lips rounded open ('oh')"),
    Control("headYaw", -20.0, 20.0, "degrees", "turn left (-) / right (+)"),
    Control("headPitch", -20.0, 20.0, "degrees", "nod down (-) / up (+)"),
    Control("headRoll", -20.0, 20.0, "degrees", "tilt left (-) / right (+)"),
    Control("gazeX", -1.0, 1.0, "normalised", "look left (-) / right (+)"),
    Control("gazeY", -1.0, 1.0, "normalised", "look down (-) / up (+)"),
)

BY_NAME: dict[str, Control] = {c.name: c for c in CONTROLS}
NAMES: tuple[str, ...] = tuple(c.name for c in CONTROLS)
NEUTRAL: dict[str, float] = {c.name: 0.0 for c in CONTROLS}
