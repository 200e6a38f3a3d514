"""Derive the LivePortrait control basis from real motion: writes engine/animation/liveportrait_basis.py.

Input: the motion templates (official LivePortrait motion extractor on real video, converted to .npz),
default ../shared/motion_templates or tests/data/motion/templates_exp.npz. Each template's first frame is
its rest pose; a frame's deviation from it is what a real face did. For each control:

1. A *driver*: signed keypoint coordinates the control is known to move (the keypoint roles the reference's
   editors use: 19/20 mouth and jaw, 11/15 upper lids (they move together, r=0.91), 13/16 lower lids,
   14/17/20 mouth corners and lips, 1/2 brows), and the templates that show it.
2. The frames' driver score s (mean of the signed driver coordinates); the direction is the least-squares
   fit of every coordinate in the control's region to s (so co-moving keypoints come along, in proportion),
   with the jaw opening (19.y) as a second regressor so that what moves with the jaw is not credited to s.
3. The amplitude: weight 1.0 is the 95th percentile of s on the templates' frames that move that way.
4. A safety scale: the whole vector shrinks (direction kept) until every coordinate is inside
   SHARE x the per-coordinate range of deviations over all templates.

Controls no template isolates are derived from the ones that are (documented per control in SPECS).
Run: .venv/bin/python tools/derive_motion_basis.py [--templates DIR] [--check]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "engine" / "animation" / "liveportrait_basis.py"
TEMPLATES = ("laugh", "shy", "aggrieved", "open_lip", "wink", "talking", "shake_face")
SHARE = 0.85  # a control at 1.0 uses at most this share of the range real faces produced, per coordinate
AXES = "xyz"


def load_devs(source: Path) -> dict[str, np.ndarray]:
    """Template name -> (N, 21, 3) deviation of exp from the template's first frame."""
    devs = {}
    if source.is_file():
        data = np.load(source)
        for name in TEMPLATES:
            exp = data[name].reshape(-1, 21, 3).astype(np.float64)
            devs[name] = exp - exp[0]
        return devs
    for name in TEMPLATES:
        exp = np.load(source / f"{name}.npz")["exp"].reshape(-1, 21, 3).astype(np.float64)
        devs[name] = exp - exp[0]
    return devs


def real_range(devs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-coordinate (21, 3) min and max of the deviations over every frame of every template."""
    everything = np.concatenate(list(devs.values()))
    return everything.min(0), everything.max(0)


@dataclass(frozen=True)
class Spec:
    drivers: tuple[tuple[int, int, int], ...]  # (keypoint, axis, sign)
    region: tuple[int, ...]  # keypoints the fit may move
    templates: tuple[str, ...]
    why: str


MOUTH = (14, 17, 19, 20)
LIDS = (11, 13, 15, 16)
BROWS = (1, 2)
SPECS: dict[str, Spec] = {
    "jawOpen": Spec(((19, 1, +1),), MOUTH, ("talking", "open_lip", "laugh"),
                    "19.y opening in talking/open_lip/laugh, with the lips that follow it"),
    "mouthSmile": Spec(((14, 1, -1), (20, 1, -1), (13, 1, -1), (16, 1, -1)), (3, 7, 13, 14, 16, 17, 20), ("laugh",),
                       "laugh: mouth corners (14.y) and lower lip (20.y) up, lower lids (13/16.y) raised by cheeks"),
    "eyeBlink": Spec(((11, 1, +1), (15, 1, +1)), LIDS, ("wink", "shy", "talking", "shake_face"),
                     "upper lids 11.y/15.y down (wink, shy's lowered lids, blinks in talking/shake_face)"),
    "browInnerUp": Spec(((1, 1, -1), (2, 1, -1)), BROWS, TEMPLATES,
                        "brows 1/2 raised (y-) wherever a template raises them (talking, aggrieved), with their x"),
    "browDown": Spec(((1, 1, +1), (2, 1, +1)), BROWS, TEMPLATES,
                     "brows 1/2 lowered (y+) (open_lip, aggrieved), with their x"),
}
# Derived from the fitted ones (no template isolates them): name -> (kind, argument, why)
DERIVED = {
    "mouthFrown": "the mirror of mouthSmile's mouth part (14, 17, 20 and 3/7), rescaled to the range",
    "eyeWide": "the mirror of eyeBlink on the upper lids (11.y, 15.y up), rescaled to the smaller upward range",
    "browOuterUp": "browInnerUp's vertical part only (two brow keypoints cannot separate inner from outer), x 0.8",
    "mouthPucker": "talking's 2nd mouth mode with jawOpen projected out, rounding side (opposite the smile)",
    "mouthFunnel": "0.6 mouthPucker + 0.35 jawOpen: lips rounded and parted",
    "gazeX": "11.x and 15.x together: a small shift of the eyeball keypoints (the templates barely move them)",
    "gazeY": "0.3 eyeBlink's upper-lid part for looking down (shy lowers lids with its gaze); mirrored for up",
}


def fit(spec: Spec, devs: dict[str, np.ndarray]) -> np.ndarray:
    frames = np.concatenate([devs[n] for n in spec.templates])  # (N, 21, 3)
    score = np.mean([sign * frames[:, kp, ax] for kp, ax, sign in spec.drivers], axis=0)
    moving = score > 0
    region = np.zeros((21, 3), bool)
    region[list(spec.region)] = True
    flat = frames.reshape(len(frames), -1)[moving]
    # Multiple regression (through the origin: rest is 0) on the driver score and, unless the driver is the
    # jaw itself, the jaw opening (19.y): a laugh opens the mouth while it smiles, and only the part that moves
    # with the smile, not with the jaw, belongs to the smile.
    design = [score[moving]]
    if (19, 1) not in {(kp, ax) for kp, ax, _ in spec.drivers}:
        design.append(frames[moving][:, 19, 1])
    design_matrix = np.stack(design, axis=1)
    coef, *_ = np.linalg.lstsq(design_matrix, flat, rcond=None)
    direction = coef[0].reshape(21, 3) * region
    amplitude = float(np.percentile(score[moving], 95))
    return direction * amplitude


def to_range(vector: np.ndarray, lo: np.ndarray, hi: np.ndarray, share: float = SHARE) -> np.ndarray:
    """Shrink the whole vector (direction kept) until each coordinate is within share x the real range."""
    limit = np.where(vector >= 0, hi, -lo) * share
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.abs(vector) > 1e-9, np.abs(vector) / np.maximum(limit, 1e-12), 0.0)
    worst = float(ratio.max())
    return vector / worst if worst > 1.0 else vector


def derive(devs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    lo, hi = real_range(devs)
    basis = {name: to_range(fit(spec, devs), lo, hi) for name, spec in SPECS.items()}
    # Drop coordinates too small to matter (keeps the table readable, below 2% of the largest).
    for name, vec in basis.items():
        basis[name] = np.where(np.abs(vec) >= 0.02 * np.abs(vec).max(), vec, 0.0)

    mouth_part = np.zeros((21, 3))
    mouth_part[[3, 7, 14, 17, 20]] = basis["mouthSmile"][[3, 7, 14, 17, 20]]
    basis["mouthFrown"] = to_range(-mouth_part * 4.0, lo, hi)  # x4 then shrink: as large as the range allows
    lids = np.zeros((21, 3))
    lids[[11, 15], 1] = basis["eyeBlink"][[11, 15], 1]
    basis["eyeWide"] = to_range(-lids * 4.0, lo, hi)
    vertical = np.zeros((21, 3))
    vertical[:, 1] = basis["browInnerUp"][:, 1]
    basis["browOuterUp"] = to_range(vertical * 0.8, lo, hi)

    # Pucker: talking's mouth deviations with the jaw direction projected out; first principal direction.
    talk = devs["talking"].reshape(len(devs["talking"]), -1)
    mask = np.zeros((21, 3), bool)
    mask[list(MOUTH)] = True
    talk = talk * mask.reshape(-1)
    jaw = basis["jawOpen"].reshape(-1)
    jaw_unit = jaw / np.linalg.norm(jaw)
    residual = talk - np.outer(talk @ jaw_unit, jaw_unit)
    _, _, vt = np.linalg.svd(residual - residual.mean(0), full_matrices=False)
    mode = vt[0]
    smile_unit = basis["mouthSmile"].reshape(-1) * mask.reshape(-1)
    if mode @ smile_unit > 0:  # rounding is the side opposite the smile's spread
        mode = -mode
    proj = residual @ mode
    pucker = mode * float(np.percentile(proj[proj > 0], 95))
    pucker = pucker.reshape(21, 3)
    pucker = np.where(np.abs(pucker) >= 0.05 * np.abs(pucker).max(), pucker, 0.0)
    basis["mouthPucker"] = to_range(pucker, lo, hi)
    basis["mouthFunnel"] = to_range(0.6 * basis["mouthPucker"] + 0.35 * basis["jawOpen"], lo, hi)

    # Gaze is signed (-1..1): the vector is the +1 end and must fit both ways, so fit it to the symmetric range.
    sym_lo, sym_hi = -np.minimum(-lo, hi), np.minimum(-lo, hi)
    gaze_x = np.zeros((21, 3))
    gaze_x[[11, 15], 0] = 1.0
    basis["gazeX"] = to_range(gaze_x, sym_lo, sym_hi, 0.8)
    basis["gazeY"] = to_range(-0.3 * lids, sym_lo, sym_hi)
    return {name: basis[name].astype(np.float32) for name in ORDER}


ORDER = ("mouthSmile", "mouthFrown", "browInnerUp", "browOuterUp", "browDown", "eyeBlink", "eyeWide", "jawOpen",
         "mouthPucker", "mouthFunnel", "gazeX", "gazeY")


def render_module(basis: dict[str, np.ndarray], lo: np.ndarray, hi: np.ndarray) -> str:
    why = {name: spec.why for name, spec in SPECS.items()} | DERIVED
    lines = [
        '"""GENERATED by tools/derive_motion_basis.py from the real motion templates; do not edit by hand.',
        "",
        "BASIS: control -> ((keypoint, axis, delta at weight 1.0), ...) on LivePortrait's 21x3 expression keypoints",
        "(axis 0 x, 1 y (down +), 2 z). RANGE_LO/RANGE_HI: per-coordinate min/max deviation from rest over every",
        "frame of every template (what real faces produced). See the tool's docstring for the method.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"SHARE = {SHARE}",
        "",
        "BASIS: dict[str, tuple[tuple[int, int, float], ...]] = {",
    ]
    for name in ORDER:
        vec = basis[name]
        lines.append(f"    # {why[name]}")
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
    default = ROOT.parent / "shared" / "motion_templates"
    if not default.exists():
        default = ROOT / "tests" / "data" / "motion" / "templates_exp.npz"
    parser.add_argument("--templates", type=Path, default=default)
    parser.add_argument("--check", action="store_true", help="fail if the committed table differs")
    parser.add_argument("--export-tests", action="store_true",
                        help="also write tests/data/motion/templates_exp.npz (exp arrays only)")
    args = parser.parse_args(argv)
    devs = load_devs(args.templates)
    lo, hi = real_range(devs)
    text = render_module(derive(devs), lo, hi)
    if args.export_tests:
        out = ROOT / "tests" / "data" / "motion" / "templates_exp.npz"
        out.parent.mkdir(parents=True, exist_ok=True)
        arrays = {n: np.load(args.templates / f"{n}.npz")["exp"].astype(np.float32) for n in TEMPLATES}
        np.savez_compressed(out, **arrays)
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print("basis up to date" if same else "basis differs from the templates' derivation")
        return 0 if same else 1
    OUT.write_text(text)
    for name, vec in derive(devs).items():
        top = sorted(((abs(v), kp, ax, v) for (kp, ax), v in np.ndenumerate(vec) if v), reverse=True)[:4]
        print(f"{name:12s}", " ".join(f"{kp}.{AXES[ax]}:{v:+.4f}" for _, kp, ax, v in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
