"""Bytes -> RGB image, with the limits checked before any pixel is decoded, and memory bounded while decoding.

JPEG, PNG and WebP; EXIF orientation applied; grayscale, palette, RGBA (composited on white, since a transparent
background should read as a plain backdrop, not black) and 16-bit images converted to 8-bit RGB.

Memory: the source is used at most SOURCE_MAX_DIM on its longer side, so a larger image is reduced as it is decoded
(JPEG: libjpeg's DCT scaling through ``draft``) or right after (``reduce``, a box filter, one strip at a time) by a
whole factor that keeps the longer side >= SOURCE_MAX_DIM, before any full-size conversion (16-bit, alpha) is
made; the freed pages are then handed back to the OS. A 6000x6000 PNG costs its decoded size once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import warnings
from functools import cache

import cv2
import numpy as np
from PIL import Image, ImageOps

from engine.errors import ImageTooLarge, ImageTooSmall, InvalidImage

FORMATS = ("JPEG", "PNG", "WEBP")
SOURCE_MAX_DIM = 1280  # the reference's source_max_dim
SOURCE_DIVISION = 2  # both sides even
MIN_SOURCE_SIDE = 32  # a face needs pixels: smaller images are refused (a 1x1 image would trim to 0x0)
STRIP_ROWS = 64  # output rows reduced at a time


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
        factor = _factor(width, height)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "JPEG" and factor > 1:
                img.draft(img.mode, (width // factor, height // factor))  # libjpeg decodes at 1/2, 1/4 or 1/8
            img.load()  # raises on truncated data (Pillow's LOAD_TRUNCATED_IMAGES stays off)
        reduced = _reduced(img)
        del img  # the full-size pixels go now
        rgb = _to_rgb8(ImageOps.exif_transpose(reduced))
        if factor > 1:
            give_back_memory()
        return rgb
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"image data is truncated or corrupt ({fmt}): {exc}") from None


def _factor(width: int, height: int) -> int:
    """The whole reduction factor that keeps the longer side >= SOURCE_MAX_DIM (1: none)."""
    return max(1, max(width, height) // SOURCE_MAX_DIM)


def _reduced(img: Image.Image) -> Image.Image:
    """A large decoded image box-reduced by ``_factor``, a strip at a time.

    Strips, because ``reduce`` and any mode conversion copy the whole image first (RGBA is premultiplied into a
    second full-size image, 16-bit widened to 32-bit): a strip at a time, the extra memory is one strip."""
    factor = _factor(*img.size)
    if factor == 1:
        return img
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L"):
        mode = "I"  # reduce() takes 32-bit integers, not 16
    elif mode in ("P", "1"):
        mode = "RGBA" if "transparency" in img.info else "RGB"
    width, height = img.size[0] // factor, img.size[1] // factor
    out = Image.new(mode, (width, height))
    for row in range(0, height, STRIP_ROWS):
        rows = min(STRIP_ROWS, height - row)
        strip = img.crop((0, row * factor, width * factor, (row + rows) * factor))
        if strip.mode != mode:
            strip = strip.convert(mode)
        out.paste(strip.reduce(factor), (0, row))
    out.info = dict(img.info)  # EXIF orientation travels with the pixels
    return out


@cache
def _malloc_trim() -> object | None:
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def give_back_memory() -> None:
    """Return freed heap pages to the OS: glibc keeps them otherwise (+200 MB after one large PNG, measured)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)  # type: ignore[operator]


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
    """The reference's source preparation: longer side down to max_dim (bilinear), then both sides cut to even.

    ImageTooSmall below MIN_SOURCE_SIDE: the root of "a 1x1 image trims to 0x0 and detection divides by zero"."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_SOURCE_SIDE:
        raise ImageTooSmall(f"image is {w}x{h} pixels; a portrait needs at least {MIN_SOURCE_SIDE}x{MIN_SOURCE_SIDE}")
    if max(h, w) > max_dim:
        if h > w:
            new_h, new_w = max_dim, int(w * max_dim / h)
        else:
            new_h, new_w = int(h * max_dim / w), max_dim
        image = cv2.resize(image, (new_w, new_h))
        h, w = new_h, new_w
    return np.ascontiguousarray(image[: h - h % division, : w - w % division])
