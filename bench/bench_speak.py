"""Speech on the running service: latency from a `speak` reply to the first PUB frame whose mouth moves (the frame
header's jawOpen), frames on time at 25 and 30 fps while speaking (late ticks), and `POST /api/speak` wall time for
a 5 s WAV on the offline renderer. Starts its own engine and bridge on free ports; espeak-ng makes the speech.

    python bench/bench_speak.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _services import services  # noqa: E402  (bench/ is on sys.path when run)

from engine.client import EngineClient  # noqa: E402

PHOTO = ROOT / "tests" / "data" / "s1.jpg"
SENTENCE = "Hello, my mom bought a puppy. Please be happy."
MOVING = 0.05  # jawOpen above this: the mouth has visibly opened


def espeak(text: str, speed: int = 140) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-s", str(speed), "-w", str(out), text], check=True,
                       capture_output=True)
        return out.read_bytes()


def figures(values: list[float], unit: str) -> str:
    return (f"median {statistics.median(values):.2f} {unit}, min {min(values):.2f}, max {max(values):.2f} "
            f"(n={len(values)})")


def mouth_latency(engine: EngineClient, frame_addr: str, avatar: str, wav: bytes, runs: int) -> list[float]:
    """ms from the speak reply (client clock) to the receipt of the first frame with the mouth open."""
    out = []
    engine.call("stream", avatar=avatar, fps=25)
    with engine.subscribe(frame_addr, avatar) as sub:
        for _ in range(runs):
            engine.call("clear", avatar=avatar)
            time.sleep(0.6)
            while sub.recv(timeout_ms=0) is not None:
                pass
            engine.call("speak", avatar=avatar, audio=wav)
            replied = time.monotonic()
            while True:
                frame = sub.recv(timeout_ms=3000)
                if frame is None:
                    break
                if frame.header.get("jawOpen", 0.0) > MOVING:
                    out.append((time.monotonic() - replied) * 1000)
                    break
    engine.call("clear", avatar=avatar)
    return out


def late_while_speaking(engine: EngineClient, frame_addr: str, avatar: str, wav: bytes, fps: float) -> tuple[int, int]:
    """(frames received, ticks skipped) over one utterance streamed at ``fps``."""
    engine.call("stream", avatar=avatar, fps=fps)
    with engine.subscribe(frame_addr, avatar) as sub:
        sub.recv(timeout_ms=3000)
        reply = engine.call("speak", avatar=avatar, audio=wav)
        first = last = None
        received = 0
        deadline = time.monotonic() + reply["duration"] + 0.5
        while time.monotonic() < deadline:
            frame = sub.recv(timeout_ms=1000)
            if frame is None:
                continue
            received += 1
            first = frame.header if first is None else first
            last = frame.header
    engine.call("stream", avatar=avatar, fps=0)
    late = (last["late"] - first["late"]) if first and last else -1
    return received, late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with services() as svc:
        cmd, frames, url = svc.command_addr, svc.frame_addr, svc.url
        sentence = espeak(SENTENCE)
        five = espeak(SENTENCE + " " + SENTENCE, speed=225)  # ~5 s
        with EngineClient(cmd, timeout_ms=30_000, retries=0) as engine:
            avatar = engine.set_source(PHOTO.read_bytes()).avatar
            print(f"renderer: {engine.call('health')['renderer']}")
            lat = mouth_latency(engine, frames, avatar, sentence, args.runs)
            print(f"speak reply -> first PUB frame with jawOpen > {MOVING} (25 fps): {figures(lat, 'ms')}")
            for fps in (25.0, 30.0):
                received, late = late_while_speaking(engine, frames, avatar, sentence, fps)
                print(f"streaming at {fps:g} fps while speaking: {received} frames received, {late} late ticks")
        files = {"source_image": ("s1.jpg", PHOTO.read_bytes(), "image/jpeg"), "audio": ("five.wav", five)}
        walls = []
        with httpx.Client(timeout=600) as client:
            for _ in range(args.runs):
                t0 = time.perf_counter()
                r = client.post(url + "/api/speak", files=files)
                walls.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
        print(f"POST /api/speak, {float(r.headers['X-Duration']):.2f} s WAV at 25 fps "
              f"({r.headers['X-Frames']} frames, {len(r.content) / 1e3:.0f} kB): {figures(walls, 's')}")


if __name__ == "__main__":
    main()
