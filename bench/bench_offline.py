"""Frames per second of the offline renderer on one CPU thread (JPEG excluded).

    python bench/bench_offline.py [--frames 300] [--repeats 5] [portrait]

Prints the prepare time, fps for the 512x512 crop over a cycle of changing states (presets, sided controls, blink,
a wink, talking mouth, head motion; each frame a new state, so no cache helps), and fps at the full photo size with
paste-back when engine/face/pasteback.py is present: median, min and max over the repeats (this machine is shared,
so single runs swing 2x).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: numpy's BLAS too, before numpy is imported

import cv2  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.animation.controls import NEUTRAL  # noqa: E402
from engine.animation.state import AnimationState  # noqa: E402
from engine.face.intake import decode_image  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402
from engine.render.offline import OfflineRenderer  # noqa: E402


def states(n: int) -> list[AnimationState]:
    """A busy animation: every frame differs and most controls are non-zero at once."""
    out = []
    for i in range(n):
        t = i / 30.0
        c = dict(NEUTRAL)
        c["mouthSmile"] = 0.5 + 0.5 * math.sin(t * 0.7)
        c["browInnerUp"] = 0.5 + 0.5 * math.sin(t * 0.9)
        c["browOuterUp"] = 0.5 + 0.5 * math.sin(t * 1.1)
        c["eyeBlink"] = max(0.0, math.sin(t * 2.0)) ** 8
        c["eyeWide"] = 0.3 + 0.3 * math.sin(t * 0.5)
        c["jawOpen"] = 0.5 + 0.5 * math.sin(t * 9.0)
        c["mouthFunnel"] = 0.2 + 0.2 * math.sin(t * 5.0)
        c["headYaw"] = 8.0 * math.sin(t * 0.8)
        c["headPitch"] = 5.0 * math.sin(t * 0.6)
        c["headRoll"] = 4.0 * math.sin(t * 0.4)
        c["gazeX"] = 0.5 * math.sin(t * 0.3)
        c["gazeY"] = 0.3 * math.sin(t * 0.35)
        c["mouthSmileLeft"] = 0.3 + 0.3 * math.sin(t * 0.45)
        c["browDownRight"] = 0.2 + 0.2 * math.sin(t * 0.55)
        c["eyeBlinkLeft"] = max(0.0, math.sin(t * 0.7)) ** 16
        out.append(AnimationState("bench", 1.0, c))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("portrait", nargs="?", type=Path, default=ROOT / "tests" / "data" / "s1.jpg")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)

    image = decode_image(args.portrait.read_bytes())
    face = FacePipeline.create(mode="dlib").crop(image)
    renderer = OfflineRenderer()
    prepares = []
    for _ in range(max(1, min(args.repeats, 3))):
        t0 = time.perf_counter()
        source = renderer.prepare(face)
        prepares.append((time.perf_counter() - t0) * 1000)
    print(f"portrait {args.portrait.name} {image.shape[1]}x{image.shape[0]}, cv2 threads {cv2.getNumThreads()}")
    print(f"prepare: {_figures(prepares, 'ms')}, field box {source.box}")

    seq = states(args.frames)
    for s in seq[:10]:  # warm up
        renderer.render(source, s)
    fps = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for s in seq:
            renderer.render(source, s)
        fps.append(args.frames / (time.perf_counter() - t0))
    print(f"render 512x512 fps: {_figures(fps, 'fps')}")

    try:
        from engine.face.pasteback import PasteBack
    except ImportError:
        print("paste-back: engine/face/pasteback.py not present, skipped")
        return 0
    paste = PasteBack(face)
    fps = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for s in seq:
            paste.apply(renderer.render(source, s))
        fps.append(args.frames / (time.perf_counter() - t0))
    print(f"render + paste-back {image.shape[1]}x{image.shape[0]} fps: {_figures(fps, 'fps')}")
    return 0


def _figures(values: list[float], unit: str) -> str:
    return (f"median {statistics.median(values):.1f} {unit} (min {min(values):.1f}, max {max(values):.1f}, "
            f"{len(values)} runs)")


if __name__ == "__main__":
    raise SystemExit(main())
