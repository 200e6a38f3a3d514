"""Bridge settings: flags, LP_* env vars and --help from one table (the engine's Option machinery)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.config import Option, load

BRIDGE_OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "LP_BRIDGE_HOST", str, "127.0.0.1", "HTTP listen address (the container uses 0.0.0.0)"),
    Option("port", "--port", "LP_BRIDGE_PORT", int, 8081, "HTTP port"),
    Option("engine_addr", "--engine-addr", "LP_ENGINE_ADDR", str, "tcp://127.0.0.1:5555",
           "the engine's command socket"),
    Option("frame_addr", "--frame-addr", "LP_FRAME_ADDR", str, "tcp://127.0.0.1:5556",
           "the engine's frame (PUB) socket: the /preview page's stream"),
    Option("timeout_ms", "--timeout-ms", "LP_ENGINE_TIMEOUT_MS", int, 20_000,
           "how long one engine request may take before the bridge retries on a fresh socket"),
    Option("retries", "--retries", "LP_ENGINE_RETRIES", int, 1, "retries of a timed-out engine request"),
    Option("health_timeout_ms", "--health-timeout-ms", "LP_HEALTH_TIMEOUT_MS", int, 500,
           "engine health probe timeout: /health answers 503 after this"),
    Option("max_upload_bytes", "--max-upload-bytes", "LP_MAX_UPLOAD_BYTES", int, 20_000_000,
           "largest /api/render body accepted (413 beyond it, counted while reading)"),
    Option("concurrency", "--concurrency", "LP_BRIDGE_CONCURRENCY", int, 4, "engine requests in flight at once"),
    Option("queue", "--queue", "LP_BRIDGE_QUEUE", int, 32,
           "requests waiting for an engine slot; beyond it: 503 with Retry-After"),
    Option("log_level", "--log-level", "LP_LOG_LEVEL", str, "INFO", "logging level",
           ("DEBUG", "INFO", "WARNING", "ERROR")),
)


@dataclass(frozen=True)
class BridgeSettings:
    host: str = "127.0.0.1"
    port: int = 8081
    engine_addr: str = "tcp://127.0.0.1:5555"
    frame_addr: str = "tcp://127.0.0.1:5556"
    timeout_ms: int = 20_000
    retries: int = 1
    health_timeout_ms: int = 500
    max_upload_bytes: int = 20_000_000
    concurrency: int = 4
    queue: int = 32
    log_level: str = "INFO"


def bridge_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> BridgeSettings:
    return load(BridgeSettings, BRIDGE_OPTIONS, argv, os.environ if env is None else env,
                "liveportrait-bridge", "HTTP bridge to the LivePortrait engine (port 8081)")


if __name__ == "__main__":
    import sys

    from engine.config import markdown_table

    if "--markdown" in sys.argv:
        print(markdown_table(BRIDGE_OPTIONS))
    else:
        print(bridge_settings(sys.argv[1:]))
