"""What the command handlers work on: the engine's state, its workers, start-up and avatar preparation.

``Core`` opens no socket (server.py owns those and hands it the PUB socket) and starts no thread of its own
(workers.py does; prep.py the prep processes); it wires them: settings -> workers -> frame path -> avatars.
Start-up (``load``) runs on the render thread; every continuation comes back to the command thread through the
Mailbox. An upload goes bytes -> prep process (decode, detect, crop) -> render thread (the renderer's ``prepare``,
which needs torch) -> resident avatar.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from importlib import resources
from typing import TYPE_CHECKING

from engine.animation.presets import preset_state
from engine.animation.timeline import Animator, IdleConfig
from engine.audio_out import AUDIO_DEPTH, AudioOut
from engine.avatars import Avatar, AvatarRegistry, avatar_id
from engine.cache import ByteLRU
from engine.codec import encode_jpeg
from engine.config import Settings
from engine.errors import Busy, ConfigError, EngineError, Internal
from engine.face.pasteback import PasteBack
from engine.frames import STREAM_ENCODE_DEPTH, FramePath, FrameWorkers
from engine.prep import Prepared, PrepConfig, PrepPool
from engine.render.base import Renderer
from engine.render.select import fits_stream_budget, select_renderer
from engine.workers import FrameClock, Mailbox, Worker

if TYPE_CHECKING:
    import zmq

log = logging.getLogger(__name__)

MiB = 1 << 20
PREP_PROCESSES = 1  # children decoding and detecting uploads: one keeps a core free for the streams on 2 cores
CLIP_QUEUE = 2  # talking clips waiting for the clip worker (one more is being made); more are refused busy
CLIP_FRAME_DEPTH = 1  # clip frames waiting on the render thread's side lane: one is enough to keep it fed


def default_portrait() -> bytes:
    """The bundled portrait (the scikit-image astronaut, public domain): warm-up and the `default` avatar."""
    return resources.files("engine.assets").joinpath("default_portrait.jpg").read_bytes()


class Core:
    """The engine minus its sockets: settings, workers, avatars, the frame path, and the start-up state."""

    def __init__(self, settings: Settings, pub: zmq.Socket | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.status = "starting"  # -> "ok" | "failed"
        self.failure: EngineError | None = None
        self.renderer_reason = ""
        self.faces: PrepPool | None = None  # the prep processes; made on the render thread once the renderer is known
        self.mailbox = Mailbox()
        self.speech = Worker("speech", settings.render_queue)  # live `speak`: decode + analysis (short, ~ms per s)
        self.clips = Worker("clip", CLIP_QUEUE)  # talking clips: decode, animation, H.264; frames on render's side lane
        self.render = Worker("render", settings.render_queue, side_depth=CLIP_FRAME_DEPTH)
        self.encode = Worker("encode", settings.render_queue)
        # frames check their own depth; audio chunks take the side lane (never counted against the frames' room)
        self.publish = Worker("publish", STREAM_ENCODE_DEPTH + AUDIO_DEPTH, side_depth=AUDIO_DEPTH)
        self.frame_clock = FrameClock(self._tick, clock)
        self.avatars = AvatarRegistry(settings.max_avatars, int(settings.source_cache_mb * MiB),
                                      pinned=self.frame_clock.is_streaming)
        self.frames = FramePath(FrameWorkers(self.render, self.encode, self.publish), self.mailbox, self.frame_clock,
                                ByteLRU(int(settings.frame_cache_mb * MiB), len), self.avatars.find, pub,
                                settings.output, settings.jpeg_quality)
        self.clips_running: dict[str, threading.Event] = {}  # clip id -> its cancel flag (command thread only)
        self.audio = AudioOut(self.publish, lambda: pub, clock)  # speech audio on the PUB socket, paced (audio thread)

    def _tick(self, stream: object, t: float) -> bool:
        return self.frames.on_tick(stream, t)  # type: ignore[arg-type]

    @property
    def renderer(self) -> Renderer | None:
        return self.frames.renderer

    @property
    def renderer_name(self) -> str:
        return self.frames.renderer_name

    # -- life cycle --

    def start(self) -> None:
        """Start every thread and begin loading the models on the render thread."""
        for worker in self._workers():
            worker.start()
        self.frame_clock.start()
        self.audio.start()
        self.mailbox.then(self.render.submit(self.load), self._loaded)

    def _workers(self) -> tuple[Worker, ...]:
        return self.speech, self.clips, self.render, self.encode, self.publish

    def stop(self) -> None:
        """In order: no new ticks, then each worker finishes its job in flight (draw, then encode, then publish);
        the running clips are cancelled first so the clip worker does not wait on a render thread that is gone."""
        self.frame_clock.stop()
        self.audio.stop()
        for cancel in list(self.clips_running.values()):
            cancel.set()
        self.render.wake()
        if self.faces is not None:
            self.faces.stop()
        for worker in self._workers():
            worker.stop()

    def dead_threads(self) -> list[str]:
        """Threads that should be running and are not: any makes health fail (a prep *process* that dies is
        replaced, its request answered prep_failed; its thread is what is checked here)."""
        named = {w.name: w.alive for w in self._workers()}
        if self.faces is not None:
            named["prep"] = self.faces.alive
        named["clock"] = self.frame_clock.alive
        named["audio"] = self.audio.alive
        return [name for name, alive in named.items() if not alive]

    # -- start-up (render thread) --

    def load(self) -> None:
        """Render thread: the renderer, the face detector, the default avatar, and (for ``auto``) the measurement."""
        s = self.settings
        renderer, reason = select_renderer(s.renderer, s.models_dir, s.device, s.dtype)
        self._use(renderer, reason)
        avatar = self._default_avatar()
        if s.renderer == "auto" and renderer.name == "liveportrait":
            fits, why = fits_stream_budget(self._timed_frame(avatar), s.default_fps)
            log.info("renderer check: %s", why)
            if not fits:
                from engine.render.offline import OfflineRenderer

                self._use(OfflineRenderer(why), why)
                avatar = self._default_avatar()
            else:
                self.renderer_reason = f"{reason}; {why}"
        elif s.warmup:
            log.info("warm-up render: %.1f ms", self._timed_frame(avatar))

    def _use(self, renderer: Renderer, reason: str) -> None:
        """Render thread: draw with this renderer, and pick the face detector it needs."""
        s = self.settings
        self.renderer_reason = reason
        self.frames.use(renderer)
        log.info("renderer: %s (%s)", renderer.name, reason)
        detector = "dlib" if renderer.name == "offline" else s.face_detector  # offline animates dlib's 68 points
        if renderer.name == "offline" and s.face_detector == "onnx":
            raise ConfigError("the offline renderer needs the dlib face detector (68 points): "
                              "use --face-detector auto or dlib with --renderer offline")
        anywhere = renderer.name if getattr(renderer, "prepares_anywhere", False) else None
        config = PrepConfig(str(s.models_dir) if s.models_dir is not None else None, detector, s.max_image_bytes,
                            s.max_image_pixels, anywhere)
        if self.faces is None or self.faces.config != config:
            old, self.faces = self.faces, PrepPool(config, PREP_PROCESSES, s.render_queue)
            self.faces.start()  # spawns the children; each loads its detector in the background
            if old is not None:
                old.stop()
        if detector != s.face_detector:
            self.faces.reason_override = "the offline renderer animates dlib's 68 landmarks"

    def _default_avatar(self) -> Avatar:
        """Render thread: the bundled portrait, prepared by the current renderer (replacing any earlier one)."""
        aid = avatar_id(default_portrait())
        self.avatars.pop(aid)
        avatar = self.prepare(aid, self.detect_face(default_portrait()).result())
        self.avatars.default_id = avatar.id
        assert self.faces is not None
        log.info("face detector: %s (%s)", self.faces.name, self.faces.reason)
        return avatar

    def _timed_frame(self, avatar: Avatar) -> float:
        """Render thread: ms to draw and encode one frame; a slow first frame (lazy set-up) is drawn twice."""
        def once() -> float:
            started = time.perf_counter()
            encode_jpeg(self.frames.draw(avatar, preset_state("neutral", 0.0), self.settings.output).frame,
                        self.settings.jpeg_quality)
            return (time.perf_counter() - started) * 1000

        first = once()
        budget_ms = 1000.0 / self.settings.default_fps
        return first if first <= budget_ms or first > 20 * budget_ms else min(first, once())

    def _loaded(self, future: Future[None]) -> None:
        """Command thread: start-up finished."""
        exc = future.exception()
        if exc is None:
            self.status = "ok"
            log.info("ready")
            return
        self.status = "failed"
        self.failure = exc if isinstance(exc, EngineError) else Internal(f"start-up failed: {exc!r}")
        log.error("start-up failed: %s", exc, exc_info=exc)

    # -- avatars --

    def detect_face(self, image: bytes) -> Future[Prepared]:
        """Any thread: bytes -> (prep process) intake with the limits -> the largest face's crop [-> source state]."""
        if self.faces is None:
            raise Busy("the engine is starting (loading models); retry shortly")
        return self.faces.prepare(image)

    def prepare(self, aid: str, prepared: Prepared) -> Avatar:
        """The resident avatar: source state and paste-back from the prep process when the renderer prepares
        anywhere (any thread, ~1 ms), else the renderer's ``prepare`` here (render thread only: torch)."""
        assert self.renderer is not None
        found = self.avatars.find(aid)
        if found is not None:
            return found
        face = prepared.face
        source = prepared.source if prepared.source is not None else self.renderer.prepare(face)
        paste = prepared.paste if prepared.paste is not None else PasteBack(face)
        avatar = Avatar(aid, source, paste, Animator(IdleConfig(), now=self.clock()))
        for evicted in self.avatars.add(avatar):  # its pages go back to the OS at the next upload (engine/prep.py)
            log.info("avatar %s evicted", evicted)
        log.info("avatar %s ready (%d face(s), %s)", aid, face.n_faces, face.detector)
        return avatar

    def avatar_for(self, image: bytes) -> Future[tuple[Avatar, bool]]:
        """Command thread: the avatar of these bytes, resident (cached) or detected (prep) then prepared (render).

        The future resolves on the command thread."""
        out: Future[tuple[Avatar, bool]] = Future()
        aid = avatar_id(image)
        found = self.avatars.find(aid)
        if found is not None:
            out.set_result((found, True))
            return out

        def prepared(f: Future[Avatar]) -> None:
            if f.exception() is not None:
                out.set_exception(f.exception())  # type: ignore[arg-type]
            else:
                out.set_result((f.result(), False))

        def detected(f: Future[Prepared]) -> None:
            try:
                done = f.result()
                if done.source is not None:  # prepared in the child: nothing left for the render thread
                    out.set_result((self.prepare(aid, done), False))
                    return
                self.mailbox.then(self.render.submit(lambda: self.prepare(aid, done)), prepared)
            except Exception as exc:
                out.set_exception(exc)

        self.mailbox.then(self.detect_face(image), detected)
        return out
