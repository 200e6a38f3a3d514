"""Summary statistics shared by the engine, the bridge, the tests and the benches (stdlib only, so the bridge may
import it: tests/service/test_bridge_imports.py)."""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (``q`` in 0..100) of ``values``, in any order; 0.0 when empty.

    Nearest rank, not interpolated: every figure printed is a value that was measured."""
    data = sorted(values)
    if not data:
        return 0.0
    return float(data[min(len(data) - 1, max(0, int(len(data) * q / 100)))])
