"""The engine process: sockets, threads and clocks. The only module that knows about threads.

Threading model, one owner per resource:

- **command thread** (``Engine.run``, the caller's thread) owns the command socket. It is a ROUTER that speaks
  REP's envelope, so REQ clients see a REP socket, but a slow request (``set_source``, ``render``) does not hold up
  the others: quick commands are answered at once, slow ones are handed on and answered when they finish.
- **prep thread** decodes uploads and runs face detection (CPU: onnxruntime or dlib).
- **render thread** (a ``Worker``) owns the renderer (torch, its CUDA stream). It runs one job at a time from a
  bounded queue: loading the models, preparing an avatar, drawing a frame (render + paste-back). A full queue
  answers ``busy``; nothing waits unboundedly.
- **encode thread** (a ``Worker``) turns drawn frames into JPEG and owns the PUB frame socket. While it encodes
  frame n the render thread already draws frame n+1 (JPEG encoding and OpenCV release the GIL), so a frame costs
  the longer of the two stages, not their sum.
- **clock thread** (``FrameClock``) ticks every stream at its rate from a fixed origin, so there is no drift. A tick
  whose previous frame is still in the render thread, or that finds the encoder already holding
  ``STREAM_ENCODE_DEPTH`` frames, is counted late and skipped, never queued.

Finished slow work comes back to the command thread through a queue plus a socketpair that wakes its poller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import socket
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeVar

import msgpack
import numpy as np
import zmq

from engine import protocol as p
from engine.animation.controls import CONTROLS
from engine.animation.presets import EXPRESSIONS, preset_state
from engine.animation.state import AnimationState
from engine.animation.timeline import Animator, IdleConfig
from engine.avatars import Avatar, AvatarRegistry, avatar_id
from engine.cache import ByteLRU
from engine.codec import encode_jpeg, jpeg_size
from engine.config import Settings
from engine.errors import BadRequest, Busy, EngineError, RenderFailed
from engine.face.pasteback import PasteBack
from engine.face.pipeline import FacePipeline
from engine.face.types import FaceCrop
from engine.render.base import Renderer
from engine.render.select import select_renderer

log = logging.getLogger(__name__)

MiB = 1 << 20
FRAME_HWM = 4  # frames a slow subscriber may have queued before PUB drops for it
STREAM_ENCODE_DEPTH = 2  # stream frames waiting for the encoder at most: more would only add latency
T = TypeVar("T")
Reply = dict[str, Any]
Respond = Callable[[Reply], None]


def default_portrait() -> bytes:
    """The bundled portrait (the scikit-image astronaut, public domain): warm-up and the `default` avatar."""
    return resources.files("engine.assets").joinpath("default_portrait.jpg").read_bytes()


# --- worker threads -------------------------------------------------------------------------------------------

class Worker:
    """One thread, one job at a time, bounded queue: the render thread and the encode thread are each one."""

    def __init__(self, name: str, max_queue: int) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future] | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._jobs.qsize()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue a job; Busy when the queue is full (the caller answers busy or counts a late frame)."""
        future: Future[T] = Future()
        try:
            self._jobs.put_nowait((fn, future))
        except queue.Full:
            raise Busy("the render queue is full; retry shortly") from None
        return future

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the job in flight, drop the rest, end the thread."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[1].set_exception(Busy("the engine is shutting down"))
        with contextlib.suppress(queue.Full):
            self._jobs.put(None, timeout=timeout)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except Exception as exc:  # a job's failure is its caller's answer, never the thread's end
                future.set_exception(exc)


# --- clock thread -----------------------------------------------------------------------------------------------

@dataclass
class StreamClock:
    avatar: str
    fps: float
    origin: float
    tick: int = 0  # ticks since origin: tick times are origin + tick / fps, so no drift accumulates
    seq: int = 0  # frames published: contiguous on the wire
    late: int = 0  # ticks skipped because the previous frame was still rendering
    in_flight: bool = False

    @property
    def next_time(self) -> float:
        return self.origin + self.tick / self.fps


class FrameClock:
    """Ticks each stream at its rate and hands the tick to ``on_tick``; owns the stream table."""

    def __init__(self, on_tick: Callable[[StreamClock, float], bool], clock: Callable[[], float]) -> None:
        self._on_tick = on_tick
        self._clock = clock
        self._streams: dict[str, StreamClock] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="clock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def set_rate(self, avatar: str, fps: float) -> StreamClock | None:
        """Start, re-time (fresh origin, seq continues) or, with fps 0, stop a stream."""
        with self._cond:
            if fps <= 0:
                self._streams.pop(avatar, None)
                self._cond.notify()
                return None
            stream = self._streams.get(avatar)
            if stream is None:
                stream = self._streams[avatar] = StreamClock(avatar, fps, self._clock())
            elif stream.fps != fps:
                stream.fps, stream.origin, stream.tick = fps, self._clock(), 0
            self._cond.notify()
            return stream

    def is_streaming(self, avatar: object) -> bool:
        with self._cond:
            return avatar in self._streams

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._cond:
            return {s.avatar: {"fps": s.fps, "seq": s.seq, "late": s.late} for s in self._streams.values()}

    def take_seq(self, stream: StreamClock) -> int:
        with self._cond:
            seq = stream.seq
            stream.seq += 1
            return seq

    def frame_done(self, stream: StreamClock) -> None:
        """The render thread is done with this stream's frame: the next tick may draw."""
        with self._cond:
            stream.in_flight = False

    def count_late(self, stream: StreamClock) -> None:
        with self._cond:
            stream.late += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = self._clock()
                due = [s for s in self._streams.values() if s.next_time <= now]
                if not due:
                    wait = min((s.next_time for s in self._streams.values()), default=now + 1.0) - now
                    self._cond.wait(timeout=max(wait, 0.0))
                    continue
                ticks = []
                for s in due:
                    ticks.append((s, s.next_time))
                    s.tick += 1
                    behind = int((now - s.next_time) * s.fps)  # the machine stalled past whole periods
                    if behind > 0:
                        s.tick += behind
                        s.late += behind
                    if s.in_flight:
                        s.late += 1
                        ticks.pop()
                    else:
                        s.in_flight = True
            for s, t in ticks:
                if not self._on_tick(s, t):
                    with self._cond:
                        s.in_flight = False
                        s.late += 1


# --- bookkeeping ----------------------------------------------------------------------------------------------

@dataclass
class FrameStats:
    """Recent per-frame timings (ms) for health and /metrics."""

    render_ms: deque[float] = field(default_factory=lambda: deque(maxlen=512))
    overhead_ms: deque[float] = field(default_factory=lambda: deque(maxlen=512))  # state -> JPEG -> PUB, no render
    published: int = 0
    dropped: int = 0  # PUB would have blocked (no room at a subscriber): frame dropped

    def summary(self) -> dict[str, float]:
        def pct(values: deque[float], q: int) -> float:
            data = sorted(values)
            return round(data[min(len(data) - 1, len(data) * q // 100)], 3) if data else 0.0

        return {"published": self.published, "dropped": self.dropped,
                "render_ms_p50": pct(self.render_ms, 50), "render_ms_p95": pct(self.render_ms, 95),
                "overhead_ms_p50": pct(self.overhead_ms, 50), "overhead_ms_p95": pct(self.overhead_ms, 95),
                "render_ms_mean": round(statistics.fmean(self.render_ms), 3) if self.render_ms else 0.0}


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


# --- the engine ---------------------------------------------------------------------------------------------------

class Engine:
    """Commands in, frames out. ``run()`` blocks the calling thread (the command thread) until ``stop()``."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.status = "starting"  # -> "ok" | "failed"
        self.failure: EngineError | None = None
        self.renderer: Renderer | None = None
        self.renderer_reason = ""
        self.faces: FacePipeline | None = None
        self.frames_cache: ByteLRU[bytes] = ByteLRU(int(settings.frame_cache_mb * MiB), len)
        self.stats = FrameStats()
        self.frame_clock = FrameClock(self._on_tick, clock)
        self.avatars = AvatarRegistry(settings.max_avatars, int(settings.source_cache_mb * MiB),
                                      pinned=self.frame_clock.is_streaming)
        self.worker = Worker("render", settings.render_queue)
        self.encoder = Worker("encode", settings.render_queue + STREAM_ENCODE_DEPTH)
        self.prep = ThreadPoolExecutor(1, thread_name_prefix="prep")
        self._replies: queue.SimpleQueue[tuple[list[bytes], Reply]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stopping = threading.Event()
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        self._pub = self._ctx.socket(zmq.PUB)
        for sock in (self._router, self._pub):
            sock.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.SNDHWM, FRAME_HWM)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self._max_message = settings.max_image_bytes + 64 * 1024

    # -- life cycle --

    def start(self) -> None:
        """Bind both sockets (errors surface here), start the threads, begin loading the models."""
        try:
            self._router.bind(self.settings.command_addr)
            self._pub.bind(self.settings.frame_addr)
        except zmq.ZMQError:
            self._router.close(0)
            self._pub.close(0)
            self._ctx.term()
            raise
        log.info("commands on %s, frames on %s", self.settings.command_addr, self.settings.frame_addr)
        self.worker.start()
        self.encoder.start()
        self.frame_clock.start()
        self.worker.submit(self._load).add_done_callback(self._loaded)

    def run(self) -> None:
        self.start()
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._wake_r.fileno(), zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                events = dict(poller.poll(500))
                if self._wake_r.fileno() in events:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                self._send_replies()
                if self._router in events:
                    self._serve_one()
        finally:
            self.close()

    def stop(self) -> None:
        """Ask ``run`` to return (safe from a signal handler or another thread)."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def close(self) -> None:
        self.frame_clock.stop()
        self.worker.stop()  # the frame in flight is drawn ...
        self.encoder.stop()  # ... encoded and published
        self.prep.shutdown(wait=False, cancel_futures=True)
        self._send_replies()
        self._router.close(0)
        self._pub.close(0)
        self._ctx.term()
        self._wake_r.close()
        self._wake_w.close()
        log.info("engine stopped")

    # -- start-up (render thread) --

    def _load(self) -> None:
        s = self.settings
        self.renderer, self.renderer_reason = select_renderer(s.renderer, s.models_dir, s.device, s.dtype)
        log.info("renderer: %s (%s)", self.renderer.name, self.renderer_reason)
        detector = s.face_detector
        if self.renderer.name == "offline":  # it animates dlib's 68 iBUG points, not InsightFace's 106
            if detector == "onnx":
                raise BadRequest("the offline renderer needs the dlib face detector (68 points): "
                                 "use --face-detector auto or dlib with --renderer offline")
            detector = "dlib"
        self.faces = FacePipeline.create(s.models_dir, detector)
        if detector != s.face_detector:
            self.faces.reason = "the offline renderer animates dlib's 68 landmarks"
        log.info("face detector: %s (%s)", self.faces.name, self.faces.reason)
        face = self._detect_face(default_portrait())
        avatar = self._prepare(avatar_id(default_portrait()), face)
        self.avatars.default_id = avatar.id
        if s.warmup:
            started = time.perf_counter()
            encode_jpeg(self._draw(avatar, preset_state("neutral", 0.0), s.output).frame, s.jpeg_quality)
            log.info("warm-up render: %.1f ms", (time.perf_counter() - started) * 1000)

    def _loaded(self, future: Future[None]) -> None:
        exc = future.exception()
        if exc is None:
            self.status = "ok"
            log.info("ready")
        else:
            self.status = "failed"
            self.failure = exc if isinstance(exc, EngineError) else RenderFailed(f"start-up failed: {exc!r}")
            log.error("start-up failed: %s", exc, exc_info=exc)

    # -- the command socket (command thread) --

    def _serve_one(self) -> None:
        try:
            frames = self._router.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        if b"" in frames:
            split = frames.index(b"") + 1
            envelope, body = frames[:split], frames[split:]
        else:  # a DEALER peer without the empty delimiter
            envelope, body = frames[:1], frames[1:]

        def respond(reply: Reply) -> None:
            self._replies.put((envelope, reply))
            with contextlib.suppress(OSError):
                self._wake_w.send(b"r")

        try:
            if len(body) != 1:
                raise BadRequest(f"a request is one msgpack frame, not {len(body)} frames")
            request = p.parse_request(body[0], self._max_message)
            reply = self._handle(request, respond)
        except Exception as exc:  # a bug must cost one reply, never the process
            reply = self._error(exc)
        if reply is not None:
            respond(reply)
        self._send_replies()

    def _send_replies(self) -> None:
        while True:
            try:
                envelope, reply = self._replies.get_nowait()
            except queue.Empty:
                return
            try:
                self._router.send_multipart([*envelope, p.pack(reply)], zmq.NOBLOCK)
            except zmq.ZMQError as exc:  # the client went away: nothing to answer
                log.debug("reply dropped: %s", exc)

    @property
    def renderer_name(self) -> str:
        return self.renderer.name if self.renderer is not None else self.status

    def _ok(self, **fields: Any) -> Reply:
        return p.ok(self.renderer_name, **fields)

    def _handle(self, req: p.Request, respond: Respond) -> Reply | None:
        """Answer a request now (a reply) or later through ``respond`` (None)."""
        if isinstance(req, p.Health):
            return self._health()
        if isinstance(req, p.Expressions):
            return self._ok(expressions=list(EXPRESSIONS), intensities={"min": 0.0, "max": 1.0},
                            controls=[{"name": c.name, "min": c.minimum, "max": c.maximum} for c in CONTROLS])
        if self.status != "ok":
            if self.failure is not None:
                raise self.failure
            raise Busy("the engine is starting (loading models); retry shortly")
        if isinstance(req, p.ListAvatars):
            return self._ok(avatars=self.avatars.ids(), default=self.avatars.default_id,
                            streams=self.frame_clock.snapshot())
        if isinstance(req, p.SetSource):
            self._avatar_for(req.image).add_done_callback(
                lambda f: respond(self._settle(f, lambda r: self._source_reply(*r))))
            return None
        if isinstance(req, p.DropSource):
            avatar = self.avatars.drop(req.avatar)
            self.frame_clock.set_rate(avatar.id, 0)
            return self._ok(avatar=avatar.id)
        if isinstance(req, p.Render):
            self._render(req, respond)
            return None
        if isinstance(req, p.Stream):
            return self._stream(req)
        return self._animate(req)

    def _animate(self, req: p.Request) -> Reply:
        """Commands that change an avatar's animation: cheap, under the avatar's lock, answered at once."""
        avatar = self.avatars.get(getattr(req, "avatar", None))
        now = self.clock()
        with avatar.lock:
            a = avatar.animator
            if isinstance(req, p.SetExpression):
                a.set_expression(req.expression, req.intensity, req.transition_ms, now)
            elif isinstance(req, p.SetControls):
                if req.controls:
                    a.set_controls(req.controls, req.transition_ms, now, smooth=req.smooth)
                if req.keyframes:
                    a.schedule(req.keyframes, now)
            elif isinstance(req, p.Clear):
                a.clear(now)
            elif isinstance(req, p.SetIdle):
                seed = req.seed if req.seed is not None else a.idle_config.seed
                a.set_idle(dataclasses.replace(a.idle_config, enabled=req.enabled, seed=seed), now)
            else:
                raise BadRequest(f"unhandled command {type(req).__name__}")
        return self._ok(avatar=avatar.id, now=now)

    def _stream(self, req: p.Stream) -> Reply:
        fps = self.settings.default_fps if req.fps is None else req.fps
        if fps > self.settings.max_fps:
            raise BadRequest(f"'fps' must be within 0..{self.settings.max_fps}, not {fps}")
        avatar = self.avatars.get(req.avatar)
        self.frame_clock.set_rate(avatar.id, fps)
        return self._ok(avatar=avatar.id, fps=fps, topic=(p.FRAME_TOPIC + avatar.id.encode()).decode())

    def _health(self) -> Reply:
        reply = self._ok(
            status=self.status, version=p.VERSION, now=self.clock(), renderer_reason=self.renderer_reason,
            renderer_info=self.renderer.info() if self.renderer is not None else {},
            face_detector=self.faces.name if self.faces is not None else None,
            face_detector_reason=self.faces.reason if self.faces is not None else "",
            avatars=len(self.avatars.ids()), default_avatar=self.avatars.default_id,
            streams=self.frame_clock.snapshot(), frames=self.stats.summary(),
            caches={"sources": self.avatars.stats(), "frames": self.frames_cache.stats().as_dict()},
        )
        if self.failure is not None:
            reply["failure"] = self.failure.to_wire()
        return reply

    def _error(self, exc: BaseException) -> Reply:
        """The error reply for any failure: typed errors as they are, a bug as render_failed (and logged)."""
        if not isinstance(exc, EngineError):
            log.error("request failed", exc_info=exc)
            exc = RenderFailed(f"internal error: {type(exc).__name__}: {exc}")
        return p.error(exc, self.renderer_name)

    def _settle(self, future: Future[T], make: Callable[[T], Reply]) -> Reply:
        """A finished future -> its reply, or the typed error reply."""
        try:
            return make(future.result())
        except Exception as exc:
            return self._error(exc)

    # -- avatars --

    def _source_reply(self, avatar: Avatar, cached: bool) -> Reply:
        face = avatar.source.face
        return self._ok(avatar=avatar.id, cached=cached, faces=face.n_faces, detector=face.detector,
                        width=int(face.image.shape[1]), height=int(face.image.shape[0]))

    def _detect_face(self, image: bytes) -> FaceCrop:
        """Prep thread: bytes -> intake (with the limits) -> the largest face's crop."""
        assert self.faces is not None
        return self.faces.crop_bytes(image, self.settings.max_image_bytes, self.settings.max_image_pixels)

    def _prepare(self, aid: str, face: FaceCrop) -> Avatar:
        """Render thread: the renderer's resident source state, paste-back and a fresh animator."""
        assert self.renderer is not None
        found = self.avatars.find(aid)
        if found is not None:
            return found
        avatar = Avatar(aid, self.renderer.prepare(face), PasteBack(face), Animator(IdleConfig(), now=self.clock()))
        for evicted in self.avatars.add(avatar):
            log.info("avatar %s evicted", evicted)
        log.info("avatar %s ready (%d face(s), %s)", aid, face.n_faces, face.detector)
        return avatar

    def _avatar_for(self, image: bytes) -> Future[tuple[Avatar, bool]]:
        """The avatar of these bytes: resident already (cached) or detected, then prepared."""
        out: Future[tuple[Avatar, bool]] = Future()
        aid = avatar_id(image)
        found = self.avatars.find(aid)
        if found is not None:
            out.set_result((found, True))
            return out

        def detected(f: Future[FaceCrop]) -> None:
            try:
                face = f.result()
                self.worker.submit(lambda: self._prepare(aid, face)).add_done_callback(
                    lambda g: _forward(g, out, lambda a: (a, False)))
            except Exception as exc:
                out.set_exception(exc)

        self.prep.submit(self._detect_face, image).add_done_callback(detected)
        return out

    # -- frames --

    def _draw(self, avatar: Avatar, state: AnimationState, output: str) -> Drawn:
        """Render thread: state -> crop -> paste-back (a fresh frame: the encoder reads it while we draw on)."""
        assert self.renderer is not None
        started = time.perf_counter()
        crop = self.renderer.render(avatar.source, state)
        rendered = time.perf_counter()
        frame = avatar.paste.apply(crop) if output == "full" else crop
        return Drawn(frame, (rendered - started) * 1000, (time.perf_counter() - rendered) * 1000)

    def _state_of(self, avatar: Avatar, t: float) -> tuple[AnimationState, bool]:
        with avatar.lock:
            return avatar.animator.sample(t), avatar.animator.is_static(t)

    def _header(self, avatar: Avatar, state: AnimationState, jpeg: bytes, drawn: Drawn | None, t: float,
                seq: int = 0, late: int = 0) -> dict[str, Any]:
        width, height = (drawn.width, drawn.height) if drawn else jpeg_size(jpeg)
        return {"seq": seq, "ts": t, "wall": time.time(), "avatar": avatar.id, "expression": state.expression,
                "intensity": state.intensity, "width": width, "height": height,
                "render_ms": round(drawn.render_ms, 3) if drawn else 0.0, "renderer": self.renderer_name,
                "late": late, "cached": drawn is None}

    def _render(self, req: p.Render, respond: Respond) -> None:
        """The `render` command: a cached JPEG, or draw (render thread) then encode (encode thread), then reply."""
        output = req.output or self.settings.output
        quality = req.quality or self.settings.jpeg_quality

        def fail(exc: BaseException) -> None:
            respond(self._error(exc))

        def with_avatar(avatar: Avatar) -> None:
            t = self.clock()
            if req.expression is not None or req.controls:
                state, static = preset_state(req.expression or "neutral", req.intensity, req.controls), True
            else:
                state, static = self._state_of(avatar, t)
            key = (avatar.id, output, quality, state.key())
            jpeg = self.frames_cache.get(key) if static else None
            if jpeg is not None:
                respond(self._ok(avatar=avatar.id, jpeg=jpeg, cached=True,
                                 header=self._header(avatar, state, jpeg, None, t)))
                return

            def encoded(drawn: Drawn, future: Future[bytes]) -> None:
                if future.exception() is not None:
                    fail(future.exception())  # type: ignore[arg-type]
                    return
                jpeg = future.result()
                if static:
                    self.frames_cache.put(key, jpeg)
                respond(self._ok(avatar=avatar.id, jpeg=jpeg, cached=False,
                                 header=self._header(avatar, state, jpeg, drawn, t)))

            def drawn(future: Future[Drawn]) -> None:
                if future.exception() is not None:
                    fail(future.exception())  # type: ignore[arg-type]
                    return
                d = future.result()
                try:
                    self.encoder.submit(lambda: encode_jpeg(d.frame, quality)).add_done_callback(
                        lambda f: encoded(d, f))
                except Busy as exc:
                    fail(exc)

            self.worker.submit(lambda: self._draw(avatar, state, output)).add_done_callback(drawn)

        def on_avatar(future: Future[tuple[Avatar, bool]]) -> None:
            try:
                with_avatar(future.result()[0])
            except Exception as exc:
                fail(exc)

        if req.image is not None:
            self._avatar_for(req.image).add_done_callback(on_avatar)
        else:
            with_avatar(self.avatars.get(req.avatar))

    def _on_tick(self, stream: StreamClock, t: float) -> bool:
        """Clock thread: hand one frame to the render thread; False when it has no room (a late frame)."""
        try:
            self.worker.submit(lambda: self._stream_frame(stream, t))
            return True
        except Busy:
            return False

    def _stream_frame(self, stream: StreamClock, t: float) -> None:
        """Render thread: sample the animation at the tick time, draw it (or take it from the cache), hand it on."""
        try:
            avatar = self.avatars.find(stream.avatar)
            if avatar is None:
                self.frame_clock.set_rate(stream.avatar, 0)
                return
            output, quality = self.settings.output, self.settings.jpeg_quality
            state, static = self._state_of(avatar, t)
            key = (avatar.id, output, quality, state.key()) if static else None
            jpeg = self.frames_cache.get(key) if key else None
            drawn = None if jpeg is not None else self._draw(avatar, state, output)
            if self.encoder.pending >= STREAM_ENCODE_DEPTH:
                self.frame_clock.count_late(stream)  # the encoder is behind: drop rather than queue
                return
            self.encoder.submit(lambda: self._publish(stream, avatar, state, t, drawn, jpeg, key, quality))
        except Busy:
            self.frame_clock.count_late(stream)
        except Exception:
            log.exception("stream frame failed for %s", stream.avatar)
        finally:
            self.frame_clock.frame_done(stream)

    def _publish(self, stream: StreamClock, avatar: Avatar, state: AnimationState, t: float, drawn: Drawn | None,
                 jpeg: bytes | None, key: tuple[Any, ...] | None, quality: int) -> None:
        """Encode thread: JPEG (unless cached), header with the next seq, PUB without blocking."""
        started = time.perf_counter()
        if jpeg is None:
            assert drawn is not None
            jpeg = encode_jpeg(drawn.frame, quality)
            if key is not None:
                self.frames_cache.put(key, jpeg)
        header = self._header(avatar, state, jpeg, drawn, t, self.frame_clock.take_seq(stream), stream.late)
        try:
            self._pub.send_multipart([p.FRAME_TOPIC + avatar.id.encode(), msgpack.packb(header), jpeg], zmq.NOBLOCK)
            self.stats.published += 1
        except zmq.Again:
            self.stats.dropped += 1
        if drawn is not None:
            self.stats.render_ms.append(drawn.render_ms)
            self.stats.overhead_ms.append(drawn.paste_ms + (time.perf_counter() - started) * 1000)


def _forward(src: Future[Any], dst: Future[Any], convert: Callable[[Any], Any]) -> None:
    exc = src.exception()
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(convert(src.result()))

