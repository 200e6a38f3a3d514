"""Shared fixtures for the face tests: the dlib pipeline is built once (loading its predictor takes a second)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.face.intake import decode_image
from engine.face.pipeline import FacePipeline

DATA = Path(__file__).resolve().parents[1] / "data"


def load(name: str) -> np.ndarray:
    return decode_image((DATA / name).read_bytes())


def generated_negatives() -> dict[str, np.ndarray]:
    """The shared portraits' generated negatives, rebuilt from their recipe (shared/portraits/README.md)."""
    t = (np.arange(480, dtype=np.float64) / 480)[:, None]
    gradient = np.zeros((480, 640, 3), np.uint8)
    gradient[..., 0] = (90 + 80 * t).astype(np.uint8)
    gradient[..., 1] = (140 + 60 * (1 - t)).astype(np.uint8)
    gradient[..., 2] = (230 - 150 * t).astype(np.uint8)
    return {
        "gradient": gradient,
        "gray": np.full((480, 640, 3), 128, np.uint8),
        "noise": np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8),
    }


@pytest.fixture(scope="session")
def dlib_pipeline() -> FacePipeline:
    return FacePipeline.create(mode="dlib")
