"""Shared fixtures: the golden outputs and the network loaded once on the synthetic weights (the synthetic models
folder, ``golden_models``, is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.render.liveportrait import LivePortraitRenderer

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(DATA / "golden_golden-0.npz") as g:
        return {k: g[k] for k in g.files}


@pytest.fixture(scope="session")
def golden_renderer(golden_models: Path) -> LivePortraitRenderer:
    """The renderer loaded from the golden checkpoints on the CPU, once per session: test_lp_renderer.py draws with
    it and test_lp_equivalence.py checks its core (``LivePortrait.from_dir`` in float32, as the renderer loads it)
    against the reference. Loading costs seconds; nothing a test does changes the loaded network."""
    torch.set_num_threads(2)
    return LivePortraitRenderer.load(golden_models, device="cpu")
