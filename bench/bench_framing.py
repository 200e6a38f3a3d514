"""Cost per stream frame of each framing (engine/framing.py): the whole photo vs a framed region around the face.

    python bench/bench_framing.py [--frames 100] [--repeats 5] [portrait ...]

For each portrait (default: s1.jpg 1145x1145, t1.jpg 1280x886 and the astronaut 512x512 of tests/data), one CPU
thread, the offline renderer: the ms per frame of what the frame path does for a stream frame (the renderer's
crop -> the framing's picture -> JPEG quality 90, as engine/frames.py does), and of the framing's own part (paste or
resize, plus JPEG) without the renderer, which is the same for every framing. Median, min and max over the repeats
(this machine is shared: single runs swing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: numpy's BLAS too, before numpy is imported

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_offline import states  # noqa: E402  (bench/ is on sys.path when run)

from engine.codec import encode_jpeg  # noqa: E402
from engine.face.intake import decode_image  # noqa: E402
from engine.face.pasteback import PasteBack  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402
from engine.framing import Views, draw_framed  # noqa: E402
from engine.protocol import FULL, Framing  # noqa: E402
from engine.render.offline import OfflineRenderer  # noqa: E402

DATA = ROOT / "tests" / "data"
FRAMINGS = (FULL, Framing("head", 512, 512), Framing("head", 1280, 720), Framing("face", 512, 512))


def label(framing: Framing) -> str:
    return "full photo" if not framing.reframes else f"{framing.kind} {framing.width}x{framing.height}"


def frame(paste: PasteBack, views: Views, crop: np.ndarray, framing: Framing) -> bytes:
    """What the frame path does after the renderer for one stream frame: the framing's picture, then JPEG."""
    picture = draw_framed(paste, views, crop, framing) if framing.reframes else paste.apply(crop)
    return encode_jpeg(picture, 90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("portraits", nargs="*", type=Path,
                        default=[DATA / "s1.jpg", DATA / "t1.jpg", DATA / "astronaut.jpg"])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    pipeline, renderer = FacePipeline.create(mode="dlib"), OfflineRenderer()
    seq = states(args.frames)
    print(f"ms per stream frame, one thread, offline renderer, JPEG q90; median (min, max) of {args.repeats} runs "
          f"of {args.frames} frames")
    for portrait in args.portraits:
        image = decode_image(portrait.read_bytes())
        face = pipeline.crop(image)
        source, paste, views = renderer.prepare(face), PasteBack(face), Views()
        crops = [renderer.render(source, s) for s in seq]
        print(f"\n{portrait.name} {image.shape[1]}x{image.shape[0]}")
        print(f"  {'framing':<16}{'frame':>8}  {'framing + JPEG':>26}  {'with the renderer':>26}  JPEG kB")
        sizes = {f: len(frame(paste, views, crops[0], f)) for f in FRAMINGS}  # builds each view, as a first frame
        own: dict[Framing, list[float]] = {f: [] for f in FRAMINGS}
        total: dict[Framing, list[float]] = {f: [] for f in FRAMINGS}
        for _ in range(args.repeats):  # the framings take turns, so a load that comes and goes hits them alike
            for framing in FRAMINGS:
                t0 = time.perf_counter()
                for crop in crops:
                    frame(paste, views, crop, framing)
                own[framing].append((time.perf_counter() - t0) * 1000 / len(crops))
                t0 = time.perf_counter()
                for s in seq:
                    frame(paste, views, renderer.render(source, s), framing)
                total[framing].append((time.perf_counter() - t0) * 1000 / len(seq))
        for framing in FRAMINGS:
            shape = draw_framed(paste, views, crops[0], framing).shape if framing.reframes else image.shape
            print(f"  {label(framing):<16}{shape[1]:>4}x{shape[0]:<4} {_figures(own[framing])}  "
                  f"{_figures(total[framing])}  {sizes[framing] / 1000:6.1f}")
    return 0


def _figures(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} ({min(values):6.2f}, {max(values):6.2f})"


if __name__ == "__main__":
    raise SystemExit(main())
