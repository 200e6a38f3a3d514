"""bridge/__main__.py's ExitDeadline: a shutdown that hangs still ends the process, and says what hung.

Why: a bridge stuck in its shutdown (a close that never returned) held a CI run's fixture for 15 s and more; a
process that never exits on SIGTERM gets killed by the orchestrator with no trace of why."""

from __future__ import annotations

import asyncio
import time

from bridge.__main__ import EXIT_GRACE_S, EXIT_HUNG, ExitDeadline


def test_a_hung_shutdown_exits_with_what_hung_on_stderr(capfd) -> None:
    codes: list[int] = []

    async def stuck_close() -> None:  # a close that never returns
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.create_task(stuck_close(), name="whep-close")
        deadline = ExitDeadline(0.2, asyncio.get_running_loop(), exit=codes.append)
        deadline.start()
        while not deadline.fired.is_set():  # the loop stays responsive while the deadline runs
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        task.cancel()

    started = time.monotonic()
    asyncio.run(main())
    assert codes == [EXIT_HUNG] and time.monotonic() - started < 2.0
    err = capfd.readouterr().err
    assert "did not finish within 0.2 s" in err
    assert "task whep-close: stuck_close" in err  # the task that hung, by name and coroutine
    assert "Thread 0x" in err or "Current thread" in err  # every thread's stack (faulthandler)
    # a shutdown that finishes exits by itself (test_bridge.py's SIGTERM test checks uvicorn's exit status); the
    # grace leaves room for closing the WebRTC sessions and the engine link on a loaded machine
    assert EXIT_GRACE_S >= 2.0

