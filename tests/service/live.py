"""Watching a live engine from outside: its frames as they arrive, its reply times, its memory.

Shared by the never-freeze tests (tests/service/test_never_freeze.py) and the benches that print the same figures
with tight numbers (bench/bench_latency.py, bench/soak.py). Real sockets only; nothing here mocks the engine.
"""

from __future__ import annotations

import io
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgpack
import numpy as np
import zmq
from PIL import Image

from engine.client import EngineClient
from engine.stats import percentile

SPEECH = ("The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. "
          "Peter Piper picked a peck of pickled peppers, and a big black bug bit a big black bear.")


def speech_wav(seconds: float, text: str = SPEECH) -> bytes:
    """A mono WAV of real espeak-ng speech, ``seconds`` long (the sentence repeated, then cut)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-s", "160", "-w", str(out), text], check=True, capture_output=True)
        with wave.open(str(out), "rb") as w:
            params, frames = w.getparams(), w.readframes(w.getnframes())
    need = int(seconds * params.framerate) * params.sampwidth
    pcm = (frames * (need // max(1, len(frames)) + 1))[:need]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(params.sampwidth)
        w.setframerate(params.framerate)
        w.writeframes(pcm)
    return buf.getvalue()


def image_bytes(array: np.ndarray, fmt: str = "PNG", **save: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt, **save)
    return out.getvalue()


def upscaled_portrait(path: Path, side: int = 6000) -> bytes:
    """A side x side JPEG of a test portrait (bicubic upscale): a big photo with a real face in it."""
    img = Image.open(path).convert("RGB").resize((side, side), Image.BICUBIC)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


def faceless_png(megapixels: float = 36.0) -> bytes:
    """A large PNG with no face (colour ramps and soft bands), small on disk (~1 MB) and quick to make."""
    side = int((megapixels * 1e6) ** 0.5)
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rgb = np.empty((side, side, 3), np.uint8)
    rgb[..., 0] = ramp[None, :].astype(np.uint8)
    rgb[..., 1] = ramp[:, None].astype(np.uint8)
    rgb[..., 2] = (128 + 100 * np.sin(ramp / 9.0))[None, :].astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def speak_over_raw_http(port: int, image: bytes, audio: bytes) -> socket.socket:
    """POST /api/speak on a plain socket and return it unread, so a caller can hang up mid-clip as a browser tab
    that closes would (httpx gives no way to drop a request half-way)."""
    request = httpx.Request("POST", f"http://127.0.0.1:{port}/api/speak", files={
        "source_image": ("portrait.jpg", image), "audio": ("speech.wav", audio, "audio/wav")})
    body = request.read()
    head = (f"POST /api/speak HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: {request.headers['content-type']}\r\nContent-Length: {len(body)}\r\n\r\n")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head.encode() + body)
    return sock


@dataclass
class FrameLog:
    """One avatar's received frames: arrival time (monotonic), seq, header ts, jawOpen, late count."""

    arrivals: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    jaw: list[float] = field(default_factory=list)
    late: int = 0

    def max_gap(self, since: float = 0.0, until: float = float("inf")) -> float:
        times = [t for t in self.arrivals if since <= t <= until]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def seq_gaps(self) -> int:
        return sum(1 for a, b in zip(self.seqs, self.seqs[1:], strict=False) if b != a + 1)


class FrameWatcher:
    """A SUB socket on a thread: every ``frame.<avatar>`` message's arrival, by avatar."""

    def __init__(self, frame_addr: str, ctx: zmq.Context | None = None) -> None:
        self._ctx = ctx or zmq.Context.instance()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, 1000)
        self._sub.connect(frame_addr)
        self._sub.subscribe(b"frame.")
        self.logs: dict[str, FrameLog] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sub.poll(50):
                continue
            topic, header, _jpeg = self._sub.recv_multipart()
            now = time.monotonic()
            h = msgpack.unpackb(header)
            with self.lock:
                log = self.logs.setdefault(h["avatar"], FrameLog())
                log.arrivals.append(now)
                log.seqs.append(h["seq"])
                log.ts.append(h["ts"])
                log.jaw.append(h.get("jawOpen", 0.0))
                log.late = h.get("late", 0)

    def log(self, avatar: str) -> FrameLog:
        with self.lock:
            found = self.logs.get(avatar, FrameLog())
            return FrameLog(list(found.arrivals), list(found.seqs), list(found.ts), list(found.jaw), found.late)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sub.close(0)


class Prober:
    """A thread sending one command every ``interval`` s on its own socket, recording each round trip (ms)."""

    def __init__(self, addr: str, make: Callable[[], dict], interval: float = 0.05, timeout_ms: int = 10_000) -> None:
        self.client = EngineClient(addr, timeout_ms=timeout_ms, retries=0)
        self.make, self.interval = make, interval
        self.times: list[tuple[float, float]] = []  # (sent at, round trip ms)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                reply = self.client.request(self.make())
                if not reply.get("ok", False):
                    self.errors.append(reply["error"]["code"])
            except Exception as exc:
                self.errors.append(type(exc).__name__)
            self.times.append((started, (time.monotonic() - started) * 1000))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def since(self, t: float) -> list[float]:
        return [ms for at, ms in list(self.times) if at >= t]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)
        self.client.close()


def wait_until(cond: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``cond`` every 5 ms until it holds: waiting for a state, not sleeping for a time (fails after timeout)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def spread(values: list[float]) -> str:
    """'p50 / p99 / max (n)' in ms."""
    if not values:
        return "no samples"
    return (f"p50 {statistics.median(values):.1f} / p99 {percentile(values, 99):.1f} / max {max(values):.1f} ms "
            f"(n={len(values)})")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """Direct children (the prep processes of an engine)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        out.extend(int(x) for x in task.read_text().split())
    return out


def stop_processes(*procs: subprocess.Popen) -> None:
    """SIGTERM each process, then SIGKILL what has not exited 30 s later (the benches' engine and bridge)."""
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
