"""Derive the LivePortrait control basis from real motion: writes engine/render/liveportrait/basis.py.

Input: the twelve motion templates (LivePortrait's motion extractors on real video, as .npz), default
tests/data/motion (byte copies of ../shared/motion_templates). d1 d2 d5 d7 d8 come from the HUMAN extractor and
decide the directions wherever they show a control; the other seven (most likely the animals-mode extractor) add
a smile and a sad face that no human clip shows. A delta is a frame minus its clip's rest frame
(frame 0; talking: the still, closed tail 63..99, as in ../shared/reference/expressions.md section 4).

Per control (evidence in SOURCES, docs/animation.md):
- jawOpen: regression of the lip keypoints on 19.y in the human speech clips d5 and d8; only couplings with the
  same sign in both clips are kept, at the smaller of the two sizes; 1.0 is 19.y +0.075 (speech p95).
- eyeBlink{Right,Left}: per eye, regression of that eye's keypoints (11, 13 for eye A; 15, 16 for eye B) on its
  landmark open ratio over all human clips (the other eye's ratio and the jaw as nuisance regressors); 1.0 closes a
  median resting eye (the clips' median open ratio) to 0. eyeWide: the same slopes, +0.15 of ratio (d7's big eyes).
- brows: regression on 2.y with the lids and the jaw as nuisance regressors (blinks drag the brows down).
- mouthSmile: the laugh plateau with the jaw keypoint (19) left out. mouthFrown, mouthShrugLower, browDown: the
  aggrieved plateau's mouth corners, lip press and brows (human brow fit for browDown's direction).
Each vector is finally shrunk (direction kept) until every coordinate is inside SHARE x the union of the human and
animal per-coordinate delta ranges, and inside the human clips' own range. Sided controls: eyes have one keypoint
set per eye; mouth and brows have no per-side keypoints, so a side is half the bilateral vector plus a sideways
pull of the mouth (SIDE_PULL).
Run: .venv/bin/python tools/derive_motion_basis.py [--templates DIR] [--check]
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "engine" / "render" / "liveportrait" / "basis.py"
HUMAN = ("d1", "d2", "d5", "d7", "d8")
ANIMAL = ("laugh", "aggrieved", "shy", "open_lip", "wink", "talking", "shake_face")
SHARE = 0.85  # a control at 1.0 uses at most this share of the range real faces produced, per coordinate
JAW_AT_ONE = 0.075  # 19.y at jawOpen 1.0: between laugh's plateau (0.064) and speech's p95 (0.078..0.085)
WIDE_RATIO = 0.15  # eyeWide 1.0 opens the lids by this much eye ratio (d7: 0.41 median, 0.57 max)
BROW_UP_2Y = -0.015  # 2.y at brow raise 1.0 (human range reaches -0.023)
# Eye A (keypoints 11, 13) is the face's own RIGHT eye (image left). Evidence: closing eye A alone pulls the mouth
# (19.x, 20.x) toward -x, closing eye B toward +x (eye_ratio_slopes_AB); a winking face pulls its mouth toward the
# winking eye. The project's 68-point analogue (iBUG 36-41, image left) says the same. Not verified on a render.
EYE_A_SIDE = "Right"
SIDE_PULL = 0.004  # 19.x / 20.x shift toward the side of a one-sided mouth control at 1.0 (wink: 19.x -0.007)
AXES = "xyz"
ORDER = ("mouthSmile", "mouthFrown", "mouthShrugLower", "browInnerUp", "browOuterUp", "browDown", "eyeBlink",
         "eyeWide", "jawOpen", "mouthPucker", "mouthFunnel", "mouthUpperUp", "mouthLowerDown", "mouthPress",
         "mouthRollLower", "mouthStretch", "gazeX", "gazeY", "mouthX", "jawX")
SIGNED = ("gazeX", "gazeY", "mouthX", "jawX")  # -1..1 controls: both ends inside the real range
# ARKit names no human clip shows (no cheek, nose, dimple, upper-lip roll or shrug, jaw thrust or tongue motion in
# d1..d8): LivePortrait does not draw them (docs/animation.md); mouthClose is drawn by motion_map (it takes its
# weight off jawOpen: the lower lip and the jaw are one keypoint there).
UNDRAWN = ("cheekSquint", "noseSneer", "mouthDimple", "cheekPuff", "mouthRollUpper", "mouthShrugUpper",
           "jawForward", "tongueOut")
SIDED = ("mouthSmile", "mouthFrown", "browOuterUp", "browDown", "eyeBlink", "eyeWide", "mouthUpperUp",
         "mouthLowerDown", "mouthPress", "mouthStretch")  # with a basis of their own; the other sided ones are UNDRAWN
SPEECH = ("d5", "d8")  # the human clips that talk
UPPER_UP_20Y = -0.015  # 20.y at mouthUpperUp 1.0: laugh's upper-lip lift (-0.014); the human range reaches -0.031
LOWER_DOWN_SHARE = 0.35  # mouthLowerDown 1.0 = this share of jawOpen: LivePortrait has one lower lip/jaw keypoint
SOURCES = {
    "mouthSmile": "laugh plateau (frames 13..43) without keypoint 19 (the jaw): corners 14.y up, upper lip 20.y up, "
                  "lower lids 13/16.y pushed up by the cheeks (AU6+AU12)",
    "mouthFrown": "aggrieved plateau's mouth corners (14.x, 14.y down, AU15), x2",
    "mouthShrugLower": "aggrieved plateau's lip press / chin raise (17, 19, 20 on y and z; 19.y up, AU17), x1.5",
    "browInnerUp": "human brow raise (2.y -, 1.y +, net of blinks and jaw) with the human knit (1.x +, 2.x -) at 30%:"
                   " inner brows up and together (AU1)",
    "browOuterUp": "human brow raise, vertical part only (AU2; two brow keypoints cannot split inner from outer)",
    "browDown": "human brow lowering (2.y +, knit 1.x +, 2.x -, net of blinks and jaw; agrees with aggrieved), AU4",
    "eyeBlink": "per-eye human fit on the landmark open ratio: a median resting eye closed",
    "eyeWide": "per-eye human fit on the open ratio, upper lids only: +0.15 of ratio",
    "jawOpen": "human speech d5, d8: couplings of 14, 17, 19, 20 on 19.y with one sign in both clips, smaller size",
    "mouthPucker": "talking's second mouth mode with the jaw projected out, on the side opposite the smile",
    "mouthFunnel": "0.6 mouthPucker + 0.35 jawOpen: lips rounded and parted",
    "mouthUpperUp": "human speech d5, d8: regression of 14, 17, 20 on 20.y with 19.y (the jaw) held, 20.y at -0.015",
    "mouthLowerDown": "0.35 x jawOpen: 19 is both the lower lip and the jaw in LivePortrait (no keypoint of its own);"
                      " hand-set share, the offline renderer draws the lip apart from the chin",
    "mouthPress": "human speech d5, d8: the 5% of frames with the most closed lips (lowest landmark lip ratio) against"
                  " the clip's rest, keypoints 14, 17, 19, 20: lips pushed shut past rest",
    "mouthRollLower": "0.6 x mouthPress: no clip shows f/v apart from other closures; the lower lip up and in is the"
                      " closure's direction (hand-set share)",
    "mouthStretch": "human speech d5, d8: first mouth mode with the jaw projected out, on the smile's side (spread)",
    "gazeX": "11.x and 15.x together, 80% of the smaller of their human/animal ranges (2x the old size)",
    "gazeY": "upper lids 11.y/15.y up for looking up (the gaze editors' term), 80% of the symmetric range",
    "mouthX": "both lips sideways (ARKit mouthLeft/Right): 19.x and 20.x together, 80% of the human clips' symmetric"
              " range of each (d5, d8 talk with the mouth shifted sideways both ways)",
    "jawX": "the jaw sideways (ARKit jawLeft/Right): 19.x (the lower lip and jaw keypoint) alone, 80% of the human"
            " clips' symmetric range",
}


def load(source: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name in HUMAN + ANIMAL:
        with np.load(source / f"{name}.npz", allow_pickle=False) as data:
            out[name] = {k: data[k] for k in data.files}
    return out


def deltas(clips: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Clip -> (N, 21, 3) exp minus the clip's rest frame."""
    devs = {}
    for name, clip in clips.items():
        exp = clip["exp"].reshape(-1, 21, 3).astype(np.float64)
        rest = exp[63:100].mean(0) if name == "talking" else exp[0]
        devs[name] = exp - rest
    return devs


def union_range(devs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    everything = np.concatenate(list(devs.values()))
    return everything.min(0), everything.max(0)


def regress(frames: np.ndarray, regressors: list[np.ndarray]) -> np.ndarray:
    """(21, 3) change per unit of the first regressor, the others held (least squares with an intercept)."""
    design = np.stack([*regressors, np.ones(len(frames))], axis=1)
    coef, *_ = np.linalg.lstsq(design, frames.reshape(len(frames), -1), rcond=None)
    return coef[0].reshape(21, 3)


def only(vector: np.ndarray, keypoints: tuple[int, ...], axes: tuple[int, ...] = (0, 1, 2)) -> np.ndarray:
    out = np.zeros((21, 3))
    for kp in keypoints:
        for ax in axes:
            out[kp, ax] = vector[kp, ax]
    return out


def to_range(vector: np.ndarray, lo: np.ndarray, hi: np.ndarray, share: float = SHARE) -> np.ndarray:
    """Shrink the whole vector (direction kept) until each coordinate is within share x the real range."""
    limit = np.where(vector >= 0, hi, -lo) * share
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.abs(vector) > 1e-9, np.abs(vector) / np.maximum(limit, 1e-12), 0.0)
    worst = float(ratio.max())
    return vector / worst if worst > 1.0 else vector


def tidy(vector: np.ndarray, floor: float = 0.03) -> np.ndarray:
    """Drop coordinates below floor x the largest (fit noise) and anything on the never-moving keypoints."""
    vector = np.where(np.abs(vector) >= floor * np.abs(vector).max(), vector, 0.0)
    vector[[6, 8, 9, 12, 18]] = 0.0
    return vector


def plateau(dev: np.ndarray, frames: tuple[int, int]) -> np.ndarray:
    return dev[frames[0]:frames[1] + 1].mean(0)


def eye_parts(clips: dict, devs: dict) -> dict[str, np.ndarray]:
    """Per-eye blink and widen vectors from the human clips' landmark open ratios."""
    frames = np.concatenate([devs[n] for n in HUMAN])
    ratios = np.concatenate([clips[n]["c_eyes"].astype(np.float64) for n in HUMAN])
    jaw = frames[:, 19, 1]
    rest_ratio = np.median(np.concatenate([clips[n]["c_eyes"][0] for n in HUMAN]))
    out = {}
    for eye, (own, other, kps) in {"A": (0, 1, (11, 13)), "B": (1, 0, (15, 16))}.items():
        slope = regress(frames, [ratios[:, own], ratios[:, other], jaw])  # per unit of open ratio
        out[f"blink{eye}"] = tidy(only(-slope * rest_ratio, kps, (0, 1)), 0.05)
        out[f"wide{eye}"] = only(slope * WIDE_RATIO, kps, (1,))
    return out


def brow_parts(devs: dict) -> tuple[np.ndarray, np.ndarray]:
    """(raise, lower) brow vectors per unit of 2.y, from the human clips with lids and jaw held."""
    frames = np.concatenate([devs[n] for n in HUMAN])
    lids = (frames[:, 11, 1] + frames[:, 15, 1]) / 2
    fits = []
    for mask in (frames[:, 2, 1] < 0, frames[:, 2, 1] > 0):
        f = frames[mask]
        fits.append(only(regress(f, [f[:, 2, 1], lids[mask], f[:, 19, 1]]), (1, 2), (0, 1)))
    return fits[0], fits[1]


def jaw_part(devs: dict) -> np.ndarray:
    fits = [regress(devs[n], [devs[n][:, 19, 1]]) * JAW_AT_ONE for n in ("d5", "d8")]
    same = np.sign(fits[0]) == np.sign(fits[1])
    size = np.minimum(np.abs(fits[0]), np.abs(fits[1]))
    vec = only(np.where(same, np.sign(fits[0]) * size, 0.0), (14, 17, 19, 20))
    vec[19, 1] = JAW_AT_ONE
    return tidy(vec, 0.04)


def derive(clips: dict) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    devs = deltas(clips)
    lo, hi = union_range(devs)
    basis: dict[str, np.ndarray] = {}
    laugh = plateau(devs["laugh"], (13, 43))
    basis["mouthSmile"] = tidy(only(laugh, (13, 14, 16, 17, 20)))
    sad = plateau(devs["aggrieved"], (11, 31))
    basis["mouthFrown"] = only(sad, (14,), (0, 1)) * 2.0
    basis["mouthShrugLower"] = tidy(only(sad, (17, 19, 20), (1, 2)) * 1.5)
    raise_, lower = brow_parts(devs)
    up = raise_ * (BROW_UP_2Y / raise_[2, 1])
    up[1, 1] = abs(up[1, 1]) if up[1, 1] else 0.0  # net of blinks 1.y rises with the brows (editors: 1.y +)
    knit = only(lower, (1, 2), (0,)) * (BROW_UP_2Y / -lower[2, 1])
    basis["browOuterUp"] = only(up, (1, 2), (1,))
    basis["browInnerUp"] = only(up, (1, 2), (1,)) * 0.8 + knit * 0.3
    basis["browDown"] = lower * (0.012 / lower[2, 1])
    eyes = eye_parts(clips, devs)
    basis["eyeBlink"] = eyes["blinkA"] + eyes["blinkB"]
    basis["eyeWide"] = eyes["wideA"] + eyes["wideB"]
    basis["jawOpen"] = jaw_part(devs)
    basis["mouthPucker"] = pucker(devs, basis)
    basis["mouthFunnel"] = 0.6 * basis["mouthPucker"] + 0.35 * basis["jawOpen"]
    speech_parts(clips, devs, basis)
    sym_lo, sym_hi = -np.minimum(-lo, hi), np.minimum(-lo, hi)
    gaze_x = np.zeros((21, 3))
    gaze_x[[11, 15], 0] = 1.0
    basis["gazeX"] = to_range(gaze_x, sym_lo, sym_hi, 0.8)
    gaze_y = np.zeros((21, 3))
    gaze_y[[11, 15], 1] = -1.0
    basis["gazeY"] = to_range(gaze_y, sym_lo, sym_hi, 0.8) * 0.6
    human_lo, human_hi = union_range({n: devs[n] for n in HUMAN})
    h_sym_lo, h_sym_hi = -np.minimum(-human_lo, human_hi), np.minimum(-human_lo, human_hi)
    both_lo, both_hi = np.maximum(sym_lo, h_sym_lo), np.minimum(sym_hi, h_sym_hi)
    for name, kps in (("mouthX", (19, 20)), ("jawX", (19,))):
        vec = np.zeros((21, 3))
        vec[list(kps), 0] = float(min(both_hi[k, 0] for k in kps))
        basis[name] = to_range(vec, both_lo, both_hi, 0.8)
    for name in ORDER:
        if name not in SIGNED:
            basis[name] = to_range(basis[name], lo, hi)
        # and every control at 1.0 inside the human clips' own range (signed ones: both ends)
        h_lo, h_hi = (h_sym_lo, h_sym_hi) if name in SIGNED else (human_lo, human_hi)
        basis[name] = to_range(basis[name], h_lo, h_hi, 1.0)
    # one side each: eyes have their own keypoints, the rest is half the bilateral vector plus a sideways pull
    a_side, b_side = EYE_A_SIDE, "Left" if EYE_A_SIDE == "Right" else "Right"
    scale_blink = basis["eyeBlink"].max() / max((eyes["blinkA"] + eyes["blinkB"]).max(), 1e-12)
    for base, part in (("eyeBlink", "blink"), ("eyeWide", "wide")):
        bilateral = eyes[f"{part}A"] + eyes[f"{part}B"]
        gain = np.abs(basis[base]).max() / np.abs(bilateral).max() if base == "eyeWide" else scale_blink
        basis[base + a_side] = eyes[f"{part}A"] * gain
        basis[base + b_side] = eyes[f"{part}B"] * gain
    for base in ("mouthSmile", "mouthFrown", "browOuterUp", "browDown", "mouthUpperUp", "mouthLowerDown",
                 "mouthPress", "mouthStretch"):
        for side, sign in (("Left", +1.0), ("Right", -1.0)):  # the face's left is image right (+x)
            vec = basis[base] * 0.5
            if base.startswith("mouth"):
                vec[[19, 20], 0] += sign * SIDE_PULL
            basis[base + side] = to_range(vec, lo, hi)
    return {k: v.astype(np.float32) for k, v in basis.items()}, lo, hi


def speech_parts(clips: dict, devs: dict, basis: dict[str, np.ndarray]) -> None:
    """The speech shapes (docs/speech.md) from the human speech clips, where they show them."""
    frames = np.concatenate([devs[n] for n in SPEECH])
    up = regress(frames, [frames[:, 20, 1], frames[:, 19, 1]])
    basis["mouthUpperUp"] = tidy(only(up * (UPPER_UP_20Y / up[20, 1]), (14, 17, 20)), 0.05)
    basis["mouthLowerDown"] = basis["jawOpen"] * LOWER_DOWN_SHARE
    lip = np.concatenate([clips[n]["c_lip"][:, 0].astype(np.float64) - clips[n]["c_lip"][0, 0] for n in SPEECH])
    shut = frames[np.argsort(lip)[: max(3, int(0.05 * len(lip)))]].mean(0)
    basis["mouthPress"] = tidy(only(shut, (14, 17, 19, 20)), 0.05)
    basis["mouthRollLower"] = 0.6 * basis["mouthPress"]
    mask = np.zeros((21, 3), bool)
    mask[[14, 17, 19, 20]] = True
    flat = frames.reshape(len(frames), -1) * mask.reshape(-1)
    jaw = basis["jawOpen"].reshape(-1)
    jaw_unit = jaw / np.linalg.norm(jaw)
    residual = flat - np.outer(flat @ jaw_unit, jaw_unit)
    _, _, vt = np.linalg.svd(residual - residual.mean(0), full_matrices=False)
    mode = vt[0] if vt[0] @ (basis["mouthSmile"].reshape(-1) * mask.reshape(-1)) > 0 else -vt[0]
    proj = residual @ mode
    basis["mouthStretch"] = tidy((mode * float(np.percentile(proj[proj > 0], 95))).reshape(21, 3), 0.05)


def pucker(devs: dict, basis: dict[str, np.ndarray]) -> np.ndarray:
    """Talking's mouth motion with the jaw direction projected out: first principal direction, rounding side."""
    talk = devs["talking"].reshape(len(devs["talking"]), -1)
    mask = np.zeros((21, 3), bool)
    mask[[14, 17, 19, 20]] = True
    talk = talk * mask.reshape(-1)
    jaw = basis["jawOpen"].reshape(-1)
    jaw_unit = jaw / np.linalg.norm(jaw)
    residual = talk - np.outer(talk @ jaw_unit, jaw_unit)
    _, _, vt = np.linalg.svd(residual - residual.mean(0), full_matrices=False)
    mode = vt[0]
    if mode @ (basis["mouthSmile"].reshape(-1) * mask.reshape(-1)) > 0:
        mode = -mode
    proj = residual @ mode
    return tidy((mode * float(np.percentile(proj[proj > 0], 95))).reshape(21, 3), 0.05)


def names() -> tuple[str, ...]:
    return ORDER + tuple(f"{b}{s}" for b in SIDED for s in ("Left", "Right"))


def render_module(basis: dict[str, np.ndarray], lo: np.ndarray, hi: np.ndarray) -> str:
    lines = [
        '"""GENERATED by tools/derive_motion_basis.py from the real motion templates; do not edit by hand.',
        "",
        "BASIS: control -> ((keypoint, axis, delta at weight 1.0), ...) on LivePortrait's 21x3 expression keypoints",
        "(axis 0 x (image right +), 1 y (down +), 2 z). RANGE_LO/RANGE_HI: per-coordinate min/max deviation from rest",
        "over every frame of the human and animal templates (what real faces produced). Method: the tool's docstring.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"SHARE = {SHARE}",
        "# controls LivePortrait does not draw: no human clip shows their motion (tools/derive_motion_basis.py)",
        "UNDRAWN: tuple[str, ...] = (",
        *(f"    {line}" for line in textwrap.wrap(" ".join(f'"{n}",' for n in UNDRAWN), 110)),
        ")",
        f'EYE_A_SIDE = "{EYE_A_SIDE}"  # keypoints 11/13 are this side of the face (the face\'s own side)',
        "",
        "BASIS: dict[str, tuple[tuple[int, int, float], ...]] = {",
    ]
    for name in names():
        vec = basis[name]
        base = next((b for b in SIDED if name != b and name.startswith(b)), name)
        note = SOURCES[base] if base == name else f"{name}: one side of {base}"
        lines.extend(f"    # {part}" for part in textwrap.wrap(note, 110))
        entries = [(kp, ax, float(vec[kp, ax])) for kp in range(21) for ax in range(3) if abs(vec[kp, ax]) >= 1e-6]
        lines.append(f'    "{name}": (')
        for kp, ax, val in entries:
            lines.append(f"        ({kp}, {ax}, {val:.6f}),")
        lines.append("    ),")
    lines.append("}")
    for label, arr in (("RANGE_LO", lo), ("RANGE_HI", hi)):
        lines.append("")
        lines.append(f"{label}: tuple[tuple[float, float, float], ...] = (")
        for row in arr:
            lines.append("    (" + ", ".join(f"{v:.6f}" for v in row) + "),")
        lines.append(")")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # tests/data/motion holds byte copies of ../shared/motion_templates, so the table is reproducible from the repo
    parser.add_argument("--templates", type=Path, default=ROOT / "tests" / "data" / "motion")
    parser.add_argument("--check", action="store_true", help="fail if the committed table differs")
    args = parser.parse_args(argv)
    basis, lo, hi = derive(load(args.templates))
    text = render_module(basis, lo, hi)
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print("basis up to date" if same else "basis differs from the templates' derivation")
        return 0 if same else 1
    OUT.write_text(text)
    for name in names():
        vec = basis[name]
        top = sorted(((abs(v), kp, ax, v) for (kp, ax), v in np.ndenumerate(vec) if v), reverse=True)[:5]
        print(f"{name:18s}", " ".join(f"{kp}.{AXES[ax]}:{v:+.4f}" for _, kp, ax, v in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
