"""A/V sync and glass-to-glass delay of a WHEP viewer, measured on what it shows and plays (the test and
bench/bench_webrtc.py share this).

The avatar speaks a train of vowel bursts with sharp onsets at known engine times (idle life off, neutral face: the
mouth is all that moves). At the sender the engine's own frames (a SUB on the PUB socket) give, per burst, the
engine time at which the picture is half-way to its open mouth; the audio's onset is known from the samples sent. In
the page (whep_page.js, recording with tests/av_recorder.js) the same measure is taken on every displayed frame
(requestVideoFrameCallback's expected display time); the voice's onset is where the level of its 20 ms packets (the
RTP audio-level aiortc writes) rises, at the time each packet was delivered to the track for playout
(getSynchronizationSources); the sender's onset is taken on the same 20 ms blocks (the bridge says where its audio
blocks start), so where an onset falls inside a packet cancels. Both ends are the media pipelines' outputs (the
compositor, the audio renderer), before any device. Per burst:

    offset = (mouth shown - voice heard) at the viewer - (mouth drawn - voice starts) at the engine

so the analysis' own lag of the mouth behind the sound cancels; > 0 is video late (voice ahead). Glass-to-glass is
the display time of the mouth's half-way frame minus its engine time (engine clock mapped to Unix time by a health
probe; the page's performance.timeOrigin maps its clock).
"""

from __future__ import annotations

import base64
import io
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
import numpy as np
import simplejpeg
import zmq

RATE = 22_050
BURST_S = 0.25
GAP_S = 0.75  # burst every 1 s: the mouth is shut again before the next
LEAD_S = 1.0  # the first burst this long after the speak (engine time): the buffers are primed


def _resonate(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / RATE)
    a1, a2 = 2 * r * np.cos(2 * np.pi * freq / RATE), -r * r
    y = np.zeros_like(x)
    y1 = y2 = 0.0
    for i, v in enumerate(x):
        y0 = (1 - r) * v + a1 * y1 + a2 * y2
        y[i], y2, y1 = y0, y1, y0
    return y


def vowel() -> np.ndarray:
    """An 'ah' (110 Hz glottal pulses through three formants), 4 ms attack: a sharp onset the mouth opens for."""
    n = int(BURST_S * RATE)
    x = np.zeros(n)
    x[:: RATE // 110] = 1.0
    for freq, bw in ((750, 90), (1200, 110), (2500, 150)):
        x = _resonate(x, freq, bw)
    x = x / np.abs(x).max() * 0.6
    ramp = np.minimum(1, np.arange(n) / (0.004 * RATE)) * np.minimum(1, (n - np.arange(n)) / (0.01 * RATE))
    return (x * ramp).astype(np.float32)


def burst_train(count: int) -> tuple[bytes, list[float]]:
    """The WAV, and each burst's onset (s from the WAV's start: where its 2.5 ms RMS first passes 20 % of peak)."""
    v = vowel()
    period = BURST_S + GAP_S
    total = np.zeros(int((count * period + 0.5) * RATE), np.float32)
    onsets = []
    env = np.sqrt(np.convolve(v.astype(np.float64) ** 2, np.ones(55) / 55, mode="full")[: len(v)])
    first = int(np.argmax(env > 0.2 * env.max())) / RATE
    for i in range(count):
        at = int(round(i * period * RATE))
        total[at: at + len(v)] = v
        onsets.append(at / RATE + first)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((total * 32767).astype("<i2").tobytes())
    return buf.getvalue(), onsets


def crossing(times: np.ndarray, values: np.ndarray, lo: float, hi: float, level: float) -> float | None:
    """The first time in [lo, hi) where values pass ``level`` x their max there, linearly interpolated."""
    inside = (times >= lo) & (times < hi)
    t, v = times[inside], values[inside]
    if len(v) < 2 or v.max() <= 0:
        return None
    base = np.median(v[: max(1, len(v) // 5)])
    threshold = base + level * (v.max() - base)
    above = np.nonzero(v >= threshold)[0]
    if len(above) == 0 or above[0] == 0:
        return None
    i = above[0]
    f = (threshold - v[i - 1]) / (v[i] - v[i - 1]) if v[i] != v[i - 1] else 1.0
    return float(t[i - 1] + f * (t[i] - t[i - 1]))


SIZE = 128  # the page's grey frames (tests/av_recorder.js; at 128 px the analysis finds the mouth, all that moves)


def grey(jpeg: bytes) -> np.ndarray:
    """An engine frame as the page sees it: 128 x 128 grey."""
    import cv2

    rgb = simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
    small = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    return 0.299 * small[..., 0] + 0.587 * small[..., 1] + 0.114 * small[..., 2]


def mouth_metric(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per frame: mean absolute difference from the first frame inside the mask (the mouth)."""
    return np.abs(frames[:, mask] - frames[0][mask]).mean(axis=1)


def mouth_mask(frames: np.ndarray) -> np.ndarray:
    """The pixels that change most over the engine's frames (idle off: the mouth), the top 1 %."""
    spread = frames.std(axis=0)
    return spread >= np.quantile(spread, 0.99)


@dataclass
class EngineFrames:
    """The engine's frames of one avatar (ts, difference from the first), read on a thread from the PUB socket."""

    frame_addr: str
    avatar: str
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, 1000)
        self._sock.subscribe(b"frame." + self.avatar.encode())
        self._sock.connect(self.frame_addr)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(100):
                continue
            _topic, header, jpeg = self._sock.recv_multipart()
            self.frames.append((float(msgpack.unpackb(header)["ts"]), grey(jpeg)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close(0)
        self._ctx.term()


@dataclass
class SyncResult:
    offsets_ms: list[float]  # per burst: > 0 video late
    video_g2g_ms: list[float]  # engine frame time -> displayed
    audio_g2g_ms: list[float]  # engine time of the onset -> heard
    bursts: int
    browser_ms: list[float] = field(default_factory=list)  # per burst: the browser's own A/V estimate then

    def settled(self, tolerance_ms: float = 30.0) -> list[float]:
        """The offsets of the bursts shown while the browser believed itself in sync (its estimate within the
        tolerance): after a stall its sync takes seconds to catch up, and it knows it. A sender whose timestamps
        lie is still caught: the browser then believes itself in sync while the content is not."""
        return [o for o, b in zip(self.offsets_ms, self.browser_ms, strict=True) if abs(b) <= tolerance_ms]


def block_levels(wav: bytes, start: float, origin: float, blocks: int) -> np.ndarray:
    """The audio level (0..1, as the RTP audio-level extension: -dBov rounded) of each 20 ms block of the bridge's
    audio timeline (block k: engine time origin + k * 20 ms) with the WAV heard from engine time ``start``."""
    with wave.open(io.BytesIO(wav)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768.0
    n = int(round(blocks * 0.02 * RATE))
    line = np.zeros(n + len(x) + RATE)
    at = int(round((start - origin) * RATE))
    if at < 0:
        raise ValueError("the speech started before the bridge's audio timeline")
    line[at: at + len(x)] = x
    levels = []
    for k in range(blocks):
        a, b = int(round(k * 0.02 * RATE)), int(round((k + 1) * 0.02 * RATE))
        rms = np.sqrt(np.mean(line[a:b] ** 2)) if b > a else 0.0
        dbov = 127 if rms <= 0 else min(127, max(0, round(-20 * np.log10(rms))))
        levels.append(10 ** (-dbov / 20) if dbov < 127 else 0.0)
    return np.array(levels)


def measure(tab, request: Callable[[dict], dict], frame_addr: str, avatar: str, count: int = 6,
            audio_origin: Callable[[], float] | None = None) -> SyncResult:
    """Speak ``count`` bursts on ``avatar`` while the page (already playing WHEP) records; analyse both ends."""
    request({"v": 1, "cmd": "set_idle", "avatar": avatar, "enabled": False})
    request({"v": 1, "cmd": "set_expression", "avatar": avatar, "expression": "neutral", "intensity": 1.0,
             "transition_ms": 0})
    time.sleep(0.5)  # the face settles before the references are taken
    wav, onsets = burst_train(count)
    frames = EngineFrames(frame_addr, avatar)
    tab.evaluate(f"avRecord({SIZE})")
    assert audio_origin is not None
    origin_a = audio_origin()
    try:
        time.sleep(0.5)
        sent = time.time()
        now = request({"v": 1, "cmd": "health"})["now"]
        unix_of_engine = (sent + time.time()) / 2 - now  # unix = engine + this
        start = now + LEAD_S
        request({"v": 1, "cmd": "speak", "avatar": avatar, "audio": wav, "start": start})
        time.sleep(LEAD_S + count * (BURST_S + GAP_S) + 1.0)
        page = {**tab.evaluate("avStop()"), "estimate": tab.evaluate("avEstimate()")}
        origin = tab.evaluate("performance.timeOrigin")
    finally:
        frames.close()
        request({"v": 1, "cmd": "set_idle", "avatar": avatar, "enabled": True})
    eng_t = np.array([t for t, _ in frames.frames])
    eng_px = np.stack([px for _, px in frames.frames])
    mask = mouth_mask(eng_px)
    eng = np.column_stack([eng_t, mouth_metric(eng_px, mask)])
    shown_px = np.stack([np.frombuffer(base64.b64decode(b), np.uint8).reshape(SIZE, SIZE).astype(np.float32)
                         for _, b in page["video"]])
    video = np.column_stack([[t for t, _ in page["video"]], mouth_metric(shown_px, mask)])
    audio = np.array(page["audio"])
    to_unix = origin / 1000.0  # page performance ms -> unix s: origin + t / 1000
    offsets, vg2g, ag2g, browser = [], [], [], []
    estimate = np.array(page["estimate"]) if page["estimate"] else np.zeros((0, 2))
    blocks = int((start - origin_a + count * (BURST_S + GAP_S) + 1.0) / 0.02)
    sent_levels = block_levels(wav, start, origin_a, blocks)
    block_t = origin_a + 0.02 * np.arange(blocks)
    for onset in onsets:
        lo, hi = start + onset - 0.2, start + onset + BURST_S + 0.2
        t_audio = crossing(block_t, sent_levels, lo, hi, 0.2)  # engine time of the onset, on the 20 ms blocks
        if t_audio is None:
            continue
        t_mouth = crossing(eng[:, 0], eng[:, 1], lo, hi, 0.5) if len(eng) else None
        if t_mouth is None:
            continue
        ulo, uhi = (lo + unix_of_engine - to_unix) * 1000, (hi + unix_of_engine - to_unix) * 1000 + 600
        shown = crossing(video[:, 0], video[:, 1], ulo + 0, uhi, 0.5) if len(video) else None
        heard = crossing(audio[:, 0], audio[:, 2], ulo, uhi, 0.2) if len(audio) else None
        if shown is None or heard is None:
            continue
        offsets.append((shown - heard) - (t_mouth - t_audio) * 1000)
        near = np.argmin(np.abs(estimate[:, 0] - shown)) if len(estimate) else None
        browser.append(float(estimate[near, 1]) if near is not None else float("nan"))
        vg2g.append(to_unix * 1000 + shown - (t_mouth + unix_of_engine) * 1000)
        ag2g.append(to_unix * 1000 + heard - (t_audio + unix_of_engine) * 1000)
    return SyncResult(offsets, vg2g, ag2g, count, browser)
