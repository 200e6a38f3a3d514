"""Face pipeline timings: ms per photo for detect + landmarks + crop, ms per frame for paste-back.

Offline path: dlib on the test portraits. Production path: the ONNX runner on look-alike graphs with the official
names and shapes (tests/face/face_lookalike.py): it times our pre- and post-processing (letterbox, warps, decoding,
NMS, crop), not the real networks, which never reach this machine. Paste-back: our bbox-only blend against the
reference's whole-frame warp and blend. Prints medians; run ``python bench/bench_face.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "face"))

from engine.face.intake import decode_image, limit_size  # noqa: E402
from engine.face.pasteback import PasteBack, feather_mask  # noqa: E402
from engine.face.pipeline import FacePipeline  # noqa: E402

DATA = ROOT / "tests" / "data"
PORTRAITS = ["s42.jpg", "astronaut.jpg", "s6.jpg", "s1.jpg", "t1.jpg"]


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def reference_pasteback(image: np.ndarray, m_c2o: np.ndarray, crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The reference's per-frame work: warp the crop to the whole photo, blend the whole photo."""
    h, w = image.shape[:2]
    warped = cv2.warpAffine(crop, m_c2o[:2], (w, h)).astype(np.float32)
    return np.clip(mask * warped + (1 - mask) * image, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    images = {name: limit_size(decode_image((DATA / name).read_bytes())) for name in PORTRAITS}

    print(f"detect + landmarks + crop, ms per photo (median of {args.repeat})")
    dlib = FacePipeline.create(mode="dlib")
    import face_lookalike as lookalike

    with tempfile.TemporaryDirectory() as tmp:
        models = lookalike.write_models(Path(tmp), [lookalike.Plant(16, 10, 12, 1, 0.9, (3, 4, 5, 6))])
        onnx = FacePipeline.create(models, mode="onnx")
        for name, image in images.items():
            h, w = image.shape[:2]
            off = median_ms(lambda image=image: dlib.crop(image), args.repeat)
            prod = median_ms(lambda image=image: onnx.crop(image), args.repeat)
            print(f"  {name:14s} {w:5d}x{h:<5d} offline (dlib) {off:7.1f}   "
                  f"production runner on look-alike graphs {prod:6.1f}")

    print(f"paste-back, ms per frame (median of {args.repeat})")
    for name in ["s42.jpg", "s1.jpg", "t1.jpg"]:
        face = dlib.crop(images[name])
        h, w = face.image.shape[:2]
        build = median_ms(lambda face=face: PasteBack(face), max(3, args.repeat // 3))
        paste = PasteBack(face)
        rng = np.random.default_rng(0)
        crop = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
        buf = np.empty_like(face.image)
        ours = median_ms(lambda paste=paste, crop=crop: paste.apply(crop), args.repeat)
        ours_buf = median_ms(lambda paste=paste, crop=crop, buf=buf: paste.apply(crop, out=buf), args.repeat)
        region = median_ms(lambda paste=paste, crop=crop: paste.blend_region(crop), args.repeat)
        mask = cv2.warpAffine(feather_mask(), face.M_c2o[:2], (w, h)).astype(np.float32)[..., None] / 255
        ref = median_ms(lambda face=face, crop=crop, mask=mask: reference_pasteback(face.image, face.M_c2o, crop, mask),
                        args.repeat)
        x0, y0, x1, y1 = paste.bbox
        print(f"  {name:8s} photo {w:4d}x{h:<4d} bbox {x1 - x0:4d}x{y1 - y0:<4d}: apply {ours:6.2f}  "
              f"(reused buffer {ours_buf:6.2f}, bbox region only {region:6.2f}), reference whole frame {ref:6.2f}, "
              f"once per avatar {build:6.2f}")


if __name__ == "__main__":
    main()
