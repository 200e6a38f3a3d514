"""Reply latency and frame gaps of a live engine while uploads, renders and a long talking clip run: the tight
figures behind tests/service/test_never_freeze.py (issue 16).

    python bench/bench_latency.py [--rounds 2] [--baseline-root DIR]

Each run starts an engine and a bridge from a source tree, streams two avatars at 25 fps, and sends ``health``,
``set_expression`` and ``clear`` round-robin every 50 ms on one socket while three phases run:
  quiet    10 s of nothing else (the machine's own noise);
  uploads  the cat, the coffee cup, the three-quarter view, a 6000x6000 portrait and a 36 MP faceless PNG, each
           as ZMQ ``set_source`` then HTTP ``/api/render`` (one byte more, so it is prepared again);
  clip     a 40 s ``/api/speak`` clip over HTTP, with a live ``speak`` (2 s of speech) every 3 s beside it; the
           mouth's delay is the time from a speech's start to the first frame with jawOpen > 0.1 reaching us.
Per phase: reply ms (p50 / p99 / max) per command, the largest frame gap and the p99 gap per stream, late ticks.
With ``--baseline-root`` (e.g. an extract of main: ``git archive main | tar -x -C /tmp/main``) the runs alternate
baseline / this tree, ``--rounds`` times each, and the figures are printed per run. The machine is shared: say so.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.client import EngineClient  # noqa: E402
from engine.stats import percentile  # noqa: E402
from tests.service.conftest import DATA, free_port  # noqa: E402
from tests.service.live import (  # noqa: E402
    FrameWatcher,
    faceless_png,
    speak_over_raw_http,
    speech_wav,
    stop_processes,
    upscaled_portrait,
)

FPS = 25.0


@dataclass
class Rtts:
    by_cmd: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # cmd -> (sent, ms)

    def window(self, cmd: str, t0: float, t1: float) -> list[float]:
        return [ms for at, ms in self.by_cmd.get(cmd, []) if t0 <= at <= t1]


class Cycler:
    """health, set_expression, clear in turn every 50 ms on one socket."""

    def __init__(self, addr: str, avatar: str) -> None:
        self.client = EngineClient(addr, timeout_ms=30_000, retries=0)
        self.avatar = avatar
        self.rtts = Rtts()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        messages = [{"v": 1, "cmd": "health"},
                    {"v": 1, "cmd": "set_expression", "avatar": self.avatar, "expression": "happy", "intensity": 0.6},
                    {"v": 1, "cmd": "clear", "avatar": self.avatar}]
        i = 0
        while not self._stop.is_set():
            message = messages[i % len(messages)]
            i += 1
            sent = time.monotonic()
            self.client.request(message)
            self.rtts.by_cmd.setdefault(message["cmd"], []).append((sent, (time.monotonic() - sent) * 1000))
            self._stop.wait(max(0.0, 0.05 - (time.monotonic() - sent)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()


def fmt(values: list[float]) -> str:
    if not values:
        return "   -"
    return f"{percentile(values, 50):6.1f} {percentile(values, 99):7.1f} {max(values, default=0):7.1f}"


def run_once(root: Path, label: str, uploads: list[tuple[str, bytes]], clip_wav: bytes, live_wav: bytes) -> None:
    cmd, frames, port = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}", free_port()
    env = {**os.environ, "LP_MODELS_DIR": "/nonexistent", "LP_LOG_LEVEL": "WARNING", "PYTHONPATH": str(root)}
    engine = subprocess.Popen([sys.executable, "-m", "engine", "--command-addr", cmd, "--frame-addr", frames],
                              cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bridge = subprocess.Popen([sys.executable, "-m", "bridge", "--port", str(port), "--engine-addr", cmd],
                              cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watcher = FrameWatcher(frames)
    client = EngineClient(cmd, timeout_ms=180_000, retries=0)
    cycler = None
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if EngineClient(cmd, timeout_ms=1000, retries=0).request({"v": 1, "cmd": "health"})["status"] == "ok":
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.5)
        for _ in range(100):  # the bridge's port
            try:
                httpx.get(f"http://127.0.0.1:{port}/expressions", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        avatars = []
        for name in ("s1.jpg", "astronaut.jpg"):
            avatars.append(client.request({"v": 1, "cmd": "set_source", "image": (DATA / name).read_bytes()})["avatar"])
            client.request({"v": 1, "cmd": "stream", "avatar": avatars[-1], "fps": FPS})
        time.sleep(2.0)
        cycler = Cycler(cmd, avatars[1])
        phases: dict[str, tuple[float, float]] = {}
        t0 = time.monotonic()
        time.sleep(10.0)
        phases["quiet"] = (t0, time.monotonic())
        t0 = time.monotonic()
        codes = []
        with httpx.Client(timeout=300) as http:
            for _name, data in uploads:
                reply = client.request({"v": 1, "cmd": "set_source", "image": data})
                codes.append("ok" if reply["ok"] else reply["error"]["code"])
                r = http.post(f"http://127.0.0.1:{port}/api/render", files={"source_image": ("u", data + b"\0")})
                codes.append(str(r.status_code))
        phases["uploads"] = (t0, time.monotonic())
        t0 = time.monotonic()
        sock = speak_over_raw_http(port, (DATA / "s5.jpg").read_bytes(), clip_wav)
        speaks, mouth = [], []
        time.sleep(3.0)
        for _ in range(5):
            sent = time.monotonic()
            reply = client.request({"v": 1, "cmd": "speak", "avatar": avatars[0], "audio": live_wav, "format": "wav"})
            speaks.append((time.monotonic() - sent) * 1000)
            time.sleep(3.0)
            log = watcher.log(avatars[0])
            moved = [arr for arr, ts, jaw in zip(log.arrivals, log.ts, log.jaw, strict=True)
                     if ts >= reply["start"] and jaw > 0.1]
            mouth.append((moved[0] - reply["start"]) * 1000 if moved else float("inf"))
        sock.close()
        phases["clip"] = (t0, time.monotonic())
        print(f"[{label}] upload answers {codes}", flush=True)
        print(f"[{label}] phase    | health p50 p99 max     | set_expression         | clear                  | "
              "frame gap max / p99 (ms) per stream | late ticks", flush=True)
        for phase, (a, b) in phases.items():
            gaps = []
            for aid in avatars:
                times = [t for t in watcher.log(aid).arrivals if a <= t <= b]
                steps = [(y - x) * 1000 for x, y in zip(times, times[1:], strict=False)]
                gaps.append(f"{max(steps, default=0):5.0f} / {percentile(steps, 99):4.0f}")
            r = cycler.rtts
            print(f"[{label}] {phase:8s} | {fmt(r.window('health', a, b))} | {fmt(r.window('set_expression', a, b))} "
                  f"| {fmt(r.window('clear', a, b))} | {'  '.join(gaps)} |", flush=True)
        print(f"[{label}] live speak during the clip: reply ms {[round(s) for s in speaks]}; mouth moved after "
              f"{[round(m) for m in mouth]} ms (speech start -> first open-jaw frame received)", flush=True)
    finally:
        if cycler is not None:
            cycler.close()
        watcher.close()
        client.close()
        stop_processes(bridge, engine)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--baseline-root", type=Path)
    args = ap.parse_args()
    uploads = [("cat", (DATA / "chelsea.jpg").read_bytes()), ("coffee", (DATA / "coffee.jpg").read_bytes()),
               ("s10", (DATA / "s10.jpg").read_bytes()), ("6000px", upscaled_portrait(DATA / "s3.jpg", 6000)),
               ("36MP", faceless_png(36.0))]
    clip_wav, live_wav = speech_wav(40.0), speech_wav(2.0)
    print(f"load average at start: {os.getloadavg()} on {os.cpu_count()} cores (a shared machine)", flush=True)
    for i in range(args.rounds):
        if args.baseline_root is not None:
            run_once(args.baseline_root, f"baseline {i + 1}", uploads, clip_wav, live_wav)
        run_once(ROOT, f"this tree {i + 1}", uploads, clip_wav, live_wav)
    print(f"load average at end: {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
