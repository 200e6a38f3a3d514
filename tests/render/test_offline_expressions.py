"""The offline renderer's expressions read as themselves: FACS directions measured by dlib re-detection, sided
controls (a wink closes one eye only), a closed-lip smile, and a lens-shaped mouth opening.

Thresholds are in inter-ocular units (iod) of the re-detected neutral face; dlib re-detection itself jitters by
about 0.01 iod on an unchanged crop, so every threshold is at least twice that.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest

from engine.animation.controls import NEUTRAL, SIDED
from engine.animation.presets import preset_state
from engine.animation.state import AnimationState
from tests.render.conftest import Prepared
from tests.render.test_offline import corners_y, iod, landmarks

PORTRAITS = ("astronaut.jpg", "s1.jpg", "s42.jpg", "s7.jpg")


@pytest.fixture(scope="module")
def avatars(prepared: Callable[[str], Prepared]) -> dict[str, Prepared]:
    return {name: prepared(name) for name in PORTRAITS}


@pytest.fixture(scope="module")
def neutral(avatars, detector) -> dict[str, np.ndarray]:
    return {name: landmarks(detector, face.crop) for name, (face, _) in avatars.items()}


def controls(**values: float) -> AnimationState:
    return AnimationState("test", 1.0, {**NEUTRAL, **values})


def inner_brows_y(lm: np.ndarray) -> float:
    return float((lm[21, 1] + lm[22, 1]) / 2)


def inner_brow_gap(lm: np.ndarray) -> float:
    return float(lm[22, 0] - lm[21, 0])


def one_eye(e: np.ndarray) -> float:
    return float((np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])) / (2 * np.linalg.norm(e[0] - e[3])))


@pytest.mark.parametrize("name", PORTRAITS)
def test_sad_at_0_3_differs_measurably_from_neutral(avatars, renderer, detector, neutral, name):
    _, source = avatars[name]
    ref = neutral[name]
    lm = landmarks(detector, renderer.render(source, preset_state("sad", 0.3)))
    unit = iod(ref)
    assert corners_y(lm) > corners_y(ref) + 0.025 * unit  # corners down (AU15)
    assert inner_brows_y(lm) < inner_brows_y(ref) - 0.025 * unit  # inner brows up (AU1)


def test_sad_raises_and_knits_the_inner_brows(avatars, renderer, detector, neutral):
    closer = []
    for name, (_, source) in avatars.items():
        ref = neutral[name]
        lm = landmarks(detector, renderer.render(source, preset_state("sad", 1.0)))
        unit = iod(ref)
        assert inner_brows_y(lm) < inner_brows_y(ref) - 0.05 * unit, name
        # The worried brow: the inner ends rise more than the outer ones.
        outer_rise = float((lm[17, 1] + lm[26, 1]) - (ref[17, 1] + ref[26, 1])) / 2
        assert inner_brows_y(lm) - inner_brows_y(ref) < outer_rise, name
        assert inner_brow_gap(lm) <= inner_brow_gap(ref), name
        closer.append((inner_brow_gap(ref) - inner_brow_gap(lm)) / unit)
    # Drawn together: dlib's brow fit follows the inner ends only partly (1 px on the astronaut), so on average.
    assert float(np.mean(closer)) > 0.015, closer


@pytest.mark.parametrize("name", PORTRAITS)
def test_happy_lifts_the_corners_and_the_cheeks(avatars, renderer, detector, neutral, name):
    _, source = avatars[name]
    ref = neutral[name]
    lm = landmarks(detector, renderer.render(source, preset_state("happy", 1.0)))
    unit = iod(ref)
    assert corners_y(lm) < corners_y(ref) - 0.05 * unit
    assert (lm[54, 0] - lm[48, 0]) > (ref[54, 0] - ref[48, 0]) + 0.03 * unit  # corners back (wider mouth)


def added_shade(ref: np.ndarray, img: np.ndarray, lm: np.ndarray, side: str) -> float:
    """The light a frame lost beside a side's mouth that its motion does not explain (luma levels, negative:
    darker): ``img`` against ``ref`` carried along the dense flow between them (Farneback), over the patch where
    the nasolabial fold runs (from the corner to 0.18 iod outside it, 0.12-0.42 iod above it; neutral landmarks).
    A warp alone moves the skin's light with it (about 0 here); a drawn fold's shadow stays in the residual."""
    a, b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (ref, img))
    flow = cv2.calcOpticalFlowFarneback(b, a, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    gx, gy = np.meshgrid(np.arange(a.shape[1], dtype=np.float32), np.arange(a.shape[0], dtype=np.float32))
    carried = cv2.remap(a.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR)
    residual = b.astype(np.float32) - carried
    unit = iod(lm)
    corner, out = (54, 1.0) if side == "Left" else (48, -1.0)  # the face's Left is the image's right
    x0, x1 = sorted((lm[corner, 0], lm[corner, 0] + out * 0.18 * unit))
    y0, y1 = lm[corner, 1] - 0.42 * unit, lm[corner, 1] - 0.12 * unit
    return float(residual[int(y0):int(y1), int(x0):int(x1)].mean())


@pytest.mark.parametrize("name", ["s42.jpg", "s7.jpg"])
@pytest.mark.parametrize("side", ["Left", "Right"])
def test_a_smile_draws_the_nasolabial_fold_on_its_own_side(avatars, renderer, name, side):
    """AU6+AU12 lift the cheek into a fold from the nostril wing past the mouth corner. A warp cannot shade it, so a
    smile on smooth skin read as teeth in a stretched mouth: the fold is drawn, a shadow beside the corner on the
    smiling side only (mouthSmileLeft: the face's left), on two portraits whose skin there is smooth."""
    face, source = avatars[name]
    lm = face.crop_landmarks
    other = "Right" if side == "Left" else "Left"
    neutral = renderer.render(source, controls())
    smiled = renderer.render(source, controls(**{f"mouthSmile{side}": 1.0}))
    own, far = added_shade(neutral, smiled, lm, side), added_shade(neutral, smiled, lm, other)
    assert own < -3.0 and own < far - 3.0, (name, side, round(own, 2), round(far, 2))


def forehead_lines(img: np.ndarray, lm: np.ndarray) -> float:
    """How deep the deepest horizontal line across the forehead's middle is (luma levels): a column 0.16 iod wide at
    the midline, from 0.6 to 0.1 iod above the brows (neutral landmarks), each point against the lighter of the
    brightest points above and below it. Smooth skin gives about 0; a fold a dip."""
    unit = iod(lm)
    grey = cv2.GaussianBlur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 0.01 * unit)
    centre, top = (lm[21, 0] + lm[22, 0]) / 2, lm[17:27, 1].min()
    column = grey[:, int(centre - 0.08 * unit):int(centre + 0.08 * unit) + 1].mean(1)
    profile = np.interp(np.linspace(top - 0.6 * unit, top - 0.1 * unit, 60), np.arange(len(column)), column)
    above, below = np.maximum.accumulate(profile), np.maximum.accumulate(profile[::-1])[::-1]
    return float((np.minimum(above, below) - profile).max())


@pytest.mark.parametrize("name", ["s42.jpg", "s7.jpg", "s11.jpg"])
def test_raised_inner_brows_fold_the_forehead(prepared, renderer, name):
    """AU1 folds the forehead's middle into horizontal lines (sad, worry, surprise read by them as much as by the
    brows); a warp moves the skin's light but draws no line, so they are drawn, where the skin is smooth."""
    face, source = prepared(name)
    lm = face.crop_landmarks
    assert forehead_lines(renderer.render(source, controls()), lm) < 2.0
    raised = forehead_lines(renderer.render(source, controls(browInnerUp=1.0)), lm)
    assert raised > 6.0, (name, round(raised, 2))


def test_happy_keeps_the_lips_closed_at_a_third_intensity(avatars, renderer):
    """A faint smile (0.3) is a closed-lip one: its small jaw opening does not part the lips (no interior)."""
    for name in ("s7.jpg", "s42.jpg"):
        face, source = avatars[name]
        out = renderer.render(source, preset_state("happy", 0.3))
        seam = renderer.render(source, preset_state("happy", 0.3, {"jawOpen": 0.0}))  # the same smile, no jaw
        lm = face.crop_landmarks
        x0, y0 = np.floor(lm[48:68].min(0)).astype(int)
        x1, y1 = np.ceil(lm[48:68].max(0)).astype(int)
        mouth = (slice(y0, y1), slice(x0, x1))
        # No dark gap: the lips region is no darker than the closed smile's anywhere by more than JPEG-like noise.
        darker = seam[mouth].astype(np.int16).mean(-1) - out[mouth].astype(np.int16).mean(-1)
        assert (darker > 40).mean() < 0.01, (name, (darker > 40).mean())


@pytest.mark.parametrize("intensity", [0.5, 1.0])
def test_a_half_and_a_full_smile_bare_the_upper_teeth(prepared, renderer, intensity):
    """From half intensity on happy is a broad smile (AU6+AU10+AU12, jaw barely open): the upper teeth show, light
    against the lips, where the closed smile has none (a judge of expressions reads a closed-lip smile as neutral
    on most portraits: bench/bench_expressions.py)."""
    for name in ("s1.jpg", "s7.jpg", "s11.jpg"):
        face, source = prepared(name)
        out = renderer.render(source, preset_state("happy", intensity))
        closed = renderer.render(source, controls(mouthSmile=1.0))
        lm = face.crop_landmarks
        x0, y0 = np.floor(lm[48:68].min(0)).astype(int)
        x1, y1 = np.ceil(lm[48:68].max(0)).astype(int)
        mouth = (slice(y0 - 10, y1), slice(x0, x1))
        lighter = out[mouth].astype(np.int16).mean(-1) - closed[mouth].astype(np.int16).mean(-1)
        teeth = (lighter > 40) & (np.ptp(out[mouth].astype(np.int16), -1) < 80)  # light and not red: teeth
        assert teeth.sum() > 0.03 * (x1 - x0) * (y1 - y0), (name, int(teeth.sum()))


def is_teeth(rgb: np.ndarray) -> np.ndarray:
    """Light, nearly grey pixels: teeth (the lips, even the astronaut's pale ones, and the skin are redder)."""
    value = rgb.astype(np.int16).max(-1)
    return (value > 150) & ((value - rgb.astype(np.int16).min(-1)) < 0.16 * value)


def teeth_pixels(img: np.ndarray, lm: np.ndarray) -> int:
    """Teeth inside the lips' outer contour."""
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lm[48:60]).astype(np.int32)], 1)
    return int(is_teeth(img[mask.astype(bool)]).sum())


@pytest.mark.parametrize("pressed", [{"mouthPress": 0.7}, {"mouthClose": 0.5, "jawOpen": 0.5}, "sad"])
def test_pressed_and_closed_lips_shut_over_the_photos_teeth(avatars, renderer, detector, pressed):
    """A photo's parted lips shut when the lips are pressed (speech's m and b press 0.7, sad presses) or closed
    (ARKit's mouthClose): the lower lip rises to the upper one and the photo's teeth disappear under it."""
    face, source = avatars["astronaut.jpg"]
    state = preset_state("sad", 1.0) if pressed == "sad" else controls(**pressed)
    out = renderer.render(source, state)
    lm = landmarks(detector, out)
    before = teeth_pixels(face.crop, face.crop_landmarks)
    assert teeth_pixels(out, lm) < 0.1 * before, (teeth_pixels(out, lm), before)
    # Where they meet, a dark line, never the thread of teeth the joined warps would leave: down the mouth's
    # middle, between the upper lip's top and the lower lip's bottom, no pixel is teeth.
    x = int(round(lm[62, 0]))
    assert not is_teeth(out[int(lm[51, 1]):int(lm[57, 1]), x - 3:x + 4]).any()


def test_lips_fitted_apart_on_a_shut_mouth_are_left_as_they_are(avatars, renderer, prepared):
    """dlib fits s11's shut lips 0.06 iod apart: the gap shows lip, not teeth or a dark mouth, so a press moves only
    what the press table moves (no lower lip pushed up into the upper one), and the drawn teeth stay the renderer's
    own (no photo teeth to keep)."""
    face, source = prepared("s11.jpg")
    lm = face.crop_landmarks
    assert float(lm[66, 1] - lm[62, 1]) > 0.04 * source.iod  # fitted apart
    assert not source.shut.any() and source.photo_teeth == 0.0
    _, astronaut = avatars["astronaut.jpg"]
    assert astronaut.shut.any() and astronaut.photo_teeth > 0.1 * astronaut.iod


def test_a_frown_takes_a_smiling_photos_smile_back(avatars, renderer, detector, neutral):
    """The astronaut smiles broadly in her photo: a frown first takes that smile back (the corners come in from the
    cheeks as well as down), so sad is not a frown drawn over a smile. Photos that do not smile are left as drawn."""
    face, source = avatars["astronaut.jpg"]
    ref = neutral["astronaut.jpg"]
    lm = landmarks(detector, renderer.render(source, controls(mouthFrown=1.0)))
    unit = iod(ref)
    assert (lm[54, 0] - lm[48, 0]) < (ref[54, 0] - ref[48, 0]) - 0.04 * unit  # narrower: the smile's pull undone
    assert corners_y(lm) > corners_y(ref) + 0.1 * unit  # and down
    assert source.photo_smile > 0.5
    assert avatars["s42.jpg"][1].photo_smile == 0.0 and avatars["s7.jpg"][1].photo_smile == 0.0


@pytest.mark.parametrize("name", PORTRAITS)
def test_surprised_raises_the_brows_and_widens_the_eyes(avatars, renderer, detector, neutral, name):
    _, source = avatars[name]
    ref = neutral[name]
    lm = landmarks(detector, renderer.render(source, preset_state("surprised", 1.0)))
    unit = iod(ref)
    assert float(lm[17:27, 1].mean()) < float(ref[17:27, 1].mean()) - 0.05 * unit
    assert float(lm[57, 1]) > float(ref[57, 1]) + 0.08 * unit  # jaw dropped


@pytest.mark.parametrize("name", ["astronaut.jpg", "s1.jpg", "s42.jpg"])
@pytest.mark.parametrize("side", ["Left", "Right"])
def test_a_wink_closes_one_eye_only(avatars, renderer, detector, neutral, name, side):
    face, source = avatars[name]
    ref = neutral[name]
    out = renderer.render(source, controls(**{f"eyeBlink{side}": 1.0}))
    # The face's left eye is iBUG 42-47 (the image's right for a frontal face).
    closed, open_ = (slice(42, 48), slice(36, 42)) if side == "Left" else (slice(36, 42), slice(42, 48))
    # Pixels: the open eye is untouched, the closed one's centre turned to lid skin.
    lm0 = face.crop_landmarks
    for eye, changed in ((closed, True), (open_, False)):
        x0, y0 = np.floor(lm0[eye].min(0)).astype(int) - 2
        x1, y1 = np.ceil(lm0[eye].max(0)).astype(int) + 2
        moved = np.abs(out[y0:y1, x0:x1].astype(np.int16) - face.crop[y0:y1, x0:x1]).max()
        assert (moved > 40) if changed else (moved == 0), (side, changed, moved)
    # dlib (whose shape model keeps both eyes alike, so it never sees a full wink) still measures it closing.
    lm = landmarks(detector, out)
    assert one_eye(lm[closed]) < 0.85 * one_eye(ref[closed])


@pytest.mark.parametrize("base", [b for b in SIDED if b != "eyeBlink"])
def test_both_sides_make_the_bilateral_control(avatars, renderer, base):
    _, source = avatars["s1.jpg"]
    both = renderer.render(source, controls(**{base: 0.7}))
    sides = renderer.render(source, controls(**{f"{base}Left": 0.7, f"{base}Right": 0.7}))
    assert np.abs(both.astype(np.int16) - sides).max() <= 1
    left = renderer.render(source, controls(**{f"{base}Left": 0.7}))
    right = renderer.render(source, controls(**{f"{base}Right": 0.7}))
    # One side's control moves the face's own side most: the image's right half for Left.
    face = source.face.crop.astype(np.int16)
    mid = int(round(float(source.face.crop_landmarks[27:31, 0].mean())))
    for img, busy in ((left, slice(mid, None)), (right, slice(None, mid))):
        diff = np.abs(img.astype(np.int16) - face).sum(-1)
        quiet = slice(None, mid) if busy.start is not None else slice(mid, None)
        # the lip axis and the press act on the middle of the lips, which both halves share (the midline moves
        # half as much for one side), so one side of them is less lopsided than a smile's or a brow's
        lopsided = 1.3 if base in ("mouthUpperUp", "mouthLowerDown", "mouthPress") else 2.0
        assert diff[:, busy].sum() > lopsided * diff[:, quiet].sum(), base


def test_the_mouth_opening_is_a_lens_not_a_box(avatars, renderer):
    """The drawn interior tapers to the corners: dark rows near a corner are far fewer than in the middle."""
    face, source = avatars["s7.jpg"]
    out = renderer.render(source, controls(jawOpen=1.0)).astype(np.float64)
    lm = face.crop_landmarks
    x_left, x_right = float(lm[60, 0]), float(lm[64, 0])
    y0, y1 = int(lm[51, 1]), int(lm[8, 1])
    lum = out[y0:y1].mean(-1)
    dark = lum < 0.55 * float(face.crop[y0:y1].mean())

    def height(frac: float) -> int:
        return int(dark[:, int(round(x_left + frac * (x_right - x_left)))].sum())

    assert height(0.5) > 0.12 * source.iod
    assert height(0.06) + height(0.94) < 0.75 * 2 * height(0.5)  # a box would be as high at its ends
