"""liveportrait-bridge: the HTTP bridge on port 8081 (uvicorn, one process)."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Sequence

import uvicorn
from starlette.applications import Starlette

from bridge.app import create_app
from bridge.config import load_settings
from bridge.features import FEATURES
from bridge.http import JSONErrorH11Protocol
from engine.errors import ConfigError
from engine.security import client_keys


class BridgeServer(uvicorn.Server):
    """uvicorn's server, but a shutdown first answers the requests waiting on the engine (503) so none holds it up."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.bridge_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
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
    BridgeServer(config, app).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
