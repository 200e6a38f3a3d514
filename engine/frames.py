"""The frame path: draw (render + paste-back) -> encode -> publish or reply, with the frame cache and frame stats.

Which thread runs what (see engine/workers.py for the drawing):

- ``draw``                  render thread
- ``still`` and its steps   command thread (continuations through the Mailbox); draw on render, JPEG on encode
- ``on_tick``               clock thread: room in the renderer AND the publisher is checked before a frame is asked
- ``stream_frame``          render thread: checks publisher room again before drawing, then draws
- ``publish``               publish thread (owns the PUB socket): JPEG, header, send
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import zmq

from engine import protocol as p
from engine.animation.state import AnimationState
from engine.avatars import Avatar
from engine.cache import ByteLRU
from engine.codec import encode_jpeg, jpeg_size
from engine.framing import draw_framed
from engine.render.base import Renderer
from engine.stats import percentile
from engine.workers import FrameClock, Mailbox, StreamClock, Worker

log = logging.getLogger(__name__)

STREAM_ENCODE_DEPTH = 2  # stream frames waiting for the publisher at most: more would only add latency
STREAM_MAX_FAILURES = 10  # a stream whose frames fail this many times in a row is stopped, with the reason logged
FrameKey = tuple[Any, ...]


@dataclass
class FrameStats:
    """Recent per-frame timings (ms) for health and /metrics. Written by the render and publish threads, read by
    the command thread: every access goes through ``_lock`` (a bare ``+=`` from two threads loses counts, and
    sorting a deque while another thread appends to it raises)."""

    render_ms: deque[float] = field(default_factory=lambda: deque(maxlen=512))  # the renderer alone
    overhead_ms: deque[float] = field(default_factory=lambda: deque(maxlen=512))  # paste-back + JPEG + PUB send
    published: int = 0
    failed: int = 0  # stream frames whose drawing or encoding raised
    stopped: int = 0  # streams stopped after STREAM_MAX_FAILURES failures in a row
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_published(self, render_ms: float | None, overhead_ms: float) -> None:
        with self._lock:
            self.published += 1
            if render_ms is not None:
                self.render_ms.append(render_ms)
                self.overhead_ms.append(overhead_ms)

    def count_failed(self) -> None:
        with self._lock:
            self.failed += 1

    def count_stopped(self) -> None:
        with self._lock:
            self.stopped += 1

    def drawn(self) -> int:
        """Frames drawn (not taken from the cache) among the recent ones."""
        with self._lock:
            return len(self.render_ms)

    def summary(self) -> dict[str, float]:
        with self._lock:
            render, overhead = list(self.render_ms), list(self.overhead_ms)
            counts = {"published": self.published, "failed": self.failed, "streams_stopped": self.stopped}
        figures = {f"{name}_p{q}": round(percentile(data, q), 3)
                   for name, data in (("render_ms", render), ("overhead_ms", overhead)) for q in (50, 95)}
        return {**counts, **figures,
                "render_ms_mean": round(statistics.fmean(render), 3) if render else 0.0}


@dataclass(frozen=True)
class FrameWorkers:
    """The workers the frame path hands its steps to (engine/workers.py starts and stops them)."""

    render: Worker  # draws: stream frames, `render` replies, clip frames (side lane)
    encode: Worker  # JPEG for `render` replies
    publish: Worker  # JPEG + PUB for stream frames (STREAM_ENCODE_DEPTH)


@dataclass(frozen=True)
class Drawn:
    """A frame out of the render thread, before JPEG."""

    frame: np.ndarray  # (H, W, 3) uint8 RGB, owned by whoever holds this
    render_ms: float  # the renderer alone
    paste_ms: float  # paste-back (0 for crop output)

    @property
    def width(self) -> int:
        return int(self.frame.shape[1])

    @property
    def height(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True)
class Still:
    """One `render` answer: the JPEG and its header."""

    jpeg: bytes
    header: dict[str, Any]
    cached: bool


def sample(avatar: Avatar, t: float) -> tuple[AnimationState, bool]:
    """The avatar's animation at t, and whether it is static there (so the frame may be cached)."""
    with avatar.lock:
        return avatar.animator.sample(t), avatar.animator.is_static(t)


class FramePath:
    """Draw, encode, publish; the frame cache and stats. Holds no thread of its own: it is handed its workers.

    It is the one owner of the renderer: ``use`` (render thread, at start-up) sets it, everyone else asks here."""

    def __init__(self, workers: FrameWorkers, mailbox: Mailbox, frame_clock: FrameClock, cache: ByteLRU[bytes],
                 find_avatar: Callable[[str], Avatar | None], pub: zmq.Socket | None, output: str = "full",
                 quality: int = 90) -> None:
        self.render, self.encode, self.publisher = workers.render, workers.encode, workers.publish
        self.mailbox = mailbox
        self.frame_clock = frame_clock
        self.cache = cache
        self.find_avatar = find_avatar
        self.pub = pub  # used by the publish thread only
        self.output, self.quality = output, quality
        self.stats = FrameStats()
        self._renderer: Renderer | None = None

    def use(self, renderer: Renderer) -> None:
        """Render thread (start-up): draw with this renderer from now on."""
        self._renderer = renderer

    @property
    def renderer(self) -> Renderer | None:
        return self._renderer

    @property
    def renderer_name(self) -> str:
        return self._renderer.name if self._renderer is not None else "none"

    # -- any thread --

    def draw(self, avatar: Avatar, state: AnimationState, output: str, framing: p.Framing = p.FULL) -> Drawn:
        """Render thread: state -> crop -> paste-back (a fresh frame: the encoder reads it while we draw on); a
        stream's framing (engine/framing.py) pastes onto its framed region instead of the whole photo."""
        renderer = self._renderer
        assert renderer is not None
        started = time.perf_counter()
        crop = renderer.render(avatar.source, state)
        rendered = time.perf_counter()
        if framing.reframes:
            frame = draw_framed(avatar.paste, avatar.views, crop, framing)
        else:
            frame = avatar.paste.apply(crop) if output == "full" else crop
        return Drawn(frame, (rendered - started) * 1000, (time.perf_counter() - rendered) * 1000)

    def header(self, avatar: Avatar, state: AnimationState, jpeg: bytes, drawn: Drawn | None, t: float,
               seq: int = 0, late: int = 0, framing: p.Framing = p.FULL) -> dict[str, Any]:
        width, height = (drawn.width, drawn.height) if drawn else jpeg_size(jpeg)
        return {"seq": seq, "ts": t, "wall": time.time(), "avatar": avatar.id, "expression": state.expression,
                "intensity": state.intensity, "width": width, "height": height, "framing": framing.kind,
                "render_ms": round(drawn.render_ms, 3) if drawn else 0.0, "renderer": self.renderer_name,
                "late": late, "cached": drawn is None, "jawOpen": round(state.controls.get("jawOpen", 0.0), 4)}

    # -- `render` replies: command thread --

    def still(self, avatar: Avatar, state: AnimationState, static: bool, output: str, quality: int,
              t: float) -> Future[Still]:
        """A cached JPEG now, or draw (render thread) then encode (encode thread); resolves on the command thread."""
        out: Future[Still] = Future()
        key = (avatar.id, output, quality, state.key())
        jpeg = self.cache.get(key) if static else None
        if jpeg is not None:
            out.set_result(Still(jpeg, self.header(avatar, state, jpeg, None, t), True))
            return out

        def encoded(drawn: Drawn, f: Future[bytes]) -> None:
            if f.exception() is not None:
                out.set_exception(f.exception())  # type: ignore[arg-type]
                return
            if static:
                self.cache.put(key, f.result())
            out.set_result(Still(f.result(), self.header(avatar, state, f.result(), drawn, t), False))

        def drawn(f: Future[Drawn]) -> None:
            try:
                d = f.result()
                job = self.encode.submit(lambda: encode_jpeg(d.frame, quality))
            except Exception as exc:
                out.set_exception(exc)
                return
            self.mailbox.then(job, lambda g: encoded(d, g))

        self.mailbox.then(self.render.submit(lambda: self.draw(avatar, state, output)), drawn)
        return out

    # -- streams --

    def _stream_room(self) -> bool:
        return self.publisher.has_room(STREAM_ENCODE_DEPTH)

    def on_tick(self, stream: StreamClock, t: float) -> bool:
        """Clock thread: ask the render thread for a frame; False (a late tick) when it or the publisher is full."""
        if not self._stream_room() or not self.render.has_room():
            return False
        try:
            self.render.submit(lambda: self.stream_frame(stream, t))
        except Exception:  # Busy: the queue filled since has_room
            return False
        return True

    def stream_frame(self, stream: StreamClock, t: float) -> None:
        """Render thread: room first, then sample, draw (or take from the cache), hand on to the publisher."""
        late = failed = False
        try:
            avatar = self.find_avatar(stream.avatar)
            if avatar is None:
                self.frame_clock.set_rate(stream.avatar, 0)
                return
            if not self._stream_room():  # only this thread adds stream frames: room seen now stays
                late = True
                return
            state, static = sample(avatar, t)
            framing = stream.framing or p.FULL
            look = framing if framing.reframes else self.output  # unframed: the same entries as `render` stills
            key = (avatar.id, look, self.quality, state.key()) if static else None
            jpeg = self.cache.get(key) if key else None
            drawn = None if jpeg is not None else self.draw(avatar, state, self.output, framing)
            self.publisher.submit(lambda: self.publish(stream, avatar, state, t, drawn, jpeg, key, framing))
        except Exception as exc:
            failed = True
            self._stream_failed(stream, exc)
        finally:
            in_a_row = self.frame_clock.frame_done(stream, late=late, failed=failed)
            if in_a_row >= STREAM_MAX_FAILURES:
                self.frame_clock.set_rate(stream.avatar, 0)
                self.stats.count_stopped()
                log.error("stream %s stopped: %d frames in a row failed", stream.avatar, in_a_row)

    def _stream_failed(self, stream: StreamClock, exc: Exception) -> None:
        self.stats.count_failed()
        if stream.failed_in_a_row == 0:  # the first of a run gets a traceback; the rest a count in stats
            log.error("stream frame failed for %s", stream.avatar, exc_info=exc)

    def publish(self, stream: StreamClock, avatar: Avatar, state: AnimationState, t: float, drawn: Drawn | None,
                jpeg: bytes | None, key: FrameKey | None, framing: p.Framing = p.FULL) -> None:
        """Publish thread: JPEG (unless cached), header with the next seq, PUB without blocking."""
        try:
            self._publish(stream, avatar, state, t, drawn, jpeg, key, framing)
        except Exception as exc:  # counted like a failed draw; the first of a run is logged with its traceback
            self.stats.count_failed()
            if self.frame_clock.count_failed(stream) == 1:
                log.error("stream frame could not be published for %s", stream.avatar, exc_info=exc)

    def _publish(self, stream: StreamClock, avatar: Avatar, state: AnimationState, t: float, drawn: Drawn | None,
                 jpeg: bytes | None, key: FrameKey | None, framing: p.Framing) -> None:
        started = time.perf_counter()
        if jpeg is None:
            assert drawn is not None
            jpeg = encode_jpeg(drawn.frame, self.quality)
            if key is not None:
                self.cache.put(key, jpeg)
        header = self.header(avatar, state, jpeg, drawn, t, self.frame_clock.take_seq(stream), stream.late,
                             framing)
        header["epoch"] = stream.epoch
        assert self.pub is not None
        # PUB never blocks and never says when it drops for a slow subscriber, so no dropped count is kept.
        self.pub.send_multipart([p.FRAME_TOPIC + avatar.id.encode(), msgpack.packb(header), jpeg], zmq.NOBLOCK)
        overhead_ms = (drawn.paste_ms if drawn is not None else 0.0) + (time.perf_counter() - started) * 1000
        self.stats.count_published(drawn.render_ms if drawn is not None else None, overhead_ms)
