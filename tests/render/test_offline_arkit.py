"""Each of ARKit's 52 blendshapes, sent as a client sends it, moves what it names on the offline renderer's frames.

One frame per name at weight 1.0 (``mouthClose`` over an open jaw, as ARKit streams it), parsed by the same
``parse_controls`` the protocol uses. Measures: dlib's 68 landmarks re-detected on the frame against the re-detected
source (inter-ocular units, iod; dlib jitters ~0.01 iod, so every bound is at least 0.02), the iris as the darkest
blob in the eye (eye widths, tests/render/test_offline_eye_controls.py), dense optical flow where skin moves without
a landmark that dlib follows (cheeks, nostrils, lids, brows, lips' edges), and for the tongue the lip's colour.
Sided names (the face's own Left = the image's right) must move their own side, and more than the other side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from engine.animation.arkit import ARKIT_NAMES, UNRENDERED, parse_controls
from engine.animation.controls import NEUTRAL
from engine.animation.state import AnimationState
from engine.face.intake import decode_image
from engine.face.pipeline import FacePipeline
from tests.render.test_offline import DATA, iod, landmarks
from tests.render.test_offline_eye_controls import half_luma, iris_centre

PORTRAIT = "s1.jpg"
# The face's own side -> its landmarks (eye upper lid, lower lid, eye polygon, brow, outer brow, mouth corner, upper
# lip, lower lip) and the sign of "outward" in image x.
SIDE = {
    "Left": {"upper": [43, 44], "lower": [46, 47], "eye": slice(42, 48), "brow": slice(22, 27), "outer": [25, 26],
             "corner": 54, "lip_up": [52, 53], "lip_lo": [55, 56], "nostril": [34, 35],
             "out": 1.0},
    "Right": {"upper": [37, 38], "lower": [40, 41], "eye": slice(36, 42), "brow": slice(17, 22), "outer": [17, 18],
              "corner": 48, "lip_up": [49, 50], "lip_lo": [58, 59], "nostril": [31, 32],
              "out": -1.0},
}
OTHER = {"Left": "Right", "Right": "Left"}


@dataclass(frozen=True)
class Frame:
    lm: np.ndarray  # re-detected landmarks
    img: np.ndarray


Measure = Callable[[Frame, Frame, str, float], float]  # (neutral, frame, side, iod) -> movement in its direction


def y(f: Frame, idx: list[int] | int) -> float:
    return float(np.mean(f.lm[idx, 1]))


def x(f: Frame, idx: list[int] | int) -> float:
    return float(np.mean(f.lm[idx, 0]))


def eye_open(f: Frame, side: str) -> float:
    return y(f, SIDE[side]["lower"]) - y(f, SIDE[side]["upper"])


def iris(f: Frame, ref: Frame) -> np.ndarray:
    """Both irises' mean position, in eye widths of the neutral eyes (their polygons from the neutral landmarks)."""
    out = []
    for side in SIDE:
        eye = ref.lm[SIDE[side]["eye"]]
        width = float(np.linalg.norm(eye[3] - eye[0]))
        out.append(iris_centre(f.img, eye) / width)
    return np.mean(out, 0)


def look(axis: int, sign: float) -> Measure:
    return lambda ref, f, side, u: sign * float(iris(f, ref)[axis] - iris(ref, ref)[axis])


def white_shows(below: bool, sign: float) -> Measure:
    """Looking up, the white shows below the neutral iris (that half of the eye gets lighter); looking down, the iris
    covers the white there (it gets darker). Luma levels, both eyes."""
    def measure(ref: Frame, f: Frame, side: str, u: float) -> float:
        out = 0.0
        for s in SIDE:
            eye = ref.lm[SIDE[s]["eye"]]
            centre, w = iris_centre(ref.img, eye), float(np.linalg.norm(eye[3] - eye[0]))
            out += half_luma(f.img, eye, centre, w, below) - half_luma(ref.img, eye, centre, w, below)
        return sign * out / 2
    return measure


def widens(ref: Frame, f: Frame, side: str, u: float) -> float:
    """AU5: the upper lid's lash line rises, and the lower lid stays (no white ring below the iris)."""
    lid_up = skin(LID, 1, -1.0)(ref, f, side, u)
    lower_down = skin(LOWER_LID, 1, 1.0)(ref, f, side, u)
    return lid_up - 10.0 * max(0.0, lower_down - 0.005)


_LAST_FLOW: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (ref img, img, flow): a measure reads both sides


def flow(ref: Frame, f: Frame) -> np.ndarray:
    """Dense image motion (px, image axes) from the neutral frame to ``f`` (Farneback): skin seen moving where
    dlib's contour model holds a point still."""
    if not (_LAST_FLOW and _LAST_FLOW[0][0] is ref.img and _LAST_FLOW[0][1] is f.img):
        a = cv2.cvtColor(ref.img, cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(f.img, cv2.COLOR_RGB2GRAY)
        _LAST_FLOW[:] = [(ref.img, f.img, cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0))]
    return _LAST_FLOW[0][2]


def skin(point: dict[str, list[int]], axis: int, sign: float, radius: float = 0.06) -> Measure:
    """Mean motion along ``axis`` (times ``sign``; iod) within ``radius`` iod of a side's neutral points."""
    def measure(ref: Frame, f: Frame, side: str, u: float) -> float:
        field = flow(ref, f)
        ys, xs = np.mgrid[:field.shape[0], :field.shape[1]]
        near = np.zeros(field.shape[:2], bool)
        for px, py in ref.lm[point[side]]:
            near |= (xs - px) ** 2 + (ys - py) ** 2 <= (radius * u) ** 2
        return sign * float(field[near, axis].mean()) / u
    return measure


def outward_skin(point: dict[str, list[int]], radius: float = 0.1) -> Measure:
    def measure(ref: Frame, f: Frame, side: str, u: float) -> float:
        return SIDE[side]["out"] * skin(point, 0, 1.0, radius)(ref, f, side, u)
    return measure


def up(key: str) -> Measure:
    return lambda ref, f, side, u: (y(ref, SIDE[side][key]) - y(f, SIDE[side][key])) / u


def down(key: str) -> Measure:
    return lambda ref, f, side, u: (y(f, SIDE[side][key]) - y(ref, SIDE[side][key])) / u


def outward(ref: Frame, f: Frame, side: str, u: float) -> float:
    c = SIDE[side]["corner"]
    return SIDE[side]["out"] * (x(f, c) - x(ref, c)) / u


def mid(fn: Callable[[Frame], float], sign: float = 1.0) -> Measure:
    return lambda ref, f, side, u: sign * (fn(f) - fn(ref)) / u


def gap(f: Frame) -> float:
    return y(f, 66) - y(f, 62)


def width(f: Frame) -> float:
    return x(f, 54) - x(f, 48)


def tongue_over_lip(ref: Frame, f: Frame, side: str, u: float) -> float:
    """The tongue lies over the lower lip: just above the lip's outer edge (dlib's 57 on each frame) the colour is no
    longer the lip's own (mean absolute change, levels). A tongue kept inside the mouth leaves the lip as it was."""
    def patch(fr: Frame) -> np.ndarray:
        x0, y0 = fr.lm[57]
        rows = slice(int(y0 - 0.08 * u), int(y0 - 0.02 * u))
        cols = slice(int(x0 - 0.05 * u), int(x0 + 0.05 * u))
        return fr.img[rows, cols].reshape(-1, 3).astype(np.float64).mean(0)
    return float(np.abs(patch(f) - patch(ref)).mean())


JOWL = {"Left": [12, 13], "Right": [3, 4]}  # the face's side at the mouth's level
LID = {"Left": [43, 44], "Right": [37, 38]}  # the upper lid's lash line
BROW = {"Left": [23, 24, 25], "Right": [18, 19, 20]}
NOSTRIL = {"Left": [35], "Right": [31]}
LOWER_LID = {"Left": [46, 47], "Right": [40, 41]}
PRESS_UP = {"Left": [52, 53], "Right": [49, 50]}  # the upper lip's outer edge on a side (pressed: it comes down)
PRESS_LO = {"Left": [55, 56], "Right": [58, 59]}

# name -> (measure, bound (iod; eye widths for the iris; share of the opening for closing lids; luma levels for the
# white), sided)
CASES: dict[str, tuple[Measure, float, bool]] = {
    **{f"eyeBlink{s}": (skin(LID, 1, 1.0), 0.02, True) for s in SIDE},
    **{f"eyeSquint{s}": (skin(LID, 1, 1.0), 0.01, True) for s in SIDE},
    **{f"eyeWide{s}": (widens, 0.015, True) for s in SIDE},
    "eyeLookUpLeft": (white_shows(True, 1.0), 8.0, False), "eyeLookUpRight": (white_shows(True, 1.0), 8.0, False),
    "eyeLookDownLeft": (white_shows(True, -1.0), 2.0, False),
    "eyeLookDownRight": (white_shows(True, -1.0), 2.0, False),
    "eyeLookOutLeft": (look(0, 1.0), 0.06, False), "eyeLookInRight": (look(0, 1.0), 0.06, False),
    "eyeLookInLeft": (look(0, -1.0), 0.06, False), "eyeLookOutRight": (look(0, -1.0), 0.06, False),
    "jawOpen": (mid(gap), 0.15, False),
    "jawForward": (mid(lambda f: y(f, 8)), 0.03, False),
    "jawLeft": (mid(lambda f: x(f, 8)), 0.03, False), "jawRight": (mid(lambda f: x(f, 8), -1.0), 0.03, False),
    "mouthClose": (mid(gap, -1.0), 0.1, False),  # against jawOpen alone (arkit_state)
    "mouthFunnel": (mid(width, -1.0), 0.05, False), "mouthPucker": (mid(width, -1.0), 0.08, False),
    "mouthLeft": (mid(lambda f: x(f, [48, 54, 51, 57])), 0.05, False),
    "mouthRight": (mid(lambda f: x(f, [48, 54, 51, 57]), -1.0), 0.05, False),
    **{f"mouthSmile{s}": (up("corner"), 0.05, True) for s in SIDE},
    **{f"mouthFrown{s}": (down("corner"), 0.05, True) for s in SIDE},
    **{f"mouthDimple{s}": (outward, 0.03, True) for s in SIDE},
    **{f"mouthStretch{s}": (outward, 0.03, True) for s in SIDE},
    "mouthRollLower": (mid(lambda f: y(f, 57), -1.0), 0.03, False),
    "mouthRollUpper": (mid(lambda f: y(f, 51)), 0.03, False),
    "mouthShrugLower": (mid(lambda f: y(f, 57), -1.0), 0.03, False),
    "mouthShrugUpper": (mid(lambda f: y(f, 51), -1.0), 0.03, False),
    **{f"mouthPress{s}": (lambda ref, f, side, u: skin(PRESS_UP, 1, 1.0)(ref, f, side, u)
                          + skin(PRESS_LO, 1, -1.0)(ref, f, side, u), 0.04, True) for s in SIDE},
    **{f"mouthLowerDown{s}": (down("lip_lo"), 0.03, True) for s in SIDE},
    **{f"mouthUpperUp{s}": (up("lip_up"), 0.02, True) for s in SIDE},
    **{f"browDown{s}": (skin(BROW, 1, 1.0), 0.03, True) for s in SIDE},
    "browInnerUp": (mid(lambda f: y(f, [21, 22]), -1.0), 0.05, False),
    **{f"browOuterUp{s}": (up("outer"), 0.05, True) for s in SIDE},
    "cheekPuff": (lambda ref, f, side, u: min(outward_skin(JOWL)(ref, f, s, u) for s in SIDE), 0.03, False),
    **{f"cheekSquint{s}": (skin(LOWER_LID, 1, -1.0), 0.04, True) for s in SIDE},
    **{f"noseSneer{s}": (skin(NOSTRIL, 1, -1.0), 0.03, True) for s in SIDE},
    "tongueOut": (tongue_over_lip, 15.0, False),
}


def arkit_state(name: str) -> AnimationState:
    values = {"jawOpen": 0.6, "mouthClose": 0.6} if name == "mouthClose" else {name: 1.0}
    controls, unrendered = parse_controls(values)
    assert unrendered == ()
    return AnimationState(name, 1.0, {**NEUTRAL, **controls})


@pytest.fixture(scope="module")
def face(detector, renderer):
    crop = FacePipeline(detector, "test").crop(decode_image((DATA / PORTRAIT).read_bytes()))
    return renderer.prepare(crop), Frame(landmarks(detector, crop.crop), crop.crop)


def frame(detector, renderer, source, state: AnimationState) -> Frame:
    img = renderer.render(source, state)
    return Frame(landmarks(detector, img), img)


def test_every_name_has_a_case_and_all_52_are_drawn() -> None:
    assert set(CASES) == set(ARKIT_NAMES) and UNRENDERED == ()


@pytest.mark.parametrize("name", ARKIT_NAMES)
def test_each_arkit_name_moves_what_it_names(name, face, detector, renderer) -> None:
    source, ref = face
    measure, bound, sided = CASES[name]
    shot = frame(detector, renderer, source, arkit_state(name))
    unit = iod(ref.lm)
    if name == "mouthClose":  # the jaw stays open (the chin down), the lips shut against jawOpen alone
        assert (y(shot, 8) - y(ref, 8)) / unit > 0.05
        ref = frame(detector, renderer, source, AnimationState("jaw", 1.0, {**NEUTRAL, "jawOpen": 0.6}))
    side = "Left" if name.endswith("Left") else "Right"
    own = measure(ref, shot, side, unit)
    assert own >= bound, (name, round(own, 4))
    if sided:
        other = measure(ref, shot, OTHER[side], unit)
        assert own - other >= bound / 2, (name, round(own, 4), round(other, 4))
