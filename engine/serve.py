"""liveportrait-serve: engine and bridge together with their defaults, for local use (`make run`).

Each runs as its own process, as in production; this one forwards SIGINT/SIGTERM to both and exits when either
does. Flags are not taken here: set LP_* environment variables, which both processes read.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    procs = [subprocess.Popen([sys.executable, "-m", "engine"]), subprocess.Popen([sys.executable, "-m", "bridge"])]

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    print("liveportrait-serve: bridge on http://127.0.0.1:8081 (try /health); Ctrl-C stops both", flush=True)
    while all(proc.poll() is None for proc in procs):
        time.sleep(0.2)
    forward(signal.SIGTERM, None)
    codes = [proc.wait(timeout=15) for proc in procs]
    return max(abs(code) for code in codes)


if __name__ == "__main__":
    sys.exit(main())
