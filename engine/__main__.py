"""liveportrait-engine: settings from flags and LP_* env vars, then the engine until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from engine.config import engine_settings
from engine.errors import EngineError
from engine.security import engine_keys


def main(argv: Sequence[str] | None = None, on_bound: Callable[[str, str], None] | None = None) -> int:
    """``on_bound``: told the bound command and frame addresses (engine/cluster/engine_proc.py reports them)."""
    try:
        settings = engine_settings(argv)
        curve = engine_keys(settings.curve_keys_dir, os.environ)
    except EngineError as exc:
        print(f"liveportrait-engine: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import zmq

    from engine.server import Engine  # torch and the models load after the flags are known good

    engine = Engine(settings, curve=curve)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: engine.stop())
    try:
        engine.run(on_bound)
    except zmq.ZMQError as exc:  # address in use, malformed address
        logging.getLogger("engine").error("cannot bind %s / %s: %s", settings.command_addr, settings.frame_addr, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
