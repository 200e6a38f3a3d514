"""The engine process a replica owns: ``python -m engine`` plus a watch on its parent, the replica's actor.

A replica's actor can die without a chance to stop its child (SIGKILL, its node lost); the engine then stops itself
(SIGTERM to itself: the usual graceful shutdown) instead of holding its ports and its GPU memory as an orphan.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PARENT_POLL_S = 0.5


def watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(15)
    os._exit(1)  # the graceful stop did not finish


def main() -> int:
    threading.Thread(target=watch_parent, args=(os.getppid(),), name="parent-watch", daemon=True).start()
    from engine.__main__ import main as engine_main

    return engine_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
