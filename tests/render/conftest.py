"""Fixtures the offline renderer's tests share: the dlib detector and the renderer, one of each per module."""

from __future__ import annotations

import pytest

from engine.face.detect_dlib import DlibDetector
from engine.render.offline import OfflineRenderer


@pytest.fixture(scope="module")
def detector() -> DlibDetector:
    return DlibDetector(turned=False)  # HOG only: every portrait here is frontal, and it is fast


@pytest.fixture(scope="module")
def renderer() -> OfflineRenderer:
    return OfflineRenderer()
