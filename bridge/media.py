"""One avatar's frames and voice as WebRTC media, both timed from the engine clock.

Why one clock: the browser lines audio up with video through each track's RTCP sender reports, which aiortc fills
with (the wall time a packet was sent, its RTP timestamp). So both tracks hand out media at the same moment relative
to its engine time: the frame or 20 ms audio block of engine time ``t`` is released at bridge time
``t - offset + delay`` (``offset``: engine minus bridge monotonic, measured; ``delay``: covers the frames' render,
JPEG and transport time, at least ``--whep-delay-ms``, more when frames arrive later: ``_adapt_delay``). The RTP
timestamps follow engine time (90 kHz video, 48 kHz audio, contiguous), so the sender reports of both tracks map
engine time to one wall clock, and the browser's own A/V sync does the rest.
The time aiortc spends encoding a frame before it sends it (VP8: milliseconds, Opus: ~0) is measured per track
and the frame released that much earlier, so the send time, not the release time, lands on ``t + delay``.

Per avatar one ``AvatarFeed``: one SUB socket on ``frame.<avatar>`` and ``audio.<avatar>`` (engine/client/messages.py
parses it; the sockets of every feed share one ZMQ context, the caller's), one JPEG decode per frame, shared by every
viewer; a viewer's video track holds every frame waiting for its time (a long delay loses none) and sends only the
newest one due (a viewer that stalls skips frames, never queues them, and never holds up the feed or the others).
The speech arrives in chunks with a per-avatar ``seq``: a gap is a chunk PUB dropped for us, counted in
``AudioBuffer.lost``; the rest plays.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import av
import msgpack
import numpy as np
import simplejpeg
import soxr
import zmq
import zmq.asyncio
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from engine.client import (  # the client's SUB factory (CURVE, HWM); we add the audio topic
    AudioMessage,
    frame_subscriber_socket,
    parse_audio,
)
from engine.constants import AUDIO_TOPIC
from engine.security import CurveClientKeys
from engine.stats import percentile

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000  # Opus runs at 48 kHz
BLOCK = 960  # samples per 20 ms audio frame (WebRTC's usual packet time)
VIDEO_CLOCK = 90_000
FEED_HWM = 256  # messages the feed's SUB may hold: frames are skipped to the newest, audio must not be lost
AUDIO_KEEP_S = 120.0  # buffered speech at most (two 60 s requests ahead)
CUT_FADE = 240  # samples (5 ms) faded at a cut: no click
CLOCK_REFRESH_S = 20.0  # the engine-bridge clock offset is measured again this often (drift is tiny, but cheap)
LEAD_ALPHA = 0.1  # EWMA weight of the measured encode time
DELAY_MARGIN_S = 0.02  # the delay covers the frames' p95 lateness plus this
MAX_DELAY_S = 1.0
DELAY_STEP_DOWN_S = 0.01  # the delay shrinks at most this much per second (grows at once)


@dataclass
class Speech:
    """One published audio message, at 48 kHz float32, heard from engine time ``ts``."""

    ts: float
    samples: np.ndarray

    @property
    def end(self) -> float:
        return self.ts + len(self.samples) / AUDIO_RATE


@dataclass
class _Run:
    """The utterance being received: its chunks join one resampler, so no chunk boundary is heard."""

    rate: int
    origin: float  # engine time of its first sample
    next_ts: float  # engine time at which its next chunk starts
    produced: int = 0  # 48 kHz samples out so far
    resampler: soxr.ResampleStream | None = None  # None at 48 kHz


class AudioBuffer:
    """The avatar's speech ahead of and around now, keyed by engine time; cuts applied as they arrive. Chunks of
    one request (engine/audio_out.py) are resampled as one stream; a chunk that does not continue the one before
    (a lost one: a gap in ``seq``, counted in ``lost``) starts a new stream at its own time."""

    def __init__(self) -> None:
        self.items: list[Speech] = []
        self.received = 0
        self.lost = 0  # gaps in the engine's per-avatar audio seq: chunks PUB dropped for this subscriber
        self._seq: int | None = None
        self._run: _Run | None = None

    def add(self, msg: AudioMessage) -> None:
        if self._seq is not None and msg.seq > self._seq + 1:
            self.lost += msg.seq - self._seq - 1
        self._seq = msg.seq
        self.received += 1
        if msg.kind == "cut":
            self._run = None
            self.cut(msg.ts)
            return
        if msg.sample_rate <= 0:
            return
        x = np.frombuffer(msg.pcm, "<i2").astype(np.float32) / 32768.0
        run = self._run
        if run is None or run.rate != msg.sample_rate or abs(msg.ts - run.next_ts) * msg.sample_rate > 0.5:
            resampler = (None if msg.sample_rate == AUDIO_RATE
                         else soxr.ResampleStream(msg.sample_rate, AUDIO_RATE, 1, dtype="float32"))
            run = _Run(msg.sample_rate, msg.ts, msg.ts, 0, resampler)
        y = x if run.resampler is None else run.resampler.resample_chunk(x, last=msg.last).astype(np.float32)
        if len(y):
            self.items.append(Speech(run.origin + run.produced / AUDIO_RATE, y))
            run.produced += len(y)
        run.next_ts = msg.ts + len(x) / msg.sample_rate
        self._run = None if msg.last else run
        horizon = msg.ts + len(x) / msg.sample_rate - AUDIO_KEEP_S
        self.items = [s for s in self.items if s.end > horizon]

    def cut(self, t: float) -> None:
        """Nothing is heard from engine time t on: later speech dropped, the running one faded out over 5 ms."""
        kept = []
        for s in self.items:
            if s.ts >= t:
                continue
            if s.end > t:
                n = max(0, int(round((t - s.ts) * AUDIO_RATE)))
                x = s.samples[:n].copy()
                fade = min(CUT_FADE, n)
                if fade:
                    x[n - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
                s = Speech(s.ts, x)
            kept.append(s)
        self.items = kept

    def read(self, origin: float, block: int) -> np.ndarray:
        """Samples [block*BLOCK, (block+1)*BLOCK) of the timeline starting at engine time ``origin`` (integer
        sample positions, so consecutive blocks join without a gap or an overlap); silence where nothing plays."""
        out = np.zeros(BLOCK, np.float32)
        start = block * BLOCK
        for s in self.items:
            first = start - int(round((s.ts - origin) * AUDIO_RATE))  # index into s.samples of the block's start
            lo, hi = max(0, first), min(len(s.samples), first + BLOCK)
            if lo < hi:
                out[lo - first: hi - first] += s.samples[lo:hi]
        return out

    def drop_before(self, t: float) -> None:
        self.items = [s for s in self.items if s.end > t]


@dataclass
class FeedFrame:
    """A decoded engine frame, shared read-only by the viewers (its pts is the feed's, the same for all)."""

    ts: float
    video: av.VideoFrame
    arrived: float  # bridge monotonic


@dataclass
class FeedStats:
    frames: int = 0
    bad: int = 0
    late_ms: list[float] = field(default_factory=list)  # arrival minus engine ts (mapped), recent frames


class AvatarFeed:
    """One avatar's SUB socket, read by one task; viewers take the newest frame and read the shared audio."""

    def __init__(self, avatar: str, ctx: zmq.asyncio.Context, frame_addr: str, curve: CurveClientKeys | None,
                 clock_offset: Callable[[], Awaitable[float]], delay_s: float) -> None:
        self.avatar = avatar
        self.min_delay_s = self.delay_s = delay_s
        self.audio = AudioBuffer()
        self.stats = FeedStats()
        self.offset = 0.0  # engine time = bridge monotonic + offset
        self.origin: float | None = None  # engine time of pts 0, the same for every viewer
        self.viewers: set[FeedVideoTrack] = set()
        self._sock = frame_subscriber_socket(ctx, frame_addr, avatar, curve, FEED_HWM)
        self._sock.subscribe(AUDIO_TOPIC + avatar.encode())
        self._clock_offset = clock_offset
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # the clock offset is known

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"whep-feed-{self.avatar}")

    async def close(self) -> None:
        """The reading task ended, the socket closed (the context is the caller's: one for every feed)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():  # we are cancelled ourselves: pass it on
                    self._sock.close(0)
                    raise
            except Exception:
                log.exception("whep feed %s failed", self.avatar)
        self._sock.close(0)

    def engine_now(self) -> float:
        return time.monotonic() + self.offset

    def release_at(self, t: float) -> float:
        """Bridge monotonic time at which media of engine time t goes out."""
        return t - self.offset + self.delay_s

    async def _measure(self) -> None:
        try:
            self.offset = await self._clock_offset()
            self.ready.set()
        except Exception as exc:  # the engine is away: keep the last offset, retry at the next refresh
            log.warning("whep: clock offset not measured: %s", exc)

    async def _run(self) -> None:
        await self._measure()
        measured = time.monotonic()
        while True:
            if time.monotonic() - measured > CLOCK_REFRESH_S or not self.ready.is_set():
                await self._measure()
                measured = time.monotonic()
            if not await self._sock.poll(500, zmq.POLLIN):
                continue
            newest: list[bytes] | None = None
            while True:  # everything queued: audio kept in order, frames skipped to the newest
                try:
                    parts = await self._sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if parts and parts[0].startswith(AUDIO_TOPIC):
                    self._audio(parts)
                else:
                    newest = parts
            if newest is not None:
                await self._frame(newest)

    def _adapt_delay(self) -> None:
        """A frame sent after t + delay is stamped late in the sender reports, and the browser then shows it late
        against the voice: so the delay follows the frames' p95 lateness (a loaded engine or bridge), growing at
        once and shrinking slowly; both tracks follow it, so the browser sees a path that got longer."""
        recent = self.stats.late_ms[-100:]
        if len(recent) < 25:
            return
        target = min(MAX_DELAY_S, percentile(recent, 95) / 1000 + DELAY_MARGIN_S)
        if target > self.delay_s:
            self.delay_s = target
        else:
            self.delay_s = max(self.min_delay_s, target, self.delay_s - DELAY_STEP_DOWN_S)

    def _audio(self, parts: list[bytes]) -> None:
        try:
            msg = parse_audio(parts)
        except Exception:
            self.stats.bad += 1
            return
        if msg.avatar == self.avatar:
            self.audio.add(msg)

    async def _frame(self, parts: list[bytes]) -> None:
        """Decode once for every viewer, off the event loop (a few ms that would jitter the audio's pacing)."""
        try:
            header = msgpack.unpackb(parts[1])
            if header.get("avatar") != self.avatar:
                return
            ts = float(header["ts"])
            frame = await asyncio.to_thread(_decode, parts[2])
        except Exception:
            self.stats.bad += 1
            return
        if self.origin is None:
            self.origin = ts
        frame.pts = int(round((ts - self.origin) * VIDEO_CLOCK))
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        now = time.monotonic()
        self.stats.frames += 1
        self.stats.late_ms.append((now - (ts - self.offset)) * 1000)
        del self.stats.late_ms[:-200]
        if self.stats.frames % 25 == 0:
            self._adapt_delay()
        item = FeedFrame(ts, frame, now)
        for viewer in list(self.viewers):
            viewer.offer(item)
        self.audio.drop_before(self.engine_now() - 2.0)


def _decode(jpeg: bytes) -> av.VideoFrame:
    """JPEG -> the encoders' yuv420p (converted once here instead of once per viewer's encoder)."""
    rgb = simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


class _Paced:
    """The release time of a track's next item, minus what the encoder is measured to take after it."""

    def __init__(self) -> None:
        self.lead = 0.0
        self._returned: float | None = None
        self.late_ms: deque[float] = deque(maxlen=500)  # how late items went out (event loop or encoder behind)

    def called(self) -> None:
        """recv() was called again: the time since the last return is what encode + send took."""
        if self._returned is not None:
            took = time.monotonic() - self._returned
            if took < 0.5:
                self.lead += LEAD_ALPHA * (took - self.lead)

    async def wait_until(self, at: float) -> None:
        pause = at - self.lead - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        self._returned = time.monotonic()
        self.late_ms.append((self._returned - (at - self.lead)) * 1000)


class FeedVideoTrack(MediaStreamTrack):
    """A viewer's video: the feed's frames, each held until its engine time + delay. Every frame not yet due waits
    (however long the delay: at 400 ms that is 10 frames at 25 fps, all sent); of the frames already due only the
    newest is kept, the rest are skipped (counted): a stalled viewer skips, never queues up. ``MAX_WAITING`` bounds
    the queue beyond any delay the feed may reach (MAX_DELAY_S at 60 fps)."""

    kind = "video"
    MAX_WAITING = int(MAX_DELAY_S * 60) + 4

    def __init__(self, feed: AvatarFeed) -> None:
        super().__init__()
        self.feed = feed
        self._waiting: deque[FeedFrame] = deque()
        self._new = asyncio.Event()
        self._paced = _Paced()
        self.sent = 0
        self.skipped = 0
        feed.viewers.add(self)

    def _skip_stale(self) -> None:
        """Drop each frame that a newer frame, already due, makes pointless (it would only add delay)."""
        now = time.monotonic() + self._paced.lead
        while len(self._waiting) > 1 and (len(self._waiting) > self.MAX_WAITING
                                          or self.feed.release_at(self._waiting[1].ts) <= now):
            self._waiting.popleft()
            self.skipped += 1

    def offer(self, item: FeedFrame) -> None:
        self._waiting.append(item)
        self._skip_stale()
        self._new.set()

    async def recv(self) -> av.VideoFrame:
        self._paced.called()
        while not self._waiting:
            if self.readyState != "live":
                raise MediaStreamError
            self._new.clear()
            await self._new.wait()
        if self.readyState != "live":
            raise MediaStreamError
        self._skip_stale()
        item = self._waiting.popleft()
        await self._paced.wait_until(self.feed.release_at(item.ts))
        self.sent += 1
        return item.video

    def stop(self) -> None:
        super().stop()
        self.feed.viewers.discard(self)
        self._new.set()


class FeedAudioTrack(MediaStreamTrack):
    """A viewer's voice: contiguous 20 ms blocks of the feed's speech (silence between utterances), block k of
    engine time ``origin + k * 20 ms`` released at that time + delay, pts k * 960 at 48 kHz."""

    kind = "audio"

    def __init__(self, feed: AvatarFeed) -> None:
        super().__init__()
        self.feed = feed
        self._origin: float | None = None
        self._block = 0
        self._paced = _Paced()
        self._layout = "mono"

    @property
    def origin(self) -> float | None:
        """Engine time of the first audio block (pts 0); None until the first recv."""
        return self._origin

    async def recv(self) -> av.AudioFrame:
        self._paced.called()
        if self.readyState != "live":
            raise MediaStreamError
        if self._origin is None:
            await self.feed.ready.wait()
            self._origin = self.feed.engine_now() - self.feed.delay_s  # heard now: engine time now - delay
        t = self._origin + self._block * BLOCK / AUDIO_RATE
        await self._paced.wait_until(self.feed.release_at(t))
        x = self.feed.audio.read(self._origin, self._block)
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout=self._layout)
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._block * BLOCK
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._block += 1
        return frame
