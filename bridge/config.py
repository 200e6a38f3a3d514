"""Bridge settings: flags, LP_* env vars and --help from one table (engine/options.py's machinery, stdlib only).

A feature (bridge/feature.py's ``Feature``: the preview page, WHEP, ...) brings its own option table and settings
dataclass; ``load_settings`` parses the core table and every feature's from one argv, so ``--help`` lists them all
and each feature's values land in its own dataclass. ``python -m bridge.config --markdown`` prints the README tables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from engine.options import Option, load_tables, markdown_table

if TYPE_CHECKING:
    from bridge.feature import Feature

PROG = "liveportrait-bridge"
EXIT_GRACE_S = 5.0  # past the graceful wait for requests: the closing of the features and the engine link
EXIT_HUNG = 70  # the exit status of a shutdown that hung (EX_SOFTWARE)
DESCRIPTION = "HTTP bridge to the LivePortrait engine (port 8081)"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

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
           "engine health probe timeout: /health answers 503 after this; renders fail this fast once the engine "
           "is known to be down"),
    Option("probe_interval_ms", "--probe-interval-ms", "LP_PROBE_INTERVAL_MS", int, 1000,
           "how often the bridge probes the engine in the background (0: only when asked)"),
    Option("max_upload_bytes", "--max-upload-bytes", "LP_MAX_UPLOAD_BYTES", int, 20_000_000,
           "largest /api/render body accepted (413 beyond it, counted while reading)"),
    Option("max_discard_bytes", "--max-discard-bytes", "LP_MAX_DISCARD_BYTES", int, 100_000_000,
           "an oversized body up to this size is read and dropped before the 413, so clients that send without "
           "Expect: 100-continue receive it; beyond it the connection is closed"),
    Option("body_timeout_s", "--body-timeout-s", "LP_BODY_TIMEOUT_S", float, 30.0,
           "longest time to receive a request body (408 after it)"),
    Option("shutdown_timeout_s", "--shutdown-timeout-s", "LP_SHUTDOWN_TIMEOUT_S", float, 2.0,
           "on SIGTERM, requests waiting on the engine are answered 503 at once; others (uploads) may run this "
           f"long; {EXIT_GRACE_S:g} s more for the rest, then the bridge exits anyway (status {EXIT_HUNG}, what hung "
           "on stderr)"),
    Option("concurrency", "--concurrency", "LP_BRIDGE_CONCURRENCY", int, 4, "engine requests in flight at once"),
    Option("queue", "--queue", "LP_BRIDGE_QUEUE", int, 32,
           "requests waiting for an engine slot; beyond it: 503 with Retry-After"),
    Option("clip_concurrency", "--clip-concurrency", "LP_BRIDGE_CLIP_CONCURRENCY", int, 2,
           "/api/speak clips in flight at once, on their own engine sockets (renders never wait behind clips); "
           "more wait, up to --queue of them"),
    Option("curve_server_key", "--curve-server-key", "LP_CURVE_SERVER_KEY", str, "",
           "ZMQ CURVE: the engine's public key, z85 (wins over the file; empty and no file: no CURVE)"),
    Option("curve_server_key_file", "--curve-server-key-file", "LP_CURVE_SERVER_KEY_FILE", str, "",
           "ZMQ CURVE: the engine's public certificate file (KEYS_DIR/server.key)"),
    Option("curve_client_secret_key", "--curve-client-secret-key", "LP_CURVE_CLIENT_SECRET_KEY", str, "",
           "ZMQ CURVE: the bridge's secret key, z85 (wins over the file; prefer the env var to the flag)"),
    Option("curve_client_secret_file", "--curve-client-secret-file", "LP_CURVE_CLIENT_SECRET_FILE", str, "",
           "ZMQ CURVE: the bridge's secret certificate file (KEYS_DIR/clients/bridge.key_secret)"),
    Option("log_level", "--log-level", "LP_LOG_LEVEL", str, "INFO", "logging level", LOG_LEVELS),
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
    probe_interval_ms: int = 1000
    max_upload_bytes: int = 20_000_000
    max_discard_bytes: int = 100_000_000
    body_timeout_s: float = 30.0
    shutdown_timeout_s: float = 2.0
    concurrency: int = 4
    queue: int = 32
    clip_concurrency: int = 2
    curve_server_key: str = ""
    curve_server_key_file: str = ""
    curve_client_secret_key: str = ""
    curve_client_secret_file: str = ""
    log_level: str = "INFO"


def _help_lists_choices(options: Sequence[Option]) -> tuple[Option, ...]:
    """argparse hides ``choices`` behind the metavar; say them in the help line (the README table adds its own)."""
    return tuple(replace(o, help=f"{o.help} (choices: {' / '.join(o.choices)})") if o.choices else o
                 for o in options)


def bridge_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> BridgeSettings:
    """The core settings alone (no feature's options)."""
    return load_settings(argv, env)[0]


def load_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
                  features: Sequence[Feature] = ()) -> tuple[BridgeSettings, dict[str, Any]]:
    """The core settings and each feature's (by feature name; features without options are left out)."""
    tables: list[tuple[type, Sequence[Option]]] = [(BridgeSettings, _help_lists_choices(BRIDGE_OPTIONS))]
    named = [f for f in features if f.settings is not None]
    tables += [(f.settings, _help_lists_choices(f.options)) for f in named]  # type: ignore[misc]
    core, *extra = load_tables(tables, argv, os.environ if env is None else env, PROG, DESCRIPTION)
    return core, {f.name: values for f, values in zip(named, extra, strict=True)}


if __name__ == "__main__":
    import sys

    from bridge.features import FEATURES

    if "--markdown" in sys.argv:
        print(markdown_table(BRIDGE_OPTIONS))
        for feature in FEATURES:
            if feature.options:
                print(f"\n{feature.name}:\n{markdown_table(feature.options)}")
    else:
        print(load_settings(sys.argv[1:], features=FEATURES))
