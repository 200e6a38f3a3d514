"""The engine process a replica owns: ``python -m engine`` plus a watch on its parent, the replica's actor, and one
line back to the actor once its sockets are bound.

- The replica binds ``tcp://<node ip>:*``: the OS picks each port at bind time, so no port is chosen, released and
  bound later by someone else (a race). Once bound, this process writes ``{"command_addr", "frame_addr"}`` (the
  addresses as bound) as one JSON line to the pipe named by ``--report-fd`` and closes it; an engine that exits
  before binding closes the pipe empty, which the actor reads as "failed to start".
- A replica's actor can die without a chance to stop its child (SIGKILL, its node lost); the engine then stops
  itself (SIGTERM to itself: the usual graceful shutdown) instead of holding its ports and its GPU memory.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

PARENT_POLL_S = 0.5


def watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(15)
    os._exit(1)  # the graceful stop did not finish


def reporter(fd: int) -> Callable[[str, str], None]:
    """Writes the bound addresses to ``fd`` once, then closes it."""

    def report(command_addr: str, frame_addr: str) -> None:
        with os.fdopen(fd, "w") as pipe:
            pipe.write(json.dumps({"command_addr": command_addr, "frame_addr": frame_addr}) + "\n")

    return report


def split_report_fd(argv: list[str]) -> tuple[int | None, list[str]]:
    """``--report-fd N`` (ours) out of the engine's own arguments."""
    if "--report-fd" not in argv:
        return None, argv
    at = argv.index("--report-fd")
    return int(argv[at + 1]), argv[:at] + argv[at + 2:]


def main() -> int:
    threading.Thread(target=watch_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    fd, argv = split_report_fd(sys.argv[1:])
    from engine.__main__ import main as engine_main

    return engine_main(argv, reporter(fd) if fd is not None else None)


if __name__ == "__main__":
    sys.exit(main())
