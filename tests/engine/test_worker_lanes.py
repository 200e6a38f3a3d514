"""The render worker's side lane (engine/workers.py): clip frames run only when no stream tick or `render` waits,
and a clip thread that finds the lane full waits for room instead of polling or being refused at once."""

from __future__ import annotations

import threading
import time

import pytest

from engine.errors import Busy, Cancelled
from engine.workers import Worker


def test_main_jobs_go_before_side_jobs_and_the_side_lane_waits_for_room() -> None:
    worker = Worker("render", 8, side_depth=1)
    gate, order = threading.Event(), []
    worker.start()
    try:
        worker.submit(gate.wait)  # the thread is busy
        time.sleep(0.05)
        side = worker.submit_side(lambda: order.append("clip 1"), timeout=5)  # fills the lane of one
        waited: list[float] = []

        def second_clip_frame() -> None:
            started = time.monotonic()
            worker.submit_side(lambda: order.append("clip 2"), timeout=5).result(5)
            waited.append(time.monotonic() - started)

        clip = threading.Thread(target=second_clip_frame)
        clip.start()
        time.sleep(0.2)
        assert not waited, "a full side lane must make the clip wait"
        for i in range(3):  # stream ticks queued after the clip frame still go first
            worker.submit(lambda i=i: order.append(f"tick {i}"))
        gate.set()
        side.result(5)
        clip.join(5)
        assert order == ["tick 0", "tick 1", "tick 2", "clip 1", "clip 2"]
        assert waited and waited[0] >= 0.2
    finally:
        gate.set()
        worker.stop()


def test_a_side_lane_that_stays_full_refuses_after_its_timeout_and_shutdown_frees_waiters() -> None:
    worker = Worker("render", 2, side_depth=1)
    gate = threading.Event()
    worker.start()
    try:
        worker.submit(gate.wait)
        time.sleep(0.05)
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
        time.sleep(0.1)
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
        worker.submit(gate.wait)
        time.sleep(0.05)
        worker.submit_side(lambda: None, timeout=1)
        errors: list[Exception] = []

        def waiting() -> None:
            try:
                worker.submit_side(lambda: None, timeout=30, abort=cancel)
            except Cancelled as exc:
                errors.append(exc)

        thread = threading.Thread(target=waiting)
        thread.start()
        time.sleep(0.1)
        cancel.set()
        worker.wake()
        thread.join(2)
        assert not thread.is_alive() and errors
    finally:
        gate.set()
        worker.stop()
