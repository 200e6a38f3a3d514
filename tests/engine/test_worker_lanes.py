"""The render worker's side lane (engine/workers.py): clip frames run only when no stream tick or `render` waits,
and a clip thread that finds the lane full waits for room instead of polling or being refused at once.

No sleeps as synchronisation: each step waits for the state it needs (the thread holds its job: ``pending`` is 0;
a clip thread is blocked for room: ``side_waiting``), so a slow machine makes a test slower, never wrong."""

from __future__ import annotations

import threading

import pytest

from engine.errors import Busy, Cancelled
from engine.workers import Worker
from tests.service.live import wait_until


def busy(worker: Worker, gate: threading.Event) -> None:
    """Occupy the worker's thread until ``gate`` is set (returns once the thread holds the job)."""
    worker.submit(gate.wait)
    wait_until(lambda: worker.pending == 0)


def test_main_jobs_go_before_side_jobs_and_the_side_lane_waits_for_room() -> None:
    worker = Worker("render", 8, side_depth=1)
    gate, order = threading.Event(), []
    worker.start()
    try:
        busy(worker, gate)
        side = worker.submit_side(lambda: order.append("clip 1"), timeout=5)  # fills the lane of one
        queued: list[bool] = []

        def second_clip_frame() -> None:
            future = worker.submit_side(lambda: order.append("clip 2"), timeout=30)
            queued.append(True)
            future.result(5)

        clip = threading.Thread(target=second_clip_frame)
        clip.start()
        wait_until(lambda: worker.side_waiting == 1)  # a full side lane makes the clip wait (it is not refused) ...
        assert not queued and clip.is_alive()  # ... and its frame is not queued meanwhile
        for i in range(3):  # stream ticks queued after the clip frame still go first
            worker.submit(lambda i=i: order.append(f"tick {i}"))
        gate.set()
        side.result(5)
        clip.join(5)
        assert queued and not clip.is_alive() and worker.side_waiting == 0
        assert order == ["tick 0", "tick 1", "tick 2", "clip 1", "clip 2"]
    finally:
        gate.set()
        worker.stop()


def test_a_side_lane_that_stays_full_refuses_after_its_timeout_and_shutdown_frees_waiters() -> None:
    worker = Worker("render", 2, side_depth=1)
    gate = threading.Event()
    worker.start()
    try:
        busy(worker, gate)
        worker.submit_side(lambda: None, timeout=1)
        with pytest.raises(Busy, match="no room"):
            worker.submit_side(lambda: None, timeout=0.2)
        errors: list[Exception] = []

        def waiting() -> None:
            try:
                worker.submit_side(lambda: None, timeout=30)
            except Busy as exc:
                errors.append(exc)

        thread = threading.Thread(target=waiting)
        thread.start()
        wait_until(lambda: worker.side_waiting == 1)  # blocked for room when the shutdown comes
        stopper = threading.Thread(target=worker.stop)
        stopper.start()
        thread.join(5)
        assert not thread.is_alive() and errors and "shutting down" in str(errors[0])
    finally:
        gate.set()
        worker.stop()


def test_a_cancelled_clip_stops_waiting_for_room_at_once() -> None:
    worker = Worker("render", 2, side_depth=1)
    gate, cancel = threading.Event(), threading.Event()
    worker.start()
    try:
        busy(worker, gate)
        worker.submit_side(lambda: None, timeout=1)
        errors: list[Exception] = []

        def waiting() -> None:
            try:
                worker.submit_side(lambda: None, timeout=30, abort=cancel)
            except Cancelled as exc:
                errors.append(exc)

        thread = threading.Thread(target=waiting)
        thread.start()
        wait_until(lambda: worker.side_waiting == 1)  # blocked for room when the cancel comes
        cancel.set()
        worker.wake()
        thread.join(2)
        assert not thread.is_alive() and errors
    finally:
        gate.set()
        worker.stop()
