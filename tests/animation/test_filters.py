"""One-Euro filter: smooths jitter at rest, follows fast deliberate motion with little lag."""

from __future__ import annotations

import numpy as np

from engine.animation.filters import OneEuroBank, OneEuroConfig, OneEuroFilter


def test_jitter_at_rest_is_smoothed() -> None:
    rng = np.random.default_rng(1)
    f = OneEuroFilter()
    t = np.arange(300) / 60
    noisy = 0.5 + rng.normal(0, 0.02, t.size)
    out = np.array([f(float(v), float(ti)) for v, ti in zip(noisy, t, strict=True)])
    assert np.std(out[60:]) < 0.3 * np.std(noisy[60:])
    assert abs(np.mean(out[60:]) - 0.5) < 0.01


def test_fast_motion_has_little_lag() -> None:
    f = OneEuroFilter(OneEuroConfig())
    slow = OneEuroFilter(OneEuroConfig(beta=0.0))  # a plain low-pass at the same rest cutoff
    t = np.arange(120) / 60
    ramp = np.clip((t - 0.5) * 5.0, 0, 1)  # 0 -> 1 in 200 ms
    out = [f(float(v), float(ti)) for v, ti in zip(ramp, t, strict=True)]
    lowpass = [slow(float(v), float(ti)) for v, ti in zip(ramp, t, strict=True)]
    i = int(np.searchsorted(t, 0.75))  # 50 ms after the ramp ends
    assert out[i] > 0.85
    assert out[i] > lowpass[i] + 0.2


def test_first_value_passes_and_equal_time_holds() -> None:
    f = OneEuroFilter()
    assert f(0.7, 1.0) == 0.7
    assert f(0.1, 1.0) == 0.7
    f.reset()
    assert f(0.2, 2.0) == 0.2


def test_bank_scales_by_span() -> None:
    bank = OneEuroBank()
    assert bank.filter("headYaw", 10.0, 0.0, span=40.0) == 10.0
    moved = bank.filter("headYaw", 12.0, 1 / 30, span=40.0)
    assert 10.0 < moved < 12.0
