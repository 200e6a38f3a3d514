"""liveportrait-bridge: the HTTP bridge on port 8081 (uvicorn, one process)."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence

import uvicorn
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.config import EXIT_GRACE_S, EXIT_HUNG, load_settings
from bridge.features import FEATURES
from bridge.http import JSONErrorH11Protocol
from engine.errors import ConfigError
from engine.security import client_keys


class ExitDeadline:
    """A SIGTERM ends the process even if something in the shutdown hangs (a close that never returns, a thread
    stuck in a ZMQ context's term): after ``seconds`` the threads' stacks and the event loop's tasks go to stderr,
    so the log says what hung, and the process exits with ``EXIT_HUNG``. Runs on a daemon thread, so a clean exit
    never waits for it."""

    def __init__(self, seconds: float, loop: asyncio.AbstractEventLoop | None = None,
                 exit: Callable[[int], object] = os._exit) -> None:
        self.seconds, self.loop, self.exit = seconds, loop, exit
        self.fired = threading.Event()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def _expire(self) -> None:
        self.fired.set()
        print(f"liveportrait-bridge: the shutdown did not finish within {self.seconds:g} s; exiting anyway "
              "(what was still running follows)", file=sys.stderr, flush=True)
        try:
            if self.loop is not None:
                for task in list(asyncio.all_tasks(self.loop)):  # a snapshot for the log, not thread-safe use
                    frames = task.get_stack(limit=4)
                    where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
                    print(f"  task {task.get_name()}: {where or repr(task.get_coro())}", file=sys.stderr)
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        except Exception as exc:  # the report is best effort; the exit is not
            print(f"  (no report: {exc!r})", file=sys.stderr)
        sys.stderr.flush()
        self.exit(EXIT_HUNG)


class BridgeServer(uvicorn.Server):
    """uvicorn's server, but a shutdown first answers the requests waiting on the engine (503) so none holds it up,
    and is bounded: ``shutdown_timeout_s`` for requests, then ``EXIT_GRACE_S`` for the rest (``ExitDeadline``)."""

    def __init__(self, config: uvicorn.Config, app: Starlette, exit_after_s: float) -> None:
        super().__init__(config)
        self.bridge_app = app
        self.exit_after_s = exit_after_s

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        ExitDeadline(self.exit_after_s, asyncio.get_running_loop()).start()
        self.bridge_app.state.begin_shutdown()
        await super().shutdown(sockets)


def main(argv: Sequence[str] | None = None) -> int:
    settings, feature_settings = load_settings(argv, features=FEATURES)
    try:  # a CURVE mistake is a start-up error with its reason, not a bridge that can never reach the engine
        client_keys(settings.curve_server_key, settings.curve_server_key_file, settings.curve_client_secret_key,
                    settings.curve_client_secret_file)
    except ConfigError as exc:
        print(f"liveportrait-bridge: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level.upper() != "DEBUG":  # aioice logs every ICE candidate check at INFO (~10 lines a viewer)
        logging.getLogger("aioice").setLevel(logging.WARNING)
    app = create_app(settings, features=FEATURES, feature_settings=feature_settings)
    # JSON 400s from uvicorn itself; a SIGTERM waits at most shutdown_timeout_s for the rest (e.g. slow uploads).
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                            access_log=False, http=JSONErrorH11Protocol,
                            timeout_graceful_shutdown=settings.shutdown_timeout_s)
    BridgeServer(config, app, settings.shutdown_timeout_s + EXIT_GRACE_S).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
