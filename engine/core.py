"""What the command handlers work on: the engine's state, its workers, start-up and avatar preparation.

``Core`` holds no socket (server.py owns those) and starts no thread of its own (workers.py does); it wires them:
settings -> workers -> frame path -> avatars. Start-up (``load``) runs on the render thread; every continuation
comes back to the command thread through the Mailbox.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from importlib import resources

from engine.animation.presets import preset_state
from engine.animation.timeline import Animator, IdleConfig
from engine.audio_out import AUDIO_DEPTH, AudioOut
from engine.avatars import Avatar, AvatarRegistry, avatar_id
from engine.cache import ByteLRU
from engine.codec import encode_jpeg
from engine.config import Settings
from engine.errors import ConfigError, EngineError, Internal
from engine.face.pasteback import PasteBack
from engine.face.pipeline import FacePipeline
from engine.face.types import FaceCrop
from engine.frames import STREAM_ENCODE_DEPTH, FramePath
from engine.render.base import Renderer
from engine.render.select import fits_stream_budget, select_renderer
from engine.workers import FrameClock, Mailbox, Worker

log = logging.getLogger(__name__)

MiB = 1 << 20


def default_portrait() -> bytes:
    """The bundled portrait (the scikit-image astronaut, public domain): warm-up and the `default` avatar."""
    return resources.files("engine.assets").joinpath("default_portrait.jpg").read_bytes()


class Core:
    """The engine minus its sockets: settings, workers, avatars, the frame path, and the start-up state."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.status = "starting"  # -> "ok" | "failed"
        self.failure: EngineError | None = None
        self.renderer: Renderer | None = None
        self.renderer_reason = ""
        self.faces: FacePipeline | None = None
        self.mailbox = Mailbox()
        self.prep = Worker("prep", settings.render_queue)
        self.render = Worker("render", settings.render_queue)
        self.encode = Worker("encode", settings.render_queue)
        self.publish = Worker("publish", STREAM_ENCODE_DEPTH + AUDIO_DEPTH)  # frames check their own depth
        self.frames = FramePath(self.render, self.encode, self.publish, self.mailbox, FrameClock(self._tick, clock),
                                ByteLRU(int(settings.frame_cache_mb * MiB), len), lambda: self.renderer_name)
        self.frame_clock = self.frames.frame_clock
        self.frames.output, self.frames.quality = settings.output, settings.jpeg_quality
        self.avatars = AvatarRegistry(settings.max_avatars, int(settings.source_cache_mb * MiB),
                                      pinned=self.frame_clock.is_streaming)
        self.frames.find_avatar = self.avatars.find
        self.audio = AudioOut(self.publish, lambda: self.frames.pub)  # speech audio on the PUB socket

    def _tick(self, stream: object, t: float) -> bool:
        return self.frames.on_tick(stream, t)  # type: ignore[arg-type]

    @property
    def renderer_name(self) -> str:
        return self.renderer.name if self.renderer is not None else "none"

    # -- life cycle --

    def start(self) -> None:
        """Start every thread and begin loading the models on the render thread."""
        for worker in (self.prep, self.render, self.encode, self.publish):
            worker.start()
        self.frame_clock.start()
        self.mailbox.then(self.render.submit(self.load), self._loaded)

    def stop(self) -> None:
        """In order: no new ticks, then each worker finishes its job in flight (draw, then encode, then publish)."""
        self.frame_clock.stop()
        self.prep.stop()
        self.render.stop()
        self.encode.stop()
        self.publish.stop()

    def dead_threads(self) -> list[str]:
        """Threads that should be running and are not: any makes health fail."""
        named = {w.name: w.alive for w in (self.prep, self.render, self.encode, self.publish)}
        named["clock"] = self.frame_clock.alive
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
        self.renderer, self.renderer_reason, self.frames.renderer = renderer, reason, renderer
        log.info("renderer: %s (%s)", renderer.name, reason)
        detector = "dlib" if renderer.name == "offline" else s.face_detector  # offline animates dlib's 68 points
        if renderer.name == "offline" and s.face_detector == "onnx":
            raise ConfigError("the offline renderer needs the dlib face detector (68 points): "
                              "use --face-detector auto or dlib with --renderer offline")
        if self.faces is None or (detector != "auto" and self.faces.name != detector):
            self.faces = FacePipeline.create(s.models_dir, detector)
        if detector != s.face_detector:
            self.faces.reason = "the offline renderer animates dlib's 68 landmarks"
        log.info("face detector: %s (%s)", self.faces.name, self.faces.reason)

    def _default_avatar(self) -> Avatar:
        """Render thread: the bundled portrait, prepared by the current renderer (replacing any earlier one)."""
        aid = avatar_id(default_portrait())
        self.avatars.pop(aid)
        avatar = self.prepare(aid, self.detect_face(default_portrait()))
        self.avatars.default_id = avatar.id
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

    def detect_face(self, image: bytes) -> FaceCrop:
        """Prep thread: bytes -> intake (with the limits) -> the largest face's crop."""
        assert self.faces is not None
        return self.faces.crop_bytes(image, self.settings.max_image_bytes, self.settings.max_image_pixels)

    def prepare(self, aid: str, face: FaceCrop) -> Avatar:
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

        def detected(f: Future[FaceCrop]) -> None:
            try:
                face = f.result()
                self.mailbox.then(self.render.submit(lambda: self.prepare(aid, face)), prepared)
            except Exception as exc:
                out.set_exception(exc)

        self.mailbox.then(self.prep.submit(lambda: self.detect_face(image)), detected)
        return out
