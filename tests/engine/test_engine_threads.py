"""The engine's threads in one process: real workers, a real PUB socket, the real offline renderer.

Each test names the fault of issue 12 it guards against; a broken renderer (a subclass that raises) stands in for
a persistent render bug, since no real input is known to cause one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from engine import handlers
from engine import protocol as p
from engine.config import Settings
from engine.core import Core
from engine.errors import Busy
from engine.frames import STREAM_MAX_FAILURES
from engine.workers import FrameClock, Worker
from tests.service.live import wait_until


def pump(core: Core, until: object, timeout: float = 60.0) -> None:
    """Run the command thread's continuations (this test is the command thread) until ``until()`` holds."""
    deadline = time.monotonic() + timeout
    while not until():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        core.mailbox.run_pending()
        time.sleep(0.01)


def started_core(tmp: Path) -> Iterator[Core]:
    settings = Settings(models_dir=tmp / "models", renderer="offline", warmup=False, output="crop")
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(f"inproc://frames-{id(ctx)}")
    c = Core(settings, pub)
    c.start()
    pump(c, lambda: c.status != "starting")
    assert c.status == "ok", c.failure
    yield c
    c.stop()
    pub.close(0)
    ctx.term()
    c.mailbox.close()


@pytest.fixture(scope="module")
def shared_core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    """One core for the tests that leave it as they found it (a start-up costs seconds on a loaded machine)."""
    yield from started_core(tmp_path_factory.mktemp("core"))


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    """A core of its own, for the tests that stop a thread or the whole core."""
    yield from started_core(tmp_path)


def test_a_full_queue_names_itself() -> None:
    worker = Worker("encode", 1)
    gate = threading.Event()
    worker.start()
    try:
        worker.submit(gate.wait)
        wait_until(lambda: worker.pending == 0)  # the thread holds the first job
        worker.submit(gate.wait)  # fills the queue of one
        with pytest.raises(Busy, match="encode queue"):
            worker.submit(gate.wait)
    finally:
        gate.set()
        worker.stop()
    assert not worker.alive


def test_the_clock_survives_an_absurd_rate_and_a_tick_that_raises() -> None:
    calls = []

    def on_tick(stream: object, t: float) -> bool:
        calls.append(t)
        raise RuntimeError("a bug in a tick")

    clock = FrameClock(on_tick, time.monotonic)
    clock.start()
    try:
        clock.set_rate("slow", 1e-10)  # its next tick is ~300 years away: a wait beyond threading.TIMEOUT_MAX
        time.sleep(0.2)
        assert clock.alive
        clock.set_rate("fast", 50.0)
        time.sleep(0.3)
        assert clock.alive and calls
        ticked = len(calls)  # read before the counts: a tick may land in between, never the other way round
        # a raising tick counts late: every call but the slow stream's one and the one in flight right now
        assert clock.snapshot()["fast"]["late"] >= ticked - 2
    finally:
        started = time.monotonic()
        clock.stop()
    assert time.monotonic() - started < 2.0 and not clock.alive


def test_health_fails_when_a_thread_has_died(core: Core) -> None:
    assert handlers.health(core, p.Health(), lambda r: None)["status"] == "ok"
    core.frame_clock.stop()  # the clock thread ends, as a crash would end it
    reply = handlers.health(core, p.Health(), lambda r: None)
    assert reply["status"] == "failed" and reply["dead_threads"] == ["clock"]
    assert reply["failure"]["code"] == "internal"


class BrokenRenderer:
    name = "broken"

    def render(self, source: object, state: object) -> np.ndarray:
        raise RuntimeError("persistent render bug")

    def info(self) -> dict:
        return {}


def test_a_failing_stream_is_counted_then_stopped_with_one_traceback(shared_core: Core,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    core = shared_core
    renderer, before = core.frames.renderer, core.frames.stats.summary()
    assert renderer is not None
    core.frames.use(BrokenRenderer())  # type: ignore[arg-type]
    aid = core.avatars.default_id
    assert aid is not None
    try:
        with caplog.at_level(logging.ERROR):
            core.frame_clock.set_rate(aid, 50.0)
            pump(core, lambda: not core.frame_clock.is_streaming(aid), timeout=20.0)
    finally:
        core.frames.use(renderer)
    stats = core.frames.stats.summary()
    assert stats["failed"] - before["failed"] == STREAM_MAX_FAILURES
    assert stats["streams_stopped"] - before["streams_stopped"] == 1
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in caplog.records]
    assert any("stopped" in r.getMessage() and aid in r.getMessage() for r in caplog.records)


def test_a_bug_in_any_command_is_internal_not_render_failed(shared_core: Core) -> None:
    reply = handlers.error_reply(shared_core, KeyError("oops"))
    assert reply["ok"] is False and reply["error"]["code"] == "internal"


def test_stream_frames_are_not_drawn_when_the_publisher_is_full(shared_core: Core) -> None:
    core = shared_core
    gate = threading.Event()
    core.publish.submit(gate.wait)  # the publish thread is busy ...
    wait_until(lambda: core.publish.pending == 0)
    core.publish.submit(gate.wait)  # ... and its stream budget (2) is full
    core.publish.submit(gate.wait)
    drawn_before = core.frames.stats.drawn()
    calls = []
    renderer = core.frames.renderer
    assert renderer is not None
    original = renderer.render

    def counting(source: object, state: object) -> np.ndarray:
        calls.append(1)
        return original(source, state)  # type: ignore[arg-type]

    renderer.render = counting  # type: ignore[method-assign]
    aid = core.avatars.default_id
    try:
        core.frame_clock.set_rate(aid, 50.0)  # type: ignore[arg-type]
        # the clock ticks on: each tick finds no room and is counted late (a dead clock never gets here)
        wait_until(lambda: core.frame_clock.snapshot().get(aid, {}).get("late", 0) >= 10)
        core.frame_clock.set_rate(aid, 0)  # type: ignore[arg-type]
    finally:
        gate.set()
        del renderer.render  # the shared core's renderer draws as before
    assert calls == [] and core.frames.stats.drawn() == drawn_before


def test_stop_joins_every_thread_and_refuses_later_work(core: Core) -> None:
    assert core.dead_threads() == []
    core.stop()
    assert sorted(core.dead_threads()) == ["audio", "clip", "clock", "encode", "prep", "publish", "render", "speech"]
    with pytest.raises(Busy, match="shutting down"):
        core.speech.submit(lambda: None)
    with pytest.raises(Busy, match="shutting down"):
        core.detect_face(b"any")
