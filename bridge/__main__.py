"""liveportrait-bridge: the HTTP bridge on port 8081 (uvicorn, one process)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import uvicorn

from bridge.app import create_app
from bridge.config import bridge_settings


def main(argv: Sequence[str] | None = None) -> int:
    settings = bridge_settings(argv)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
