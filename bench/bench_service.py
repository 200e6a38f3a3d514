"""Service figures: HTTP render latency (cache miss and hit) and the engine's per-frame spans while streaming.

Starts a real engine and bridge on loopback (offline renderer unless LP_MODELS_DIR holds weights), then:
  python bench/bench_service.py [--requests 40] [--fps 25] [--seconds 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _services import services  # noqa: E402  (bench/ is on sys.path when run)

from engine.client import EngineClient  # noqa: E402  (after the path line, so the bench runs from a checkout)
from engine.stats import percentile  # noqa: E402

PHOTO = ROOT / "tests" / "data" / "s1.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    with services() as svc:
        cmd, frames, url = svc.command_addr, svc.frame_addr, svc.url
        photo = PHOTO.read_bytes()
        files = {"source_image": ("s1.jpg", photo, "image/jpeg")}
        with httpx.Client(timeout=120) as client:
            client.post(url + "/api/render", files=files, data={"expression": "neutral", "intensity": "0"})
            miss, hit = [], []
            for i in range(args.requests):
                t0 = time.perf_counter()
                r = client.post(url + "/api/render", files=files,
                                data={"expression": "happy", "intensity": f"{(i + 1) / (args.requests + 1):.4f}"})
                miss.append((time.perf_counter() - t0) * 1000)
                assert r.headers["x-cache"] == "miss", r.headers
            for _ in range(args.requests):
                t0 = time.perf_counter()
                r = client.post(url + "/api/render", files=files, data={"expression": "happy", "intensity": "0.5"})
                hit.append((time.perf_counter() - t0) * 1000)
            renderer = r.headers["x-renderer"]
        engine_client = EngineClient(cmd)
        avatar = engine_client.set_source(photo).avatar
        sub = engine_client.subscribe(frames, avatar)
        time.sleep(0.3)
        engine_client.stream(avatar, fps=args.fps)
        arrivals, late = [], 0
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            if (frame := sub.recv(200)) is not None:
                arrivals.append(time.monotonic())
                late = frame.header["late"]
        engine_client.stream(avatar, fps=0)
        health = engine_client.call("health")
        gaps = [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:], strict=False)]
        f = health["frames"]
        print(f"renderer: {renderer}; photo {PHOTO.name}; {os.cpu_count()} CPUs")
        for name, values in (("miss", miss), ("hit ", hit)):
            print(f"HTTP /api/render cache {name}: median {statistics.median(values):7.1f} ms  min {min(values):7.1f}"
                  f"  max {max(values):7.1f}  p95 {percentile(values, 95):7.1f} ms  (n={len(values)})")
        print(f"stream {args.fps:g} fps for {args.seconds:g} s: {len(arrivals)} frames published to us, "
              f"{late} ticks late; inter-arrival median {statistics.median(gaps):.1f} ms min {min(gaps):.1f} "
              f"max {max(gaps):.1f} p95 {percentile(gaps, 95):.1f} ms")
        # the engine's own spans (engine/frames.py): render_ms is the renderer alone; overhead_ms is everything after
        # it on the way out: paste-back (render thread) + JPEG + header + PUB send (publish thread)
        print(f"engine per stream frame: renderer p50 {f['render_ms_p50']} ms p95 {f['render_ms_p95']} ms; "
              f"after the renderer (paste-back + JPEG + PUB send) p50 {f['overhead_ms_p50']} ms "
              f"p95 {f['overhead_ms_p95']} ms; failed {f.get('failed', 0)}")
        engine_client.close()
        sub.close()


if __name__ == "__main__":
    main()
