"""engine/stats.py: the one percentile every figure uses (engine health, WHEP stats, tests, benches)."""

from __future__ import annotations

from engine.stats import percentile


def test_percentile_is_the_nearest_rank_of_the_sorted_values() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert percentile(values, 50) == 51.0 and percentile(values, 95) == 96.0
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) == 0.0
    assert percentile(iter([3.0, 1.0, 2.0]), 50) == 2.0  # any iterable, e.g. a deque
