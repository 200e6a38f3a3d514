"""Fixtures shared across test folders.

``golden_models``: one synthetic models folder (golden weights, official layout) per machine, reused across runs.
Writing the five checkpoints from the fill scheme takes ~20 s, so the folder lives in pytest's cache, keyed by the
sha256 of the test kit; a stale or half-written folder is rebuilt.

In CI (``CI=true``) a skipped test fails the run: tests/ci_skips.py.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from engine.liveportrait.testing import GOLDEN_TAG, MANIFEST, write_synthetic_models
from tests import ci_skips


def pytest_configure(config: pytest.Config) -> None:
    """In CI (CI=true) a skipped test fails the run, naming the test and why (tests/ci_skips.py)."""
    ci_skips.register(config)


def _kit_digest() -> str:
    h = hashlib.sha256()
    for path in (MANIFEST, MANIFEST.with_name("fill_weights.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def golden_models(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with the golden-0 synthetic checkpoints in the official layout."""
    key = f"{GOLDEN_TAG}-{_kit_digest()}"
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("liveportrait-synthetic")) if cache is not None else tmp_path_factory.mktemp("lp")
    folder = root / key
    done = folder / "COMPLETE"
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        write_synthetic_models(folder, GOLDEN_TAG)
        done.write_text(key)
    return folder
