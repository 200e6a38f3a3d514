"""The prep process(es): uploaded bytes -> FaceCrop (and, for the offline renderer, its source state) in a
spawned child, off the engine's GIL and off the render thread.

Decoding a photo, dlib's HOG and CNN detectors, the 68-point fit and the ONNX runner's pre/post-processing hold
the GIL for long stretches (bench/bench_prep.py measures each step; the CNN fallback holds it ~1 s): in a thread of
the engine they stall the clock, the command loop and every stream. So they run in a child process::

    command thread ── PrepPool.prepare(bytes) ──> bounded queue (Busy when full)
                                                 └─> "prep-<i>" thread: send bytes, wait (GIL released) ──> child i
                                                                                                   decode, detect,
                     Prepared (arrays) or the typed error <──────────────────────────────────────── landmarks, crop
                                                                                         [+ renderer.prepare]

- Each child is spawned (no fork of a threaded process), builds its detector once at start (``FacePipeline.create``)
  and answers ``("ready", name, reason)``; the engine does not wait for that to answer ``health``.
- A child that dies (killed, out of memory, a crash in native code) or runs past ``REQUEST_TIMEOUT_S`` has its
  request answered ``PrepFailed`` and is replaced by a fresh one at once: never a hang, never a dead pool.
- The decode's memory lives and is given back (``malloc_trim``) in the child: the engine only ever holds the
  result (the photo at most 1280 on its longer side, the 512 crop, the 256 input, landmarks).
- A renderer whose ``prepare`` needs nothing the render thread owns (``prepares_anywhere``: the offline renderer,
  numpy only, ~0.6-1.3 s a portrait) is built in the child too and its source state and paste-back come back
  ready: a new avatar never holds the render thread. LivePortrait's source features (torch, the GPU) stay on the
  render thread.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from engine.errors import EngineError, Internal, PrepFailed
from engine.face.intake import give_back_memory
from engine.face.pasteback import PasteBack
from engine.face.types import FaceCrop
from engine.render.base import Renderer, SourceState
from engine.workers import Worker

log = logging.getLogger(__name__)
T = TypeVar("T")

REQUEST_TIMEOUT_S = 120.0  # one photo in the child; the CNN on a loaded 2-core machine takes seconds, not minutes
READY_TIMEOUT_S = 180.0  # a fresh child: interpreter start + importing dlib / onnxruntime + loading the detector


@dataclass(frozen=True)
class PrepConfig:
    """What a child needs to build its detector (and renderer) and check an upload."""

    models_dir: str | None
    detector: str  # "auto" | "onnx" | "dlib"
    max_bytes: int
    max_pixels: int
    renderer: str | None = None  # a renderer that prepares anywhere ("offline"): the child runs its prepare


@dataclass(frozen=True)
class Prepared:
    """One upload, prepared as far as the child can: the crop, and for ``PrepConfig.renderer`` the source state
    and paste-back too (else None: the render thread prepares the source)."""

    face: FaceCrop
    source: SourceState | None = None
    paste: PasteBack | None = None


def _child_renderer(name: str | None) -> Renderer | None:
    if name is None:
        return None
    if name != "offline":
        raise ValueError(f"renderer {name!r} does not prepare outside the render thread")
    from engine.render.offline import OfflineRenderer

    return OfflineRenderer("prep process")


def _child_main(conn: Connection, config: PrepConfig) -> None:
    """The child: build the detector once, then answer one request at a time until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the engine decides when we stop
    logging.basicConfig(level=os.environ.get("LP_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s[prep %(process)d]: %(message)s")
    from engine.face.pipeline import FacePipeline

    try:
        faces = FacePipeline.create(config.models_dir, config.detector)
        renderer = _child_renderer(config.renderer)
    except Exception as exc:
        conn.send(("failed", exc if isinstance(exc, EngineError) else Internal(f"face detector: {exc!r}")))
        return
    conn.send(("ready", faces.name, faces.reason))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):  # the engine closed the pipe or died: nothing left to do
            return
        try:
            face = faces.crop_bytes(data, config.max_bytes, config.max_pixels)
            reply: tuple[str, Any] = ("ok", Prepared(face) if renderer is None else
                                      Prepared(face, renderer.prepare(face), PasteBack(face)))
        except EngineError as exc:
            reply = ("error", exc)
        except Exception as exc:  # a bug in the child is the request's answer, never the child's end
            log.exception("prep request failed")
            reply = ("error", Internal(f"prep failed: {type(exc).__name__}: {exc}"))
        del data
        conn.send(reply)


class PrepChild:
    """One spawned child and its pipe; used by one prep thread at a time."""

    def __init__(self, config: PrepConfig, index: int, request_timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.config = config
        self.index = index
        self.request_timeout = request_timeout
        self.name: str | None = None  # the detector's name once the child says it is ready
        self.reason = ""
        self.restarts = 0
        self._proc: Any = None
        self._conn: Connection | None = None
        self._pid: int | None = None  # kept apart: health reads it from the command thread while _proc changes

    @property
    def pid(self) -> int | None:
        return self._pid

    def spawn(self) -> None:
        """Start a fresh child (returns at once: the child loads its detector on its own time)."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child, self.config), name=f"prep-{self.index}",
                                 daemon=True)
        self._proc.start()
        self._pid = self._proc.pid
        child.close()
        self._conn, self.name = parent, None

    def _wait(self, timeout: float) -> Any:
        """The child's next message; PrepFailed when it dies or says nothing within ``timeout``."""
        assert self._conn is not None
        ready = wait([self._conn, self._proc.sentinel], timeout)
        if self._conn in ready:
            try:
                return self._conn.recv()
            except (EOFError, OSError):
                pass  # it died after writing part of an answer, or just as it was read
        if not ready:
            self._replace(f"gave no answer in {timeout:g} s")
            raise PrepFailed(f"the prep process gave no answer in {timeout:g} s; it has been restarted")
        self._proc.join(1.0)
        code = self._proc.exitcode
        self._replace(f"died (exit code {code})")
        raise PrepFailed(f"the prep process died (exit code {code}) handling this image; it has been restarted")

    def _replace(self, why: str) -> None:
        log.error("prep process %s %s: starting a new one", self.pid, why)
        self.close()
        self.restarts += 1
        self.spawn()

    def ready(self) -> None:
        if self.name is not None:
            return
        message = self._wait(READY_TIMEOUT_S)
        if message[0] == "failed":
            self.close()
            raise message[1]
        _, self.name, self.reason = message

    def prepare(self, data: bytes) -> Prepared:
        """Prep thread: the bytes to the child, its Prepared or typed error back (the wait releases the GIL)."""
        if self._proc is None:
            self.spawn()
        self.ready()
        assert self._conn is not None
        with contextlib.suppress(OSError):  # the child is gone: _wait below sees it and answers PrepFailed
            self._conn.send_bytes(data)
        kind, value = self._wait(self.request_timeout)
        if kind == "error":
            raise value
        return value

    def close(self, timeout: float = 2.0) -> None:
        """Close the pipe (the child exits at once), then make sure it has."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(timeout)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout)
            self._proc.close()
            self._proc = self._pid = None


class PrepPool:
    """``processes`` children, each fed by its own prep thread from one bounded queue (Busy when full)."""

    def __init__(self, config: PrepConfig, processes: int = 1, max_queue: int = 4,
                 request_timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.config = config
        self.children = [PrepChild(config, i, request_timeout) for i in range(processes)]
        self._free = list(self.children)
        self._lock = threading.Lock()
        self.worker = Worker("prep", max_queue, threads=processes)
        self.reason_override = ""

    def start(self) -> None:
        """Spawn the children (their detectors load in the background) and start the prep threads."""
        for child in self.children:
            child.spawn()
        self.worker.start()

    def stop(self) -> None:
        """The request in flight finishes, the queued ones are refused Busy; then the children exit."""
        self.worker.stop()
        for child in self.children:
            child.close()

    @property
    def alive(self) -> bool:
        return self.worker.alive

    @property
    def name(self) -> str | None:
        """The detector's name (None until a child has loaded it)."""
        return next((c.name for c in self.children if c.name is not None), None)

    @property
    def reason(self) -> str:
        return self.reason_override or next((c.reason for c in self.children if c.name is not None), "")

    def pids(self) -> list[int]:
        return [pid for c in self.children if (pid := c.pid) is not None]

    def stats(self) -> dict[str, Any]:
        return {"processes": len(self.children), "ready": sum(c.name is not None for c in self.children),
                "restarts": sum(c.restarts for c in self.children), "queued": self.worker.pending,
                "pids": self.pids()}

    def prepare(self, data: bytes) -> Future[Prepared]:
        """Any thread: these bytes prepared by a child; Busy at once when the queue is full.

        First the engine's freed heap pages go back to the OS (``malloc_trim``, GIL released, 0-50 ms): the avatars
        evicted since the last upload were ~20 MB each, and glibc keeps such pages otherwise (RSS creeps up). It is
        done here, on the prep thread, because nothing else waits for it."""
        def job() -> Prepared:
            give_back_memory()
            return self._with_child(lambda child: child.prepare(data))

        return self.worker.submit(job)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Block until a child has its detector (start-up, tests); raises the child's error if it failed."""
        self.worker.submit(lambda: self._with_child(PrepChild.ready)).result(timeout)

    def _with_child(self, fn: Callable[[PrepChild], T]) -> T:
        with self._lock:  # each prep thread takes a child of its own
            child = self._free.pop()
        started = time.perf_counter()
        try:
            return fn(child)
        finally:
            log.debug("prep %d: %.0f ms", child.index, (time.perf_counter() - started) * 1000)
            with self._lock:
                self._free.append(child)

