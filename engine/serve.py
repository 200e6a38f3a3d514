"""liveportrait-serve: engine and bridge together with their defaults, for local use (`make run`).

Each runs as its own process, as in production; SIGINT or SIGTERM here stops both gracefully, and when either
exits the other is stopped. Flags are not taken here: set LP_* environment variables, which both processes read.
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
    # Own sessions: a terminal's Ctrl-C reaches only this process, which stops both children with SIGTERM.
    procs = [subprocess.Popen([sys.executable, "-m", module], start_new_session=True)
             for module in ("engine", "bridge")]

    def forward(_signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    from bridge.config import bridge_settings

    web = bridge_settings([])  # the same LP_BRIDGE_* variables the bridge process reads
    print(f"liveportrait-serve: bridge on http://{web.host}:{web.port} (try /health); Ctrl-C stops both", flush=True)
    while all(proc.poll() is None for proc in procs):
        time.sleep(0.2)
    forward(signal.SIGTERM, None)
    codes = [proc.wait(timeout=15) for proc in procs]
    return max(0 if code == -signal.SIGTERM else abs(code) for code in codes)


if __name__ == "__main__":
    sys.exit(main())
