"""Bridge settings: flags, LP_* env vars and --help from one table (the engine's Option machinery)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from engine.config import Option, load

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
           "on SIGTERM, requests waiting on the engine are answered 503 at once; others (uploads) may run this long"),
    Option("concurrency", "--concurrency", "LP_BRIDGE_CONCURRENCY", int, 4, "engine requests in flight at once"),
    Option("queue", "--queue", "LP_BRIDGE_QUEUE", int, 32,
           "requests waiting for an engine slot; beyond it: 503 with Retry-After"),
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

# WHEP (bridge/whep.py): the WebRTC viewers' limits, ICE and codec. VP8 at 800 kbps: on this CPU VP8 encodes a 512 x 512
# frame in ~6 ms, libx264 (aiortc's H.264) in ~18-36 ms, and each viewer costs one encode (bench/bench_webrtc.py).
WHEP_OPTIONS: tuple[Option, ...] = (
    Option("whep_max_viewers", "--whep-max-viewers", "LP_WHEP_MAX_VIEWERS", int, 8,
           "WebRTC (WHEP) viewers on this bridge at once; beyond it 503 + Retry-After"),
    Option("whep_max_per_avatar", "--whep-max-per-avatar", "LP_WHEP_MAX_PER_AVATAR", int, 4,
           "WHEP viewers of one avatar at once (each costs one video encode)"),
    Option("whep_ice_servers", "--whep-ice-servers", "LP_WHEP_ICE_SERVERS", str, "",
           "STUN/TURN servers, comma-separated (stun:host:port, turn:user:pass@host:port); empty: host candidates "
           "only, nothing outside is contacted"),
    Option("whep_ice_addresses", "--whep-ice-addresses", "LP_WHEP_ICE_ADDRESSES", str, "",
           "local addresses WHEP may offer as ICE host candidates, comma-separated; empty: --host if it is one "
           "address, else every interface"),
    Option("whep_codec", "--whep-codec", "LP_WHEP_CODEC", str, "vp8", "WHEP video codec", ("vp8", "h264")),
    Option("whep_bitrate_kbps", "--whep-bitrate-kbps", "LP_WHEP_BITRATE_KBPS", int, 800,
           "WHEP video bitrate ceiling (the receiver's estimate may lower it)"),
    Option("whep_delay_ms", "--whep-delay-ms", "LP_WHEP_DELAY_MS", int, 100,
           "media of engine time t go out at t + this at least (more while frames arrive later): covers render, "
           "JPEG and transport of the frames"),
    Option("whep_fps", "--whep-fps", "LP_WHEP_FPS", float, 25.0,
           "frame rate WHEP starts an avatar's engine stream at when it is not streaming"),
    Option("whep_connect_timeout_s", "--whep-connect-timeout-s", "LP_WHEP_CONNECT_TIMEOUT_S", float, 20.0,
           "a WHEP session not connected by then (a player that vanished after its POST) is closed"),
)
BRIDGE_OPTIONS = BRIDGE_OPTIONS + WHEP_OPTIONS


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
    curve_server_key: str = ""
    curve_server_key_file: str = ""
    curve_client_secret_key: str = ""
    curve_client_secret_file: str = ""
    log_level: str = "INFO"
    whep_max_viewers: int = 8
    whep_max_per_avatar: int = 4
    whep_ice_servers: str = ""
    whep_ice_addresses: str = ""
    whep_codec: str = "vp8"
    whep_bitrate_kbps: int = 800
    whep_delay_ms: int = 100
    whep_fps: float = 25.0
    whep_connect_timeout_s: float = 20.0


def _help_lists_choices(options: Sequence[Option]) -> tuple[Option, ...]:
    """argparse hides ``choices`` behind the metavar; say them in the help line (the README table adds its own)."""
    return tuple(replace(o, help=f"{o.help} (choices: {' / '.join(o.choices)})") if o.choices else o
                 for o in options)


def bridge_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> BridgeSettings:
    return load(BridgeSettings, _help_lists_choices(BRIDGE_OPTIONS), argv, os.environ if env is None else env,
                "liveportrait-bridge", "HTTP bridge to the LivePortrait engine (port 8081)")


if __name__ == "__main__":
    import sys

    from engine.config import markdown_table

    if "--markdown" in sys.argv:
        print(markdown_table(BRIDGE_OPTIONS))
    else:
        print(bridge_settings(sys.argv[1:]))
