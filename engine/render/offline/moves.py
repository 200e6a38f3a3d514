"""Move tables: each control as displacements of the 68 iBUG landmarks (plus five forehead and cheek points).

Why tables: a control is a handful of landmark moves in inter-ocular units, so the same table drives every face,
and the FACS prototypes (shared/reference/faces_and_speech.md) can be read off it:
- mouthSmile is AU12 with AU6 and a little AU10: corners up and back, the upper lip lifted, the cheeks and lower
  lids pushed up, both lips moving together (a closed-lip smile).
- mouthFrown is AU15 with AU17: corners down, the lower lip's middle and the chin pushed up.
- browInnerUp is AU1 (inner brows up, drawn a little towards each other, the inner upper lids lifted);
  browDown AU4; browOuterUp AU2; eyeWide AU5 (its lid raise is drawn in ``eyes``); jawOpen AU26.
Gaze is no table: the iris is redrawn (``eyes``), not warped.
Tables give the image-left half (the face's right side); ``mirror`` copies it to the other half.
Sided controls (``{base}Left``/``{base}Right``) are their bilateral table split by side: the fields are linear in
the moves, so left + right is exactly the bilateral control.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.animation.controls import NAMES, SIDED

Moves = dict[int, tuple[float, float]]

# iBUG 68 indices (0-based).
JAW = tuple(range(0, 17))
BROW_A = (17, 18, 19, 20, 21)  # image-left brow (the face's right), outer -> inner
BROW_B = (26, 25, 24, 23, 22)  # image-right brow (the face's left), outer -> inner
NOSE = tuple(range(27, 36))
EYE_A = (36, 37, 38, 39, 40, 41)  # outer corner, upper, upper, inner corner, lower, lower (the face's right eye)
EYE_B = (45, 44, 43, 42, 47, 46)  # same order, mirrored (the face's left eye)
UPPER_LIP = (49, 50, 51, 52, 53, 61, 62, 63)
LOWER_LIP = (55, 56, 57, 58, 59, 65, 66, 67)
CHIN = (5, 6, 7, 8, 9, 10, 11)
SEAM = (60, 67, 66, 65, 64)  # the lower inner lip, left to right: where the jaw tears from the upper face
N_EXTRA = 5  # forehead left/centre/right, cheek left/right (appended after the 68 landmarks)
FOREHEAD = (68, 69, 70)
CHEEKS = (71, 72)

# Which side of the image each moving point is on (for a frontal face); the midline is shared by both sides.
MIDLINE = frozenset({8, 27, 28, 29, 30, 33, 51, 57, 62, 66, 69})
IMAGE_LEFT = frozenset({*range(0, 8), *BROW_A, 31, 32, *EYE_A, 48, 49, 50, 58, 59, 60, 61, 67, 68, 71})

BLINK = "eyeBlink"
GAZE = "gaze"
WIDE = "eyeWide"
# Controls that part the lips: their fields are built in two halves that listen to different points (the upper
# half ignores the jaw, the lower half the upper lip and everything above the nose), so the halves tear apart
# along the seam. Every other control moves both lips with one field, so it never opens the mouth by accident.
OPENING = ("jawOpen", "mouthFunnel", "mouthUpperUp", "mouthLowerDown", "mouthRollLower", "jawX", "jawForward",
           "tongueOut")
# Controls with no field: drawn by the renderer from other moves (mouthClose seals the lips over an open jaw).
NO_FIELD = ("mouthClose",)
LOWER_ONLY = frozenset(CHIN) | frozenset(LOWER_LIP)
UPPER_ONLY = frozenset(UPPER_LIP) | frozenset(range(17, 48)) | frozenset(FOREHEAD) | {27, 28, 29, 30}


@dataclass(frozen=True)
class Move:
    """One control's landmark displacements (inter-ocular units, image axes) and spread (sigma, same units)."""

    moves: Moves
    sigma: float
    fit: bool = True  # fit the Gaussians so each point moves by its value; False: a plain weighted average (for
    # tight spreads between close pins, where a fit would ring)


def mirror(moves: Moves) -> Moves:
    """Left-right symmetric moves: each entry on the image-left side is copied to its mirror with x negated."""
    pairs = {**{i: 16 - i for i in range(17)}, **dict(zip(BROW_A, BROW_B, strict=True)),
             **dict(zip(EYE_A, EYE_B, strict=True)), 31: 35, 32: 34, 48: 54, 49: 53, 50: 52, 59: 55, 58: 56,
             60: 64, 61: 63, 67: 65, 68: 70, 71: 72}
    out = dict(moves)
    for i, (dx, dy) in moves.items():
        j = pairs.get(i)
        if j is not None and j != i:
            out[j] = (-dx, dy)
    return out


def side_of(moves: Moves, side: str) -> Moves:
    """The face's ``Left`` (image right) or ``Right`` (image left) half of a bilateral table; midline halved."""
    keep_image_left = side == "Right"
    out: Moves = {}
    for i, (dx, dy) in moves.items():
        if i in MIDLINE:
            out[i] = (dx / 2, dy / 2)
        elif (i in IMAGE_LEFT) == keep_image_left:
            out[i] = (dx, dy)
    return out


def expression_moves() -> dict[str, Move]:
    """The bilateral controls as landmark moves at weight 1 (image-left half given, mirrored)."""
    return {
        "mouthSmile": Move(mirror({
            48: (-0.14, -0.24), 60: (-0.13, -0.228), 49: (-0.07, -0.12), 50: (-0.035, -0.055), 51: (0.0, -0.035),
            61: (-0.065, -0.108), 62: (0.0, -0.03), 59: (-0.08, -0.132), 58: (-0.03, -0.04), 57: (0.0, 0.0),
            67: (-0.07, -0.114), 66: (0.0, -0.015), 71: (-0.03, -0.12), 31: (-0.012, -0.03), 3: (-0.01, -0.02),
            41: (0.0, -0.05), 40: (0.0, -0.045), 36: (0.0, -0.012),
        }), 0.22),
        "mouthFrown": Move(mirror({
            48: (0.02, 0.21), 60: (0.02, 0.20), 49: (0.0, 0.08), 50: (0.0, 0.02), 59: (0.0, 0.09),
            58: (0.0, 0.01), 57: (0.0, -0.05), 61: (0.0, 0.07), 67: (0.0, 0.07), 66: (0.0, -0.02),
            8: (0.0, -0.045), 7: (0.0, -0.035), 71: (0.0, 0.025), 5: (0.0, 0.035),
        }), 0.2),
        "browInnerUp": Move(mirror({
            21: (0.07, -0.21), 20: (0.04, -0.14), 19: (0.01, -0.06), 18: (0.0, -0.01), 17: (0.0, 0.025),
            68: (0.0, -0.05), 69: (0.0, -0.10), 37: (0.0, -0.01), 38: (0.0, -0.03), 27: (0.0, -0.02),
        }), 0.18),
        "browOuterUp": Move(mirror({
            17: (0.0, -0.16), 18: (0.0, -0.14), 19: (0.0, -0.09), 20: (0.0, -0.045), 21: (0.0, -0.01),
            68: (0.0, -0.07), 69: (0.0, -0.02), 37: (0.0, -0.012), 38: (0.0, -0.01),
        }), 0.22),
        "browDown": Move(mirror({
            17: (0.0, 0.05), 18: (0.02, 0.07), 19: (0.035, 0.07), 20: (0.055, 0.07), 21: (0.075, 0.065),
            68: (0.0, 0.03), 69: (0.0, 0.04), 37: (0.0, 0.015), 38: (0.0, 0.02), 27: (0.0, 0.01),
        }), 0.2),
        # AU5's lid raise is drawn by eyes.move_lids (the lid slides up over the eyeball; a warp would stretch
        # the iris); the field only lets the brows follow the lid a little. The lower lid stays (no white ring).
        "eyeWide": Move(mirror({
            18: (0.0, -0.015), 19: (0.0, -0.025), 20: (0.0, -0.025), 68: (0.0, -0.01),
        }), 0.12),
        "jawOpen": Move(mirror({
            48: (0.02, 0.08), 60: (0.02, 0.08), 59: (0.0, 0.26), 58: (0.0, 0.29), 57: (0.0, 0.30),
            67: (0.0, 0.26), 66: (0.0, 0.29), 61: (0.0, -0.02), 62: (0.0, -0.025), 49: (0.0, -0.015),
            50: (0.0, -0.02), 51: (0.0, -0.02), 8: (0.0, 0.33), 7: (0.0, 0.31), 6: (0.0, 0.25), 5: (0.0, 0.16),
            4: (0.0, 0.07), 71: (0.0, 0.02),
        }), 0.3),
        "mouthShrugLower": Move(mirror({
            57: (0.0, -0.07), 58: (0.0, -0.055), 59: (0.0, -0.03), 66: (0.0, -0.035), 67: (0.0, -0.025),
            8: (0.0, -0.06), 7: (0.0, -0.05), 6: (0.0, -0.03), 48: (0.0, 0.015),
        }), 0.2),
        "mouthPucker": Move(mirror({
            48: (0.16, 0.0), 60: (0.15, 0.0), 49: (0.08, -0.015), 50: (0.03, -0.015), 51: (0.0, -0.015),
            61: (0.07, 0.0), 59: (0.08, 0.015), 58: (0.03, 0.015), 57: (0.0, 0.015), 67: (0.07, 0.0),
            71: (0.03, 0.0),
        }), 0.2),
        # The lip axis (JALI): the lips part with the jaw still. The lower lip drops off the lower teeth, the chin
        # stays; the upper lip lifts off the upper teeth (which the drawn interior then shows).
        "mouthLowerDown": Move(mirror({
            59: (0.0, 0.07), 58: (0.0, 0.10), 57: (0.0, 0.11), 67: (0.0, 0.09), 66: (0.0, 0.11),
            48: (0.0, 0.01), 60: (0.0, 0.015), 7: (0.0, 0.01),
        }), 0.16),
        "mouthUpperUp": Move(mirror({
            49: (0.0, -0.045), 50: (0.0, -0.06), 51: (0.0, -0.045), 61: (0.0, -0.06), 62: (0.0, -0.05),
            48: (0.0, -0.01), 60: (0.0, -0.01),
        }), 0.14),
        # m, b, p: the lips pressed together and thinned: their outer edges roll towards the seam, the corners
        # tighten a little; the renderer also seals the seam (PRESS_SEAL).
        "mouthPress": Move(mirror({
            49: (0.0, 0.045), 50: (0.0, 0.065), 51: (0.0, 0.07), 59: (0.0, -0.06), 58: (0.0, -0.09),
            57: (0.0, -0.1), 48: (0.02, 0.0), 60: (0.015, 0.0), 8: (0.0, -0.035), 7: (0.0, -0.025),
        }), 0.13),
        # f, v: the lower lip rolled in under the upper teeth: its outer edge up and back, the chin a little up, the
        # upper lip lifted a little off the teeth, which the interior draws resting on the lower lip (a torn field).
        "mouthRollLower": Move(mirror({
            59: (0.0, -0.05), 58: (0.0, -0.085), 57: (0.0, -0.095), 67: (0.0, -0.005), 66: (0.0, -0.005),
            8: (0.0, -0.03), 7: (0.0, -0.025), 61: (0.0, -0.055), 62: (0.0, -0.06), 50: (0.0, -0.035),
            51: (0.0, -0.035), 49: (0.0, -0.02),
        }), 0.14),
        # i, e: the lips spread, corners out and a little down (AU20, not a smile's AU12), the red thinned.
        "mouthStretch": Move(mirror({
            48: (-0.09, 0.015), 60: (-0.08, 0.015), 49: (-0.04, 0.01), 59: (-0.04, -0.01), 61: (-0.03, 0.0),
            67: (-0.03, 0.0), 50: (-0.01, 0.01), 58: (-0.01, -0.01), 3: (-0.01, 0.0), 71: (-0.015, 0.0),
        }), 0.2),
        # AU6: the cheeks rise and push the lower lids up from below (the lids bunch; the upper lid stays), the
        # crow's feet corner lifts a little, the nasolabial fold deepens (the nostril wing follows the cheek).
        "cheekSquint": Move(mirror({
            71: (-0.01, -0.12), 41: (0.0, -0.09), 40: (0.0, -0.075), 36: (-0.005, -0.035), 39: (0.0, -0.012),
            2: (-0.005, -0.04), 3: (0.0, -0.03), 1: (0.0, -0.02), 31: (-0.005, -0.03), 48: (0.0, -0.015),
        }), 0.17),
        # AU9: the nostril wings and the nose's sides drawn up, the upper lip lifted with them, the inner brows
        # and the inner eye corners pulled down a little (the wrinkle between them).
        "noseSneer": Move(mirror({
            31: (-0.015, -0.1), 32: (0.0, -0.075), 33: (0.0, -0.045), 30: (0.0, -0.02), 29: (0.0, 0.0),
            49: (0.0, -0.045), 50: (0.0, -0.05), 51: (0.0, -0.04), 61: (0.0, -0.035), 62: (0.0, -0.03),
            71: (0.0, -0.05), 21: (0.02, 0.05), 20: (0.01, 0.03), 39: (0.0, 0.012), 40: (0.0, -0.02),
        }), 0.14),
        # AU14: the corners pulled straight back into the cheeks (no lift: that is the smile), lips thinned a hair.
        "mouthDimple": Move(mirror({
            48: (-0.11, 0.0), 60: (-0.1, 0.0), 49: (-0.045, 0.005), 59: (-0.035, -0.005), 61: (-0.02, 0.0),
            67: (-0.02, 0.0), 71: (-0.02, 0.0), 3: (-0.01, 0.0),
        }), 0.15),
        # Cheeks blown out: the face's sides between the cheekbones and the jaw swell outwards, the lips held
        # shut and pushed a little forward (narrower).
        "cheekPuff": Move(mirror({
            2: (-0.1, 0.0), 3: (-0.16, 0.01), 4: (-0.16, 0.02), 5: (-0.1, 0.02), 71: (-0.14, 0.01),
            48: (0.04, 0.0), 60: (0.035, 0.0), 49: (0.015, -0.01), 59: (0.015, 0.01), 6: (-0.02, 0.01),
        }), 0.22),
        # The upper lip rolled in over the teeth: its red edge moves down to the seam (the red narrows from above).
        "mouthRollUpper": Move(mirror({
            50: (0.0, 0.08), 51: (0.0, 0.085), 49: (0.0, 0.05), 61: (0.0, 0.008), 62: (0.0, 0.008),
            48: (0.01, 0.0), 33: (0.0, 0.015),
        }), 0.12),
        # The upper lip pushed up and out: both lips rise together (closed), the upper one most, under the nose.
        "mouthShrugUpper": Move(mirror({
            51: (0.0, -0.085), 50: (0.0, -0.075), 49: (0.0, -0.045), 62: (0.0, -0.065), 61: (0.0, -0.05),
            66: (0.0, -0.06), 67: (0.0, -0.05), 57: (0.0, -0.045), 58: (0.0, -0.035), 48: (0.0, -0.01),
            8: (0.0, -0.015),
        }), 0.15),
        # The jaw thrust forward (seen from the front): the chin comes out and down a little, the lower lip
        # pushes out (fuller, lower edge down) and the jaw's angle narrows.
        "jawForward": Move(mirror({
            8: (0.0, 0.1), 7: (0.0, 0.09), 6: (0.015, 0.07), 5: (0.01, 0.04), 57: (0.0, 0.06),
            58: (0.0, 0.055), 59: (0.0, 0.03), 66: (0.0, 0.0), 67: (0.0, 0.0),
        }), 0.2),
        # The lips part for the tongue (the lower lip down and out over it), the jaw a little open.
        "tongueOut": Move(mirror({
            57: (0.0, 0.12), 58: (0.0, 0.11), 59: (0.0, 0.07), 66: (0.0, 0.12), 67: (0.0, 0.09),
            48: (0.0, 0.01), 60: (0.0, 0.015), 8: (0.0, 0.06), 7: (0.0, 0.05), 6: (0.0, 0.03),
            62: (0.0, -0.015), 61: (0.0, -0.01),
        }), 0.2),
        "mouthFunnel": Move(mirror({
            48: (0.08, 0.02), 60: (0.08, 0.02), 49: (0.04, -0.03), 50: (0.015, -0.045), 51: (0.0, -0.05),
            61: (0.035, -0.04), 62: (0.0, -0.05), 59: (0.04, 0.07), 58: (0.015, 0.09), 57: (0.0, 0.09),
            67: (0.035, 0.09), 66: (0.0, 0.11), 8: (0.0, 0.06), 7: (0.0, 0.05),
        }), 0.2),
        # Signed sideways moves (image right +), so not mirrored: both lips together, or the jaw with the lower lip.
        "mouthX": Move({
            **{i: (0.13, 0.0) for i in range(48, 68)}, 48: (0.12, 0.01), 54: (0.14, -0.01), 71: (0.03, 0.0),
            72: (0.03, 0.0), 33: (0.01, 0.0), 8: (0.02, 0.0), 7: (0.015, 0.0), 9: (0.015, 0.0),
        }, 0.16),
        "jawX": Move({
            8: (0.15, 0.0), 7: (0.14, 0.0), 9: (0.14, 0.0), 6: (0.1, 0.0), 10: (0.1, 0.0), 5: (0.04, 0.0),
            11: (0.04, 0.0), 57: (0.11, 0.0), 58: (0.1, 0.0), 56: (0.1, 0.0), 59: (0.05, 0.0), 55: (0.05, 0.0),
            66: (0.09, 0.0), 67: (0.07, 0.0), 65: (0.07, 0.0),
        }, 0.22),
    }


# Expression controls answer on a gentle curve (weight ** RESPONSE): a face at 0.3 already shows the expression
# while 1.0 stays where it was. Head pose, gaze, jaw and blink stay linear (speech and idle life drive them).
EXPRESSIVE = ("mouthSmile", "mouthFrown", "mouthShrugLower", "browInnerUp", "browOuterUp", "browDown", "eyeWide",
              "cheekSquint", "noseSneer", "mouthDimple", "cheekPuff")
RESPONSE = 0.75


def field_moves() -> dict[str, Move]:
    """Every precomputed field by name: unsided controls as they are, sided ones as their two halves."""
    base = expression_moves()
    out: dict[str, Move] = {}
    for name, move in base.items():
        if name in SIDED:
            for side in ("Left", "Right"):
                out[name + side] = Move(side_of(move.moves, side), move.sigma, move.fit)
        else:
            out[name] = move
    return out


def field_names() -> tuple[str, ...]:
    """The linear fields in order: sided bases as their halves, head pose as it is (no blink, no gaze: ``eyes``)."""
    names: list[str] = []
    for n in NAMES:
        if n == BLINK or n.startswith((BLINK, GAZE)) or n.endswith(("Left", "Right")) or n in NO_FIELD:
            continue
        names.extend((n + "Left", n + "Right") if n in SIDED else (n,))
    return tuple(names)
