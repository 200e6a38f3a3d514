"""Shared fixtures: the golden outputs (the synthetic models folder, ``golden_models``, is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(DATA / "golden_golden-0.npz") as g:
        return {k: g[k] for k in g.files}
