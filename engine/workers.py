"""Every thread of the engine, and the queues between them. No other module starts a thread (engine/prep.py starts
the prep *processes*, each fed by a prep thread made here).

::

    client REQ ──> ROUTER ─┐
                           │  command thread (server.Engine.run): parses, runs handlers.HANDLERS[type(req)],
                           │  sends every reply, runs every continuation (Mailbox)
       Mailbox (queue +    │
       socketpair wake) <──┼─────────────────────────────────────────────────────────────────┐
                           ├─> prep Worker    (render_queue)  waits on a prep process:        ─┤
                           │      decode + detect + crop [+ offline prepare] in the child (engine/prep.py)
                           ├─> speech Worker  (render_queue)  live `speak`: decode + analyse   ─┤
                           ├─> clip Worker    (CLIP_QUEUE)    talking clips: decode, H.264     ─┤
                           │      └─ each frame ──> render Worker's side lane (depth 1; waits for room, no poll)
                           ├─> render Worker  (render_queue)  load models, prepare (torch), draw ─┤
                           └─> encode Worker  (render_queue)  JPEG for `render` replies         ─┘
       FrameClock thread ("clock"): ticks each stream from a fixed origin ──> render Worker (stream frame)
           render Worker ──> publish Worker (queue: STREAM_ENCODE_DEPTH) JPEG + PUB for streams; owns the PUB socket

- A job's result reaches the command thread only through ``Mailbox.then``: a continuation never runs on a worker.
- Nothing that holds the GIL for long runs on a thread here: decoding and detection (dlib's CNN holds it ~1-6 s)
  run in the prep process; bench/bench_prep.py measures each step.
- The render worker takes its main queue first (stream ticks, `render` replies); clip frames wait in its side lane
  and are drawn only when that queue is empty, so a stream waits at most one clip frame.
- Stream frames have their own encode budget (the publish worker), so a burst of ``render`` replies cannot starve
  a stream, and room in it is checked *before* drawing (``frames.FramePath``): no frame is drawn to be dropped.
- Each thread reports ``alive``; ``health`` fails when one has died (``Core.dead_threads``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.errors import Busy, Cancelled

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_CLOCK_WAIT_S = 1.0  # the clock never sleeps longer than this (no OverflowError, no missed stop)


class Worker:
    """Named thread(s) taking jobs from one bounded queue; a full queue raises Busy naming the queue.

    ``side_depth`` > 0 adds a second, low-priority lane (``submit_side``): its jobs run only when the main queue is
    empty, and a caller that finds it full *waits* for room (a condition, not a poll). Talking clips hand their
    frames to the render worker this way, so a stream tick (main queue) never waits behind more than the one clip
    frame being drawn, and the clip runs at whatever speed the streams leave over.
    """

    def __init__(self, name: str, max_queue: int, threads: int = 1, side_depth: int = 0) -> None:
        self.name = name
        self.max_queue = max_queue
        self.side_depth = side_depth
        self._jobs: deque[tuple[Callable[[], Any], Future]] = deque()
        self._side: deque[tuple[Callable[[], Any], Future]] = deque()
        self._cond = threading.Condition()
        self._closed = self._stopping = False
        self._side_waiting = 0  # callers of submit_side blocked for room (a diagnostic; the tests wait on it)
        names = [name] if threads == 1 else [f"{name}-{i}" for i in range(threads)]
        self._threads = [threading.Thread(target=self._run, name=n, daemon=True) for n in names]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._jobs)

    @property
    def side_waiting(self) -> int:
        """Callers blocked in ``submit_side`` waiting for room in the side lane."""
        with self._cond:
            return self._side_waiting

    def has_room(self, depth: int | None = None) -> bool:
        """Whether a job submitted now would be taken (``depth``: a tighter bound than the queue's own)."""
        limit = self.max_queue if depth is None else min(depth, self.max_queue)
        with self._cond:
            return len(self._jobs) < limit

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue a job; Busy when the queue is full (the caller answers busy or counts a late frame)."""
        future: Future[T] = Future()
        with self._cond:
            if self._closed:
                raise Busy("the engine is shutting down")
            if len(self._jobs) >= self.max_queue:
                raise Busy(f"the {self.name} queue is full ({self.max_queue} jobs); retry shortly")
            self._jobs.append((fn, future))
            self._cond.notify()
        return future

    def submit_side(self, fn: Callable[[], T], timeout: float,
                    abort: threading.Event | None = None) -> Future[T]:
        """Queue a low-priority job, waiting up to ``timeout`` s for room in the side lane (Busy after that).

        ``abort`` set (and ``wake`` called) ends the wait at once with Cancelled: a cancelled clip stops waiting."""
        future: Future[T] = Future()
        with self._cond:
            aborted = abort.is_set if abort is not None else lambda: False
            self._side_waiting += 1
            try:
                room = self._cond.wait_for(lambda: self._closed or aborted() or len(self._side) < self.side_depth,
                                           timeout)
            finally:
                self._side_waiting -= 1
            if not room:
                raise Busy(f"the {self.name} worker had no room for {timeout:g} s")
            if self._closed:
                raise Busy("the engine is shutting down")
            if aborted():
                raise Cancelled("cancelled while waiting for the render worker")
            self._side.append((fn, future))
            self._cond.notify_all()
        return future

    def wake(self) -> None:
        """Re-check every waiting ``submit_side`` (one of their ``abort`` events was set)."""
        with self._cond:
            self._cond.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the job in flight, refuse the rest (and any later one) with Busy, join the thread(s)."""
        with self._cond:
            self._closed = self._stopping = True
            refused = [*self._jobs, *self._side]
            self._jobs.clear()
            self._side.clear()
            self._cond.notify_all()
        for _fn, future in refused:
            future.set_exception(Busy("the engine is shutting down"))
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout)

    def _next(self) -> tuple[Callable[[], Any], Future] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._jobs or self._side or self._stopping)
            if self._jobs:
                return self._jobs.popleft()
            if self._side:
                self._cond.notify_all()  # room in the side lane for a waiting submit_side
                return self._side.popleft()
            return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except Exception as exc:  # a job's failure is its caller's answer, never the thread's end
                future.set_exception(exc)


class Mailbox:
    """Work handed back to the command thread: a queue plus a socketpair whose read end wakes its poller."""

    def __init__(self) -> None:
        self._todo: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)

    def fileno(self) -> int:
        return self._wake_r.fileno()

    def post(self, fn: Callable[[], None]) -> None:
        """Any thread: run ``fn`` on the command thread soon."""
        self._todo.put(fn)
        self.wake()

    def then(self, future: Future[T], fn: Callable[[Future[T]], None]) -> None:
        """When ``future`` is done, run ``fn(future)`` on the command thread (never on the worker that finished it)."""
        future.add_done_callback(lambda f: self.post(lambda: fn(f)))

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def run_pending(self) -> None:
        """Command thread: drain the wake bytes, then run every posted continuation."""
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_r.recv(4096)
        while True:
            try:
                fn = self._todo.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            except Exception:  # a continuation's bug must not end the command loop
                log.exception("continuation failed")

    def close(self) -> None:
        self._wake_r.close()
        self._wake_w.close()


@dataclass
class StreamClock:
    """One stream's timing: tick times are origin + tick / fps, so no drift accumulates."""

    avatar: str
    fps: float
    origin: float
    tick: int = 0
    seq: int = 0  # frames published: contiguous on the wire
    late: int = 0  # ticks skipped (renderer or encoder full, previous frame still drawing)
    failed: int = 0  # frames whose drawing raised
    failed_in_a_row: int = 0
    in_flight: bool = False
    epoch: int = 0  # stamped on every frame header: raised when a cluster moves the avatar (engine/cluster/)
    framing: Any = None  # what its frames show (protocol.Framing; None: the engine's --output)

    @property
    def next_time(self) -> float:
        return self.origin + self.tick / self.fps


class FrameClock:
    """The clock thread: ticks each stream at its rate and hands the tick to ``on_tick``; owns the stream table."""

    def __init__(self, on_tick: Callable[[StreamClock, float], bool], clock: Callable[[], float]) -> None:
        self._on_tick = on_tick
        self._clock = clock
        self._streams: dict[str, StreamClock] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="clock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def set_rate(self, avatar: str, fps: float, epoch: int = 0, framing: Any = None) -> StreamClock | None:
        """Start, re-time (fresh origin, seq continues) or, with fps 0, stop a stream; ``framing`` is what its frames
        show from the next one on."""
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
            stream.epoch, stream.framing = epoch, framing
            self._cond.notify()
            return stream

    def is_streaming(self, avatar: object) -> bool:
        with self._cond:
            return avatar in self._streams

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._cond:
            return {s.avatar: {"fps": s.fps, "seq": s.seq, "late": s.late, "failed": s.failed}
                    for s in self._streams.values()}

    def take_seq(self, stream: StreamClock) -> int:
        with self._cond:
            seq = stream.seq
            stream.seq += 1
            return seq

    def frame_done(self, stream: StreamClock, *, late: bool = False, failed: bool = False) -> int:
        """The render thread is done with this stream's tick; returns the failures in a row so far."""
        with self._cond:
            stream.in_flight = False
            stream.late += int(late)
            return self._count(stream, failed)

    def count_failed(self, stream: StreamClock) -> int:
        """A later stage (publish) failed a frame; returns the failures in a row so far."""
        with self._cond:
            return self._count(stream, True)

    @staticmethod
    def _count(stream: StreamClock, failed: bool) -> int:
        stream.failed += int(failed)
        stream.failed_in_a_row = stream.failed_in_a_row + 1 if failed else 0
        return stream.failed_in_a_row

    def _due(self) -> list[tuple[StreamClock, float]] | None:
        """Under the lock: the ticks due now, or None after waiting (at most MAX_CLOCK_WAIT_S)."""
        now = self._clock()
        due = [s for s in self._streams.values() if s.next_time <= now]
        if not due:
            wait = min((s.next_time for s in self._streams.values()), default=now + MAX_CLOCK_WAIT_S) - now
            self._cond.wait(timeout=min(max(wait, 0.0), MAX_CLOCK_WAIT_S))
            return None
        ticks = []
        for s in due:
            t = s.next_time
            s.tick += 1
            behind = int((now - s.next_time) * s.fps)  # the machine stalled past whole periods
            if behind > 0:
                s.tick += behind
                s.late += behind
            if s.in_flight:
                s.late += 1
            else:
                s.in_flight = True
                ticks.append((s, t))
        return ticks

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                ticks = self._due()
            for s, t in ticks or ():
                try:
                    taken = self._on_tick(s, t)
                except Exception:  # a tick's bug is counted on its stream, never the clock's end
                    log.exception("tick failed for %s", s.avatar)
                    taken = False
                if not taken:
                    with self._cond:
                        s.in_flight = False
                        s.late += 1
