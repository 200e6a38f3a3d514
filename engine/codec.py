"""Frame -> JPEG bytes (and back, for tests and the bridge). simplejpeg wraps libjpeg-turbo with no system library.

Chosen by measurement (bench/bench_codec.py): at 512x512 q90 simplejpeg encodes in about half OpenCV's time and
needs no libturbojpeg on the system, which PyTurboJPEG 2.x does (>= 3.0).
"""

from __future__ import annotations

import numpy as np
import simplejpeg

from engine.errors import InvalidImage


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """RGB uint8 (H, W, 3) -> baseline JPEG, 4:2:0 (what browsers and WebRTC encoders expect)."""
    return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=int(quality), colorspace="RGB",
                                  colorsubsampling="420", fastdct=True)


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> RGB uint8; InvalidImage when they are not a JPEG."""
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB")
    except (ValueError, RuntimeError) as exc:
        raise InvalidImage(f"not a decodable JPEG: {exc}") from exc


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG header without decoding pixels."""
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    return width, height
