"""Image intake: every refusal is typed and happens before decoding; odd pixel formats come out as 8-bit RGB."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from engine.errors import ImageTooLarge, InvalidImage
from engine.face.intake import decode_image, limit_size
from tests.face.conftest import DATA


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def test_jpeg_png_webp_decode_to_rgb8() -> None:
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[..., 0] = 200
    for fmt in ("JPEG", "PNG", "WEBP"):
        out = decode_image(_encode(Image.fromarray(rgb), fmt, **({"quality": 95} if fmt != "PNG" else {})))
        assert out.shape == (40, 60, 3) and out.dtype == np.uint8
        assert abs(int(out[20, 30, 0]) - 200) <= 3 and out[20, 30, 2] <= 3


@pytest.mark.parametrize("data", [b"", b"hello, not an image", b"%PDF-1.4\n" + b"0" * 200])
def test_non_images_are_invalid(data: bytes) -> None:
    with pytest.raises(InvalidImage) as info:
        decode_image(data)
    assert info.value.code == "invalid_image"


def test_unsupported_format_is_invalid() -> None:
    with pytest.raises(InvalidImage, match="unsupported"):
        decode_image(_encode(Image.new("RGB", (8, 8)), "BMP"))


def test_truncated_jpeg_is_invalid() -> None:
    data = (DATA / "s42.jpg").read_bytes()
    with pytest.raises(InvalidImage, match="truncated"):
        decode_image(data[: len(data) // 2])


def test_byte_limit() -> None:
    data = (DATA / "s42.jpg").read_bytes()
    with pytest.raises(ImageTooLarge) as info:
        decode_image(data, max_bytes=len(data) - 1)
    assert info.value.code == "image_too_large"
    assert decode_image(data, max_bytes=len(data)).shape == (512, 512, 3)


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height gray pixels, with a tiny compressed body (all zero rows)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(comp.compress(row) for _ in range(64)) + comp.flush()  # only the first rows: enough for a header
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [8_000, 30_000])  # 64 MP: our limit; 900 MP: Pillow's bomb guard as well
def test_decompression_bomb_is_refused_before_decoding(side: int) -> None:
    data = _bomb_png(side, side)  # declared in a file of a few kB
    assert len(data) < 20_000
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(data)


def test_pixel_limit_is_configurable() -> None:
    data = _encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageTooLarge):
        decode_image(data, max_pixels=9_999)
    assert decode_image(data, max_pixels=10_000).shape == (100, 100, 3)


def test_exif_orientation_is_applied() -> None:
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20, 0] = 255  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    out = decode_image(_encode(Image.fromarray(image), "JPEG", quality=95, exif=exif.tobytes()))
    assert out.shape == (40, 20, 3)
    assert out[5, 10, 0] > 200 and out[35, 10, 0] < 50  # the red half is now on top


def test_rgba_is_composited_on_white() -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:5, :, :] = (255, 0, 0, 255)  # top opaque red, bottom fully transparent
    out = decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert out.shape == (10, 10, 3)
    assert out[0, 0].tolist() == [255, 0, 0] and out[9, 9].tolist() == [255, 255, 255]


def test_grayscale_becomes_rgb() -> None:
    out = decode_image(_encode(Image.fromarray(np.full((8, 8), 77, np.uint8), "L"), "PNG"))
    assert out.shape == (8, 8, 3) and out[0, 0].tolist() == [77, 77, 77]


def test_16_bit_png_becomes_8_bit() -> None:
    gray16 = np.full((8, 8), 65535 // 2, np.uint16)
    gray16[0, 0] = 65535
    out = decode_image(_encode(Image.fromarray(gray16), "PNG"))
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    assert out[0, 0].tolist() == [255] * 3 and abs(int(out[4, 4, 0]) - 128) <= 1


def test_palette_png_becomes_rgb() -> None:
    img = Image.fromarray(np.full((8, 8, 3), (10, 200, 30), np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert decode_image(_encode(img, "PNG"))[0, 0].tolist() == [10, 200, 30]


def test_limit_size_matches_the_reference() -> None:
    out = limit_size(np.zeros((1001, 2561, 3), np.uint8))
    assert out.shape == (500, 1280, 3)  # int(1001 * 1280 / 2561) = 500; even already
    assert limit_size(np.zeros((513, 301, 3), np.uint8)).shape == (512, 300, 3)  # crop, not resize
