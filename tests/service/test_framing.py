"""A stream's framing (the `stream` command's ``framing``, ``width``, ``height``; engine/framing.py): a real engine,
real PUB frames, real JPEGs, the face found in them by the real dlib detector."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.client import EngineClient, Frame
from engine.codec import decode_jpeg
from engine.face.detect_dlib import DlibDetector
from engine.face.types import Face
from tests.service.conftest import EngineProcess

SAVE = os.environ.get("LP_SAVE_FRAMES")  # a folder: the frames are written there as PNG, to look at


@pytest.fixture(scope="module")
def detector() -> DlibDetector:
    return DlibDetector()


@pytest.fixture(scope="module")
def astronaut(engine: EngineProcess, portrait: bytes) -> Iterator[str]:
    """The bundled astronaut: her whole body, the face a fifth of the photo's width."""
    yield engine.request({"v": 1, "cmd": "set_source", "image": portrait})["avatar"]


def frames(engine: EngineProcess, avatar: str, n: int, **framing: object) -> list[Frame]:
    with EngineClient(engine.command_addr) as client, client.subscribe(engine.frame_addr, avatar) as sub:
        reply = client.stream(avatar, fps=10, **framing)
        try:
            got = [sub.recv(timeout_ms=15_000) for _ in range(n)]
        finally:
            client.stream(avatar, fps=0)
    assert all(f is not None for f in got)
    assert reply.framing == framing.get("framing", "full")
    return got  # type: ignore[return-value]


def one_face(detector: DlibDetector, rgb: np.ndarray, name: str) -> Face:
    if SAVE:
        from PIL import Image
        Image.fromarray(rgb).save(Path(SAVE) / f"{name}.png")
    faces = detector.detect(rgb)
    assert len(faces) == 1, (name, len(faces))
    return faces[0]


def test_head_framing_gives_frames_of_that_size_with_the_face_centred(engine: EngineProcess, astronaut: str,
                                                                      detector: DlibDetector) -> None:
    full = decode_jpeg(frames(engine, astronaut, 1)[0].jpeg)
    photo_face = one_face(detector, full, "full")
    x1, _, x2, _ = photo_face.box
    assert (x2 - x1) / full.shape[1] < 0.3  # the photo itself: a small face (else the test proves nothing)
    for width, height in ((512, 512), (1280, 720)):
        got = frames(engine, astronaut, 2, framing="head", width=width, height=height)
        for frame in got:
            assert frame.header["framing"] == "head"
            assert (frame.header["width"], frame.header["height"]) == (width, height)
        rgb = decode_jpeg(got[-1].jpeg)
        assert rgb.shape == (height, width, 3)
        x1, y1, x2, y2 = one_face(detector, rgb, f"head_{width}x{height}").box
        assert abs((x1 + x2) / 2 - width / 2) < 0.08 * width, "the face is centred across"
        assert 0.25 * height < (y1 + y2) / 2 < 0.55 * height, "the face is in the upper middle (head and shoulders)"
        assert 0.2 < (y2 - y1) / height < 0.5, "the face is a head-and-shoulders size"


def test_face_framing_gives_the_aligned_crop_at_the_size_asked(engine: EngineProcess, astronaut: str,
                                                               detector: DlibDetector) -> None:
    got = frames(engine, astronaut, 1, framing="face", width=256, height=256)[0]
    rgb = decode_jpeg(got.jpeg)
    assert got.header["framing"] == "face" and rgb.shape == (256, 256, 3)
    x1, y1, x2, y2 = one_face(detector, rgb, "face_256").box
    assert abs((x1 + x2) / 2 - 128) < 0.1 * 256 and (x2 - x1) / 256 > 0.3


@pytest.mark.parametrize("fields", [
    {"framing": "body"}, {"framing": 1}, {"framing": "head", "width": 512},
    {"framing": "head", "width": 513, "height": 512}, {"framing": "face", "width": 32, "height": 32},
    {"framing": "head", "width": 4096, "height": 512}, {"framing": "head", "width": True, "height": 512},
    {"framing": "head", "width": "512", "height": "512"}, {"width": 511.5, "height": 512},
])
def test_bad_framing_is_bad_request(engine: EngineProcess, astronaut: str, fields: dict) -> None:
    reply = engine.request({"v": 1, "cmd": "stream", "avatar": astronaut, "fps": 10, **fields})
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
    assert astronaut not in engine.request({"v": 1, "cmd": "health"})["streams"]
