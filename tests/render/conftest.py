"""Fixtures the offline renderer's tests share: the dlib detector, the renderer and each portrait prepared, one of
each per session (three modules prepare the same portraits; each preparation costs seconds on a loaded machine)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.face.detect_dlib import DlibDetector
from engine.face.intake import decode_image
from engine.face.pipeline import FacePipeline
from engine.face.types import FaceCrop
from engine.render.offline import OfflineRenderer, OfflineSource

DATA = Path(__file__).resolve().parents[1] / "data"
Prepared = tuple[FaceCrop, OfflineSource]


@pytest.fixture(scope="session")
def detector() -> DlibDetector:
    return DlibDetector(turned=False)  # HOG only: every portrait here is frontal, and it is fast


@pytest.fixture(scope="session")
def renderer() -> OfflineRenderer:
    return OfflineRenderer()


@pytest.fixture(scope="session")
def prepared(detector: DlibDetector, renderer: OfflineRenderer) -> Callable[[str], Prepared]:
    """A portrait of tests/data, cropped and prepared for the offline renderer once (the same objects each time:
    nothing in a test may change them)."""
    pipeline, made = FacePipeline(detector, "test"), {}

    def get(name: str) -> Prepared:
        if name not in made:
            face = pipeline.crop(decode_image((DATA / name).read_bytes()))
            made[name] = (face, renderer.prepare(face))
        return made[name]

    return get
