"""The prep process(es): uploaded bytes -> FaceCrop in a spawned child, off the engine's GIL.

Decoding a photo, dlib's HOG and CNN detectors, the 68-point fit and the ONNX runner's pre/post-processing hold
the GIL for long stretches (bench/bench_prep.py measures each step; the CNN fallback holds it ~1 s): in a thread of
the engine they stall the clock, the command loop and every stream. So they run in a child process::

    command thread ── PrepPool.crop(bytes) ──> bounded queue (Busy when full)
                                                 └─> "prep-<i>" thread: send bytes, wait (GIL released) ──> child i
                                                                                                   decode, detect,
                     FaceCrop (arrays) or the typed error <──────────────────────────────────────── landmarks, crop

- Each child is spawned (no fork of a threaded process), builds its detector once at start (``FacePipeline.create``)
  and answers ``("ready", name, reason)``; the engine does not wait for that to answer ``health``.
- A child that dies (killed, out of memory, a crash in native code) or runs past ``REQUEST_TIMEOUT_S`` has its
  request answered ``PrepFailed`` and is replaced by a fresh one at once: never a hang, never a dead pool.
- The decode's memory lives and is given back (``malloc_trim``) in the child: the engine only ever holds the
  result (the photo at most 1280 on its longer side, the 512 crop, the 256 input, landmarks).
- The renderer's ``prepare`` (source features) is not done here: it stays on the render thread, which owns torch.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from engine.errors import EngineError, Internal, PrepFailed
from engine.face.types import FaceCrop
from engine.workers import Worker

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 120.0  # one photo in the child; the CNN on a loaded 2-core machine takes seconds, not minutes
READY_TIMEOUT_S = 180.0  # a fresh child: interpreter start + importing dlib / onnxruntime + loading the detector


@dataclass(frozen=True)
class PrepConfig:
    """What a child needs to build its detector and check an upload."""

    models_dir: str | None
    detector: str  # "auto" | "onnx" | "dlib"
    max_bytes: int
    max_pixels: int


def _child_main(conn: Connection, config: PrepConfig) -> None:
    """The child: build the detector once, then answer one request at a time until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the engine decides when we stop
    logging.basicConfig(level=os.environ.get("LP_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s[prep %(process)d]: %(message)s")
    from engine.face.pipeline import FacePipeline

    try:
        faces = FacePipeline.create(config.models_dir, config.detector)
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
            reply: tuple[str, Any] = ("ok", faces.crop_bytes(data, config.max_bytes, config.max_pixels))
        except EngineError as exc:
            reply = ("error", exc)
        except Exception as exc:  # a bug in the child is the request's answer, never the child's end
            log.exception("prep request failed")
            reply = ("error", Internal(f"prep failed: {type(exc).__name__}: {exc}"))
        del data
        conn.send(reply)


class PrepChild:
    """One spawned child and its pipe; used by one prep thread at a time."""

    def __init__(self, config: PrepConfig, index: int) -> None:
        self.config = config
        self.index = index
        self.name: str | None = None  # the detector's name once the child says it is ready
        self.reason = ""
        self.restarts = 0
        self._proc: Any = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def spawn(self) -> None:
        """Start a fresh child (returns at once: the child loads its detector on its own time)."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child, self.config), name=f"prep-{self.index}",
                                 daemon=True)
        self._proc.start()
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

    def _ready(self) -> None:
        if self.name is not None:
            return
        message = self._wait(READY_TIMEOUT_S)
        if message[0] == "failed":
            self.close()
            raise message[1]
        _, self.name, self.reason = message

    def crop(self, data: bytes) -> FaceCrop:
        """Prep thread: the bytes to the child, its FaceCrop or typed error back (the wait releases the GIL)."""
        if self._proc is None:
            self.spawn()
        self._ready()
        assert self._conn is not None
        with contextlib.suppress(OSError):  # the child is gone: _wait below sees it and answers PrepFailed
            self._conn.send_bytes(data)
        kind, value = self._wait(REQUEST_TIMEOUT_S)
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
            self._proc = None


class PrepPool:
    """``processes`` children, each fed by its own prep thread from one bounded queue (Busy when full)."""

    def __init__(self, config: PrepConfig, processes: int = 1, max_queue: int = 4) -> None:
        self.config = config
        self.children = [PrepChild(config, i) for i in range(processes)]
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
                "restarts": sum(c.restarts for c in self.children), "queued": self.worker.pending}

    def crop(self, data: bytes) -> Future[FaceCrop]:
        """Any thread: the FaceCrop of these bytes, from a child; Busy at once when the queue is full."""
        return self.worker.submit(lambda: self._crop(data))

    def _crop(self, data: bytes) -> FaceCrop:
        with self._lock:  # each prep thread takes a child of its own
            child = self._free.pop()
        started = time.perf_counter()
        try:
            return child.crop(data)
        finally:
            log.debug("prep %d: %.0f ms", child.index, (time.perf_counter() - started) * 1000)
            with self._lock:
                self._free.append(child)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Block until every child has its detector (start-up, tests); raises the child's error if it failed."""
        for future in [self.worker.submit(c._ready) for c in self.children[:1]]:
            future.result(timeout)

