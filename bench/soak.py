"""Soak: a real engine and bridge under the load of a busy day, for as long as you like; prints per minute whether
memory levels off at the cache bounds, the streams keep their ticks and the replies stay quick.

    python bench/soak.py [--minutes 60] [--fps 25]

Load (all bounded, loopback only):
- three avatars streaming at ``--fps``, each frame's arrival, seq and jawOpen watched on a SUB socket;
- a live ``speak`` (2 s of espeak-ng speech) every 2 s, to each avatar in turn; ``set_expression`` every second;
  ``health`` every 0.5 s (the reply times printed are these: speak, expression, health);
- an HTTP ``POST /api/render`` every second with a new portrait (a test portrait flipped, cropped and re-encoded
  with a counter in its pixels, so every upload misses both caches and goes through the prep process);
- an HTTP ``POST /api/speak`` clip (8 s) every 30 s.

Per minute: RSS of the engine, of its prep process(es) and of the bridge; the source and frame caches' bytes
(against their bounds); frames received, seq gaps, the largest frame gap and late ticks; reply latency
percentiles; HTTP status counts. A healthy run: RSS flat once the caches are full, no seq gap, no 5xx.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.client import EngineClient  # noqa: E402
from engine.stats import percentile  # noqa: E402
from tests.service.conftest import DATA, free_port  # noqa: E402
from tests.service.live import FrameWatcher, rss_mb, speech_wav, stop_processes  # noqa: E402

PORTRAITS = ("s1.jpg", "s3.jpg", "s5.jpg", "astronaut.jpg", "s42.jpg", "t1.jpg")


def start(tmp: Path, engine_args: list[str]) -> tuple[subprocess.Popen, subprocess.Popen, str, str, str]:
    cmd, frames, port = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}", free_port()
    env = {**os.environ, "LP_MODELS_DIR": os.environ.get("LP_MODELS_DIR", str(tmp / "models")),
           "LP_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    with open(tmp / "engine.log", "ab") as elog, open(tmp / "bridge.log", "ab") as blog:
        engine = subprocess.Popen([sys.executable, "-m", "engine", "--command-addr", cmd, "--frame-addr", frames,
                                   *engine_args],
                                  cwd=ROOT, env=env, stdout=elog, stderr=subprocess.STDOUT)
        bridge = subprocess.Popen([sys.executable, "-m", "bridge", "--port", str(port), "--engine-addr", cmd],
                                  cwd=ROOT, env=env, stdout=blog, stderr=subprocess.STDOUT)
    return engine, bridge, cmd, frames, f"http://127.0.0.1:{port}"


def new_portrait(n: int, rng: random.Random) -> bytes:
    """A portrait no cache has seen: a test photo, maybe mirrored, cropped a little, with ``n`` in a corner."""
    img = Image.open(DATA / rng.choice(PORTRAITS)).convert("RGB")
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    w, h = img.size
    dx, dy = rng.randint(0, w // 20), rng.randint(0, h // 20)
    arr = np.array(img.crop((dx, dy, w - rng.randint(0, w // 20), h - rng.randint(0, h // 20))))
    arr[:4, :32] = np.frombuffer(n.to_bytes(8, "little") * 48, np.uint8)[: 4 * 32 * 3].reshape(4, 32, 3)
    out = io.BytesIO()
    Image.fromarray(arr).save(out, format="JPEG", quality=rng.randint(80, 92))
    return out.getvalue()


class HttpLoad:
    """A render every second and a clip every 30 s, each on its own thread; status counts and latencies."""

    def __init__(self, url: str, clip_wav: bytes, stop: threading.Event) -> None:
        self.url, self.clip_wav, self.stop = url, clip_wav, stop
        self.codes: Counter[str] = Counter()
        self.render_ms: list[float] = []
        self.clip_s: list[float] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._renders, daemon=True),
                        threading.Thread(target=self._clips, daemon=True)]
        for t in self.threads:
            t.start()

    def _renders(self) -> None:
        rng, n = random.Random(11), 0
        with httpx.Client(timeout=120) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                n += 1
                try:
                    r = http.post(self.url + "/api/render", files={"source_image": ("p.jpg", new_portrait(n, rng))},
                                  data={"expression": rng.choice(["happy", "neutral", "surprised"])})
                    code = str(r.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                with self.lock:
                    self.codes[f"render {code}"] += 1
                    self.render_ms.append((time.monotonic() - started) * 1000)
                self.stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def _clips(self) -> None:
        with httpx.Client(timeout=300) as http:
            while not self.stop.wait(30.0):
                started = time.monotonic()
                try:
                    r = http.post(self.url + "/api/speak", files={
                        "source_image": ("p.jpg", (DATA / "s3.jpg").read_bytes()),
                        "audio": ("a.wav", self.clip_wav, "audio/wav")})
                    code = str(r.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                with self.lock:
                    self.codes[f"clip {code}"] += 1
                    self.clip_s.append(time.monotonic() - started)

    def take(self) -> tuple[Counter[str], list[float], list[float]]:
        with self.lock:
            out = (self.codes, self.render_ms, self.clip_s)
            self.codes, self.render_ms, self.clip_s = Counter(), [], []
            return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--avatars", type=int, default=3)
    ap.add_argument("--frame-cache-mb", type=float, help="the engine's frame cache bound (default: the engine's)")
    ap.add_argument("--source-cache-mb", type=float, help="the engine's avatar cache bound (default: the engine's)")
    args = ap.parse_args()
    # kill / a scheduler's SIGTERM (and Ctrl-C in a background job, where SIGINT is ignored) still stops the children
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    engine_args = [*(["--frame-cache-mb", str(args.frame_cache_mb)] if args.frame_cache_mb else []),
                   *(["--source-cache-mb", str(args.source_cache_mb)] if args.source_cache_mb else [])]
    tmp = Path(os.environ.get("SOAK_DIR", ROOT / ".bench" / "soak"))
    tmp.mkdir(parents=True, exist_ok=True)
    engine, bridge, cmd, frames_addr, url = start(tmp, engine_args)
    stop = threading.Event()
    client = EngineClient(cmd, timeout_ms=30_000, retries=0)
    watcher = FrameWatcher(frames_addr)
    load = None
    try:
        deadline = time.monotonic() + 120
        while True:
            assert engine.poll() is None and bridge.poll() is None, "engine or bridge exited at start"
            try:
                if client.request({"v": 1, "cmd": "health"}, timeout_ms=1000).get("status") == "ok":
                    break
            except Exception:
                client.close()
                client = EngineClient(cmd, timeout_ms=30_000, retries=0)
            assert time.monotonic() < deadline, "engine not ready in 120 s"
            time.sleep(0.3)
        avatars = []
        for name in PORTRAITS[: args.avatars]:
            reply = client.request({"v": 1, "cmd": "set_source", "image": (DATA / name).read_bytes()})
            assert reply["ok"], reply
            avatars.append(reply["avatar"])
            client.request({"v": 1, "cmd": "stream", "avatar": reply["avatar"], "fps": args.fps})
        live_wav, clip_wav = speech_wav(2.0), speech_wav(8.0)
        load = HttpLoad(url, clip_wav, stop)
        rtt: dict[str, list[float]] = {"speak": [], "set_expression": [], "health": []}
        codes: Counter[str] = Counter()
        start_t = time.monotonic()
        end_t = start_t + args.minutes * 60
        next_speak = next_expr = next_health = start_t
        minute, next_print = 0, start_t + 60
        health: dict = {}
        seen = {a: 0 for a in avatars}
        late_before = {a: 0 for a in avatars}
        rng = random.Random(5)
        print(f"soak: {args.avatars} avatars at {args.fps:g} fps for {args.minutes:g} min; engine pid {engine.pid}, "
              f"bridge pid {bridge.pid}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start",
              flush=True)
        print("min | RSS MB engine/prep/bridge | cache MB sources/frames (bound) | frames seq_gaps max_gap_ms late "
              "| speak / expr / health ms p50 p99 max | http", flush=True)
        while (now := time.monotonic()) < end_t and engine.poll() is None:
            if now >= next_speak:
                aid = avatars[int((now - start_t) / 2) % len(avatars)]
                message = {"v": 1, "cmd": "speak", "avatar": aid, "audio": live_wav, "format": "wav"}
                next_speak += 2.0
            elif now >= next_expr:
                message = {"v": 1, "cmd": "set_expression", "avatar": rng.choice(avatars),
                           "expression": rng.choice(["happy", "neutral", "sad", "surprised"]), "intensity": 0.8}
                next_expr += 1.0
            elif now >= next_health:
                message = {"v": 1, "cmd": "health"}
                next_health += 0.5
            else:
                time.sleep(min(next_speak, next_expr, next_health, next_print) - now)
                message = None
            if message is not None:
                sent = time.monotonic()
                reply = client.request(message)
                rtt[message["cmd"]].append((time.monotonic() - sent) * 1000)
                codes[message["cmd"] + (" ok" if reply.get("ok") else " " + reply["error"]["code"])] += 1
                if message["cmd"] == "health":
                    health = reply
            if time.monotonic() >= next_print:
                minute += 1
                next_print += 60
                prep = sum(rss_mb(c) for c in health.get("prep", {}).get("pids", []))
                caches = health.get("caches", {})
                src, frm = caches.get("sources", {}), caches.get("frames", {})
                got, gaps, worst, late = 0, 0, 0.0, 0
                for aid in avatars:
                    log = watcher.log(aid)
                    got += len(log.arrivals) - seen[aid]
                    gaps += log.seq_gaps()
                    worst = max(worst, log.max_gap(since=next_print - 120))  # the minute just ended
                    stream_late = int(health.get("streams", {}).get(aid, {}).get("late", 0))
                    late += stream_late - late_before[aid]
                    late_before[aid] = stream_late
                    seen[aid] = len(log.arrivals)
                http_codes, render_ms, clip_s = load.take()
                lat = " / ".join(f"{percentile(v, 50):.0f} {percentile(v, 99):.0f} {max(v, default=0):.0f}"
                                 for v in rtt.values())
                print(f"{minute:3d} | {rss_mb(engine.pid):6.0f} {prep:5.0f} {rss_mb(bridge.pid):5.0f} | "
                      f"{src.get('bytes', 0) / 2**20:5.0f} {frm.get('bytes', 0) / 2**20:4.0f} "
                      f"({src.get('max_bytes', 0) / 2**20:.0f} / {frm.get('max_bytes', 0) / 2**20:.0f}) | "
                      f"{got:5d} {gaps:3d} {worst * 1000:5.0f} {late:5d} | {lat} | "
                      f"{dict(sorted(http_codes.items()))} render p50 {percentile(render_ms, 50):.0f} ms, "
                      f"clips {[round(s, 1) for s in clip_s]} s; zmq {dict(sorted(codes.items()))}", flush=True)
                rtt = {k: [] for k in rtt}
                codes = Counter()
        alive = engine.poll() is None and bridge.poll() is None
        print(f"done: engine and bridge alive {alive}; status {health.get('status')}, dead threads "
              f"{health.get('dead_threads', [])}, prep {health.get('prep')}, frames {health.get('frames')}", flush=True)
        return 0 if alive else 1
    finally:
        stop.set()
        if load is not None:
            for t in load.threads:
                t.join(60)
        watcher.close()
        client.close()
        stop_processes(bridge, engine)


if __name__ == "__main__":
    sys.exit(main())
