"""JPEG encoders side by side on real frames: the numbers behind engine/codec.py's choice.

  python bench/bench_codec.py [--quality 90] [--repeat 50]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from engine.codec import encode_jpeg
from engine.face.intake import decode_image, limit_size

ROOT = Path(__file__).resolve().parents[1]


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    photo = limit_size(decode_image((ROOT / "tests/data/s1.jpg").read_bytes()))
    frames = {"512 crop": np.ascontiguousarray(cv2.resize(photo, (512, 512))),
              f"{photo.shape[1]}x{photo.shape[0]}": photo}
    q = args.quality

    def pil(rgb: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, format="JPEG", quality=q)
        return out.getvalue()

    encoders: dict[str, Callable[[np.ndarray], bytes]] = {
        "engine.codec (simplejpeg, fastdct, 4:2:0)": lambda rgb: encode_jpeg(rgb, q),
        "simplejpeg default": lambda rgb: simplejpeg.encode_jpeg(rgb, quality=q),
        "opencv imencode": lambda rgb: cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                                    [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes(),
        "pillow": pil,
    }
    print(f"JPEG q{q}, one thread, median of {args.repeat}")
    for size, rgb in frames.items():
        for name, enc in encoders.items():
            ms = median_ms(lambda enc=enc, rgb=rgb: enc(rgb), args.repeat)
            print(f"  {size:>10}  {name:<44} {ms:6.2f} ms  {len(enc(rgb)) / 1024:6.1f} KiB")


if __name__ == "__main__":
    main()
