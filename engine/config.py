"""Settings for the engine: one table drives the flags, the LP_* environment variables, --help and the README.

The machinery (Option, load, markdown_table) is engine/options.py, shared with the bridge. Precedence: command-line
flag > environment variable > default. ``python -m engine.config --markdown`` prints the
README's configuration table from the same rows, so the docs cannot drift from the code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError
from engine.options import (  # noqa: F401  (re-exported: the engine's settings API, as before)
    Option,
    build_parser,
    check_fields,
    defaults,
    load,
    load_tables,
    markdown_table,
    parse_bool,
)
from engine.protocol import DEFAULT_MAX_FPS, OUTPUTS
from engine.render.select import MODES as RENDERERS

ENGINE_OPTIONS: tuple[Option, ...] = (
    Option("command_addr", "--command-addr", "LP_COMMAND_ADDR", str, "tcp://127.0.0.1:5555",
           "ZMQ address the command socket binds (REQ clients connect here; ipc:// works too)"),
    Option("frame_addr", "--frame-addr", "LP_FRAME_ADDR", str, "tcp://127.0.0.1:5556",
           "ZMQ address the PUB frame socket binds"),
    Option("models_dir", "--models-dir", "LP_MODELS_DIR", Path, Path("models"),
           "models folder in the HuggingFace repo layout (/app/models in the container)"),
    Option("renderer", "--renderer", "LP_RENDERER", str, "auto",
           "auto: LivePortrait when its weights load and a warm-up frame fits the stream budget (1 / default fps), "
           "else offline; liveportrait: always (stills on a CPU)", RENDERERS),
    Option("face_detector", "--face-detector", "LP_FACE_DETECTOR", str, "auto",
           "auto: InsightFace ONNX when its files exist, else dlib", ("auto", "onnx", "dlib")),
    Option("device", "--device", "LP_DEVICE", str, "auto", "torch device for LivePortrait", ("auto", "cpu", "cuda")),
    Option("dtype", "--dtype", "LP_DTYPE", str, "auto",
           "LivePortrait precision (auto: fp16 on CUDA, fp32 on CPU)", ("auto", "fp32", "fp16", "bf16")),
    Option("default_fps", "--default-fps", "LP_DEFAULT_FPS", float, 10.0, "stream rate when `stream` gives none"),
    Option("max_fps", "--max-fps", "LP_MAX_FPS", float, DEFAULT_MAX_FPS, "highest stream rate accepted"),
    Option("max_image_bytes", "--max-image-bytes", "LP_MAX_IMAGE_BYTES", int, 20_000_000,
           "largest source image accepted, in bytes"),
    Option("max_image_pixels", "--max-image-pixels", "LP_MAX_IMAGE_PIXELS", int, 40_000_000,
           "largest source image accepted, in pixels (checked before decoding)"),
    Option("source_cache_mb", "--source-cache-mb", "LP_SOURCE_CACHE_MB", float, 2048.0,
           "memory bound of resident avatars (source features), MiB"),
    Option("frame_cache_mb", "--frame-cache-mb", "LP_FRAME_CACHE_MB", float, 256.0,
           "memory bound of the rendered-JPEG cache, MiB"),
    Option("max_avatars", "--max-avatars", "LP_MAX_AVATARS", int, 16,
           "most avatars resident at once (least recently used, not streaming, evicted first)"),
    Option("render_queue", "--render-queue", "LP_RENDER_QUEUE", int, 8,
           "render jobs waiting at most; a render request beyond it is answered busy"),
    Option("jpeg_quality", "--jpeg-quality", "LP_JPEG_QUALITY", int, 90, "JPEG quality of published frames (1-100)"),
    Option("output", "--output", "LP_OUTPUT", str, "full",
           "default frame: the full photo with the face pasted back, or the 512x512 crop", OUTPUTS),
    Option("warmup", "--warmup", "LP_WARMUP", parse_bool, True,
           "render the bundled default portrait once before reporting ready"),
    Option("curve_keys_dir", "--curve-keys-dir", "LP_CURVE_KEYS_DIR", Path, None,
           "CURVE on both sockets: a folder with server.key_secret and clients/*.key (python -m engine.security "
           "generate DIR); unset: off (LP_CURVE_SECRET_KEY alone also turns it on)"),
    Option("log_level", "--log-level", "LP_LOG_LEVEL", str, "INFO", "logging level",
           ("DEBUG", "INFO", "WARNING", "ERROR")),
)


_D = defaults(ENGINE_OPTIONS)


@dataclass(frozen=True)
class Settings:
    """The engine's settings. Defaults come from ENGINE_OPTIONS (the one owner); ``check_fields`` keeps them equal."""

    command_addr: str = _D["command_addr"]
    frame_addr: str = _D["frame_addr"]
    models_dir: Path = _D["models_dir"]
    renderer: str = _D["renderer"]
    face_detector: str = _D["face_detector"]
    device: str = _D["device"]
    dtype: str = _D["dtype"]
    default_fps: float = _D["default_fps"]
    max_fps: float = _D["max_fps"]
    max_image_bytes: int = _D["max_image_bytes"]
    max_image_pixels: int = _D["max_image_pixels"]
    source_cache_mb: float = _D["source_cache_mb"]
    frame_cache_mb: float = _D["frame_cache_mb"]
    max_avatars: int = _D["max_avatars"]
    render_queue: int = _D["render_queue"]
    jpeg_quality: int = _D["jpeg_quality"]
    output: str = _D["output"]
    warmup: bool = _D["warmup"]
    curve_keys_dir: Path | None = _D["curve_keys_dir"]
    log_level: str = _D["log_level"]


check_fields(Settings, ENGINE_OPTIONS)

def engine_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    settings = load(Settings, ENGINE_OPTIONS, argv, os.environ if env is None else env,
                    "liveportrait-engine", "LivePortrait avatar frame engine (ZeroMQ commands in, JPEG frames out)")
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Settings that contradict each other: a ConfigError at start-up, before anything loads."""
    from engine.protocol import MIN_FPS

    if not 1 <= settings.jpeg_quality <= 100:
        raise ConfigError("jpeg_quality must be within 1..100")
    if not MIN_FPS <= settings.default_fps <= settings.max_fps:
        raise ConfigError(f"default_fps must be within {MIN_FPS}..max_fps ({settings.max_fps})")
    if settings.render_queue < 1:
        raise ConfigError("render_queue must be at least 1")
    if settings.max_avatars < 1:
        raise ConfigError("max_avatars must be at least 1")
    if settings.renderer == "offline" and settings.face_detector == "onnx":
        raise ConfigError("the offline renderer needs the dlib face detector (68 points): "
                          "use --face-detector auto or dlib with --renderer offline")


if __name__ == "__main__":
    if "--markdown" in sys.argv:
        print(markdown_table(ENGINE_OPTIONS))
    else:
        print(engine_settings(sys.argv[1:]))
