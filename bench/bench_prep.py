"""What each step of preparing an upload costs, and whether it holds the GIL: the measurement behind engine/prep.py.

    python bench/bench_prep.py [--repeat 3]

Each step runs on a thread of this process while a second thread sleeps 2 ms at a time and records how late it
wakes: a step that releases the GIL (or lets the interpreter switch every 5 ms) leaves the ticker on time; one that
holds it shows up as a late tick as long as the hold. A third column is the same ticker in a *separate* process,
run at the same time: the machine's own scheduling noise, so a loaded machine is not mistaken for a GIL hold. Then
the same upload through the prep process (engine/prep.py), as the engine now does it.
Prints per step: ms (median, min, max over --repeat runs), this process's worst tick delay, the other process's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import pickle
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.face.detect_dlib import DlibDetector  # noqa: E402
from engine.face.intake import decode_image, limit_size  # noqa: E402
from engine.face.pasteback import PasteBack  # noqa: E402
from engine.face.pipeline import FacePipeline, make_crop  # noqa: E402
from engine.prep import PrepConfig, PrepPool  # noqa: E402
from engine.render.offline import OfflineRenderer  # noqa: E402
from tests.service.conftest import DATA  # noqa: E402
from tests.service.live import faceless_png, upscaled_portrait  # noqa: E402


class Ticker:
    """Sleeps 2 ms at a time on a thread; ``worst`` is the largest delay beyond the 2 ms (ms)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            time.sleep(0.002)
            self.delays.append((time.perf_counter() - t - 0.002) * 1000)

    def __enter__(self) -> Ticker:
        self._thread.start()
        time.sleep(0.02)
        self.delays.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def worst(self) -> float:
        return max(self.delays, default=0.0)


def _outside(conn: mp.connection.Connection) -> None:
    """The noise floor: the same ticker in a process of its own, reporting its worst delay per window."""
    while True:
        if conn.recv() is None:
            return
        with Ticker() as t:
            conn.recv()
        conn.send(t.worst)


def measure(name: str, fn: Callable[[], object], repeat: int, noise: mp.connection.Connection) -> object:
    times, worst, floor = [], [], []
    result = None
    for _ in range(repeat):
        noise.send(True)
        with Ticker() as ticker:
            started = time.perf_counter()
            result = fn()
            times.append((time.perf_counter() - started) * 1000)
        noise.send(True)
        floor.append(noise.recv())
        worst.append(ticker.worst)
    print(f"{name:44s} {statistics.median(times):8.1f} ms ({min(times):.0f}-{max(times):.0f})   "
          f"tick late here {statistics.median(worst):7.1f} ms (max {max(worst):.0f})   "
          f"other process {statistics.median(floor):6.1f} ms (max {max(floor):.0f})", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_outside, args=(there,), daemon=True)
    proc.start()
    r = args.repeat
    print("the machine is shared: read each row against its 'other process' column (scheduling noise)")
    pipeline = FacePipeline.create(None, "dlib")
    detector = pipeline.detector
    assert isinstance(detector, DlibDetector)
    renderer = OfflineRenderer("bench")
    uploads = {"s1.jpg (1144x1144 JPEG)": (DATA / "s1.jpg").read_bytes(),
               "s10.jpg (turned face: HOG misses, CNN finds)": (DATA / "s10.jpg").read_bytes(),
               "6000x6000 portrait JPEG": upscaled_portrait(DATA / "s3.jpg", 6000),
               "36 MP faceless PNG": faceless_png(36.0)}
    for label, data in uploads.items():
        print(f"-- {label}: {len(data) / 1e6:.1f} MB")
        image = measure("  decode (intake)", lambda d=data: decode_image(d), r, here)
        small = measure("  limit_size (to 1280)", lambda i=image: limit_size(i), r, here)
        faces = measure("  dlib HOG + 68-point fit", lambda s=small: detector._detect_hog(s), r, here)
        if not faces and detector._cnn is not None:
            faces = measure("  dlib CNN (HOG found none) + fit", lambda s=small: detector._detect_cnn(s), r, here)
        if faces:
            face = measure("  crop (make_crop)", lambda s=small, f=faces[0]: make_crop(s, f), r, here)
            source = measure("  offline renderer prepare", lambda f=face: renderer.prepare(f), r, here)
            measure("  paste-back set-up", lambda f=face: PasteBack(f), r, here)
            blob = pickle.dumps((face, source), protocol=5)
            measure(f"  unpickle the result ({len(blob) / 1e6:.0f} MB)", lambda b=blob: pickle.loads(b), r, here)
    pool = PrepPool(PrepConfig(None, "dlib", 20_000_000, 40_000_000, "offline"))
    pool.start()
    pool.wait_ready()
    print("-- through the prep process (the engine's path now): only the wait and the unpickling are here")
    for label, data in uploads.items():
        def through(d: bytes = data) -> object:
            try:
                return pool.prepare(d).result(300)
            except Exception as exc:
                return exc

        measure(f"  {label[:40]}", through, r, here)
    pool.stop()
    here.send(None)
    proc.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
