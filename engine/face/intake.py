"""Bytes -> RGB image, with the limits checked before any pixel is decoded.

JPEG, PNG and WebP; EXIF orientation applied; grayscale, palette, RGBA (composited on white, since a transparent
background should read as a plain backdrop, not black) and 16-bit images converted to 8-bit RGB.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps

from engine.errors import ImageTooLarge, InvalidImage

FORMATS = ("JPEG", "PNG", "WEBP")
SOURCE_MAX_DIM = 1280  # the reference's source_max_dim
SOURCE_DIVISION = 2  # both sides even


def decode_image(data: bytes, max_bytes: int = 20_000_000, max_pixels: int = 40_000_000) -> np.ndarray:
    """Decode an uploaded image to (H, W, 3) uint8 RGB, refusing oversize input before decoding it."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidImage("image must be bytes")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"image is {len(data)} bytes; the limit is {max_bytes}")
    if len(data) == 0:
        raise InvalidImage("image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))  # reads the header only
            fmt = img.format
            width, height = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge(f"image header declares too many pixels; the limit is {max_pixels}") from None
    except Exception:
        raise InvalidImage("not a decodable image: upload a JPEG, PNG or WebP file") from None
    if fmt not in FORMATS:
        raise InvalidImage(f"unsupported image format {fmt}: upload a JPEG, PNG or WebP file")
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()  # raises on truncated data (Pillow's LOAD_TRUNCATED_IMAGES stays off)
        img = ImageOps.exif_transpose(img)
        return _to_rgb8(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"image data is truncated or corrupt ({fmt}): {exc}") from None


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        gray = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if img.mode == "F":
        arr = np.clip(np.asarray(img, dtype=np.float64), 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(np.asarray(img.convert("RGB")))


def limit_size(image: np.ndarray, max_dim: int = SOURCE_MAX_DIM, division: int = SOURCE_DIVISION) -> np.ndarray:
    """The reference's source preparation: longer side down to max_dim (bilinear), then both sides cut to even."""
    h, w = image.shape[:2]
    if max(h, w) > max_dim:
        if h > w:
            new_h, new_w = max_dim, int(w * max_dim / h)
        else:
            new_h, new_w = int(h * max_dim / w), max_dim
        image = cv2.resize(image, (new_w, new_h))
        h, w = new_h, new_w
    return np.ascontiguousarray(image[: h - h % division, : w - w % division])
