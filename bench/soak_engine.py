"""Soak: a real engine under a stream, renders, control changes and hostile messages for a while; prints whether
memory stays flat, every command is answered and the stream keeps its rate.

    python bench/soak_engine.py [--seconds 180] [--fps 25]

Prints RSS (start, median, max, end), frames received vs ticks, command round trips (median, min, max) and the
reply codes. A healthy run: RSS end within a few MB of its median, no `internal`, frames + late = ticks.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.service.test_engine_fuzz import hostile_values, message  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def call(sock: zmq.Socket, raw: bytes | list[bytes]) -> dict:
    sock.send_multipart(raw if isinstance(raw, list) else [b"", raw])
    if not sock.poll(30_000):
        raise TimeoutError("no reply in 30 s")
    return msgpack.unpackb(sock.recv_multipart()[-1], raw=False, strict_map_key=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--fps", type=float, default=25.0)
    args = ap.parse_args()
    cmd, frames = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "LP_MODELS_DIR": os.environ.get("LP_MODELS_DIR", "/nonexistent"), "LP_LOG_LEVEL": "WARNING"}
    engine = subprocess.Popen([sys.executable, "-m", "engine", "--command-addr", cmd, "--frame-addr", frames],
                              cwd=ROOT, env=env)
    ctx = zmq.Context.instance()
    dealer, sub = ctx.socket(zmq.DEALER), ctx.socket(zmq.SUB)
    for sock in (dealer, sub):
        sock.setsockopt(zmq.LINGER, 0)
    dealer.connect(cmd)
    sub.connect(frames)
    sub.subscribe(b"frame.")
    try:
        while call(dealer, msgpack.packb({"v": 1, "cmd": "health"})).get("status") != "ok":
            time.sleep(0.3)
        call(dealer, msgpack.packb({"v": 1, "cmd": "stream", "avatar": "default", "fps": args.fps}))
        rng = random.Random(7)
        values = hostile_values(rng)
        rss, rtts, codes, received, late = [], [], {}, 0, 0
        start = time.monotonic()
        next_sample = start
        while (now := time.monotonic()) - start < args.seconds:
            while sub.poll(0):
                _, header, _ = sub.recv_multipart()
                received, late = received + 1, msgpack.unpackb(header)["late"]
            if now >= next_sample:
                rss.append(rss_mb(engine.pid))
                next_sample += 5.0
            pick = rng.random()
            if pick < 0.2:
                raw = msgpack.packb({"v": 1, "cmd": "render", "avatar": "default", "expression": "happy",
                                     "intensity": round(rng.random(), 2), "output": "crop"})
            elif pick < 0.5:
                raw = msgpack.packb({"v": 1, "cmd": "set_controls", "avatar": "default",
                                     "controls": {"jawOpen": round(rng.random(), 2)}})
            else:
                raw = message(rng, values)
                if b"stream" in (raw if isinstance(raw, bytes) else b""):
                    continue  # keep the one stream at its rate
            t0 = time.perf_counter()
            reply = call(dealer, raw)
            rtts.append((time.perf_counter() - t0) * 1000)
            code = "ok" if reply.get("ok") else reply["error"]["code"]
            codes[code] = codes.get(code, 0) + 1
            time.sleep(0.01)
        elapsed = time.monotonic() - start
        health = call(dealer, msgpack.packb({"v": 1, "cmd": "health"}))
        rss.append(rss_mb(engine.pid))
        print(f"soak {elapsed:.0f} s, stream {args.fps:g} fps, {len(rtts)} commands, engine alive "
              f"{engine.poll() is None}, status {health.get('status')}, dead threads {health.get('dead_threads', [])}")
        print(f"RSS MB: start {rss[0]:.0f}  median {statistics.median(rss):.0f}  max {max(rss):.0f}  end {rss[-1]:.0f}")
        print(f"frames received {received}, late {late}, ticks ~{elapsed * args.fps:.0f}; "
              f"stream failures {health['frames'].get('failed', 0)}")
        print(f"command round trip ms: median {statistics.median(rtts):.1f}  min {min(rtts):.1f}  max {max(rtts):.1f}")
        print(f"reply codes: {dict(sorted(codes.items()))}")
        return 0 if "internal" not in codes and engine.poll() is None else 1
    finally:
        dealer.close(0)
        sub.close(0)
        engine.terminate()
        engine.wait(30)


if __name__ == "__main__":
    sys.exit(main())
