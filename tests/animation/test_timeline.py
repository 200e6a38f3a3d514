"""Scripted timelines: easing, retargeting, the per-frame bound, schedules, clear, is_static."""

from __future__ import annotations

import random

import numpy as np
import pytest

from engine.animation.controls import BY_NAME, NAMES, NEUTRAL
from engine.animation.presets import preset_state
from engine.animation.timeline import (
    MIN_TRANSITION_S,
    RETURN_S,
    Animator,
    IdleConfig,
    Keyframe,
    Segment,
)
from engine.errors import BadRequest

OFF = IdleConfig(enabled=False)
H = 1e-4  # for numerical velocities


def still(now: float = 0.0, **kw) -> Animator:
    return Animator(OFF, now, **kw)


def value(a: Animator, name: str, t: float) -> float:
    return a.sample(t).controls[name]


def velocity(a: Animator, name: str, t: float, side: int) -> float:
    """One-sided numerical derivative: side -1 from the left, +1 from the right."""
    if side < 0:
        return (value(a, name, t) - value(a, name, t - H)) / H
    return (value(a, name, t + H) - value(a, name, t)) / H


def test_easing_from_rest_is_smoothstep_over_the_default_250ms() -> None:
    a = still()
    a.set_expression("happy", 1.0, now=10.0)  # default transition
    target = preset_state("happy", 1.0).controls["mouthSmile"]
    for s in np.linspace(0.0, 1.0, 21):
        t = 10.0 + 0.25 * s
        expected = target * (3 * s * s - 2 * s**3)
        assert value(a, "mouthSmile", t) == pytest.approx(expected, abs=1e-9)
    assert value(a, "mouthSmile", 10.25) == target
    assert velocity(a, "mouthSmile", 10.0, +1) == pytest.approx(0.0, abs=1e-2)  # ease in
    assert velocity(a, "mouthSmile", 10.25, -1) == pytest.approx(0.0, abs=1e-2)  # ease out
    samples = [value(a, "mouthSmile", 10.0 + i / 100) for i in range(30)]
    assert samples == sorted(samples)  # no overshoot from rest


def test_per_command_transition_and_the_minimum() -> None:
    a = still()
    a.set_controls({"jawOpen": 1.0}, transition_ms=1000, now=0.0)
    assert value(a, "jawOpen", 0.5) == pytest.approx(0.5)
    assert value(a, "jawOpen", 1.0) == 1.0
    b = still()
    b.set_controls({"jawOpen": 1.0}, transition_ms=0, now=0.0)
    assert 0.0 < value(b, "jawOpen", MIN_TRANSITION_S / 2) < 1.0  # even a jump eases
    assert value(b, "jawOpen", MIN_TRANSITION_S) == 1.0


@pytest.mark.parametrize("at", [0.03, 0.1, 0.125, 0.2])
def test_retarget_mid_transition_keeps_value_and_velocity(at: float) -> None:
    a = still()
    a.set_controls({"jawOpen": 1.0, "headYaw": 15.0}, transition_ms=250, now=0.0)
    before = {n: (value(a, n, at), velocity(a, n, at, -1)) for n in ("jawOpen", "headYaw")}
    a.set_controls({"jawOpen": 0.2, "headYaw": -10.0}, transition_ms=300, now=at)
    for name, (v0, d0) in before.items():
        span = BY_NAME[name].maximum - BY_NAME[name].minimum
        assert value(a, name, at) == pytest.approx(v0, abs=1e-9)
        assert velocity(a, name, at, +1) == pytest.approx(d0, abs=0.01 * span + 0.02 * abs(d0))
    assert value(a, "jawOpen", at + 0.3) == pytest.approx(0.2)
    assert value(a, "headYaw", at + 0.3) == pytest.approx(-10.0)


def test_repeated_command_does_not_restart_the_ease() -> None:
    a = still()
    a.set_controls({"jawOpen": 1.0}, 250, now=0.0)
    mid = value(a, "jawOpen", 0.1)
    a.set_controls({"jawOpen": 1.0}, 250, now=0.1)
    assert value(a, "jawOpen", 0.1) == mid and value(a, "jawOpen", 0.25) == 1.0


def test_frame_to_frame_step_is_bounded_under_adversarial_retargets() -> None:
    rng = random.Random(7)
    a = still()
    dt = 1 / 25
    prev = a.sample(0.0).controls
    worst = 0.0
    for i in range(1, 2000):
        t = i * dt
        if rng.random() < 0.5:
            name = rng.choice(NAMES)
            c = BY_NAME[name]
            a.set_controls({name: rng.choice([c.minimum, c.maximum])}, rng.choice([0, 10, 50, 250]), now=t - dt / 2)
        cur = a.sample(t).controls
        for name in NAMES:
            c = BY_NAME[name]
            # |v| <= max_rate + 1.5 span / MIN (segments start no faster than max_rate = 1.5 span / MIN)
            bound = 3.0 * (c.maximum - c.minimum) / MIN_TRANSITION_S * dt
            step = abs(cur[name] - prev[name])
            worst = max(worst, step / bound)
            assert step <= bound + 1e-9, (name, t, step, bound)
        prev = cur
    assert worst > 0.1  # the test did push it


def test_set_expression_keeps_pose_and_drops_face_controls() -> None:
    a = still()
    a.set_controls({"headYaw": 10.0, "mouthSmile": 0.3}, now=0.0)
    a.set_expression("sad", 1.0, 250, now=1.0)
    state = a.sample(2.0)
    assert state.controls["headYaw"] == 10.0
    assert state.controls["mouthSmile"] == 0.0
    assert state.controls == {**preset_state("sad", 1.0).controls, "headYaw": 10.0}
    assert (state.expression, state.intensity) == ("sad", 1.0)


def test_refusals() -> None:
    a = still()
    with pytest.raises(BadRequest):
        a.set_expression("angry", 1.0, 250, now=0.0)
    with pytest.raises(BadRequest):
        a.set_controls({"jawOpen": 2.0}, 250, now=0.0)
    with pytest.raises(BadRequest):
        a.set_controls({"jawOpen": 0.5}, -5, now=0.0)
    with pytest.raises(BadRequest):
        a.schedule([Keyframe(float("nan"), {"jawOpen": 0.5})], now=0.0)
    assert a.sample(1.0).controls == NEUTRAL  # nothing half-applied


def lipsync(start: float) -> list[Keyframe]:
    values = [0.0, 0.6, 0.2, 0.9, 0.1, 0.7, 0.0]
    return [Keyframe(start + 0.1 * i, {"jawOpen": v}) for i, v in enumerate(values)]


def test_schedule_hits_keyframes_and_returns_to_commanded() -> None:
    a = still()
    a.set_expression("happy", 0.5, 250, now=0.0)
    commanded = preset_state("happy", 0.5).controls
    a.schedule(lipsync(2.0), now=1.0)
    assert a.sample(1.5).controls == commanded  # before the blend-in, nothing
    for k in lipsync(2.0):
        assert value(a, "jawOpen", k.t) == pytest.approx(k.controls["jawOpen"], abs=1e-9)
    assert value(a, "jawOpen", 2.05) == pytest.approx(0.3)  # linear: halfway from 0.0 (2.0) to 0.6 (2.1)
    assert value(a, "jawOpen", 2.15) == pytest.approx(0.4)  # halfway from 0.6 to 0.2
    assert value(a, "mouthSmile", 2.3) == commanded["mouthSmile"]  # unscheduled controls stay commanded
    assert not a.is_static(2.6 + RETURN_S - 0.01)
    assert a.sample(2.6 + RETURN_S).controls == pytest.approx(commanded)
    assert a.is_static(2.6 + RETURN_S)


def test_schedule_return_is_smooth() -> None:
    a = still()
    a.set_controls({"jawOpen": 0.3}, 250, now=0.0)
    a.schedule([Keyframe(1.0, {"jawOpen": 0.8}), Keyframe(1.2, {"jawOpen": 0.8})], now=0.5)
    end = 1.2
    assert velocity(a, "jawOpen", end, +1) == pytest.approx(0.0, abs=0.01)
    samples = [value(a, "jawOpen", end + i * 0.01) for i in range(30)]
    assert samples == sorted(samples, reverse=True) and samples[-1] == pytest.approx(0.3)


@pytest.mark.parametrize("name, lo, hi", [("jawOpen", 0.2, 0.7), ("headYaw", -6.0, 9.0)])
def test_smooth_interpolation_never_overshoots(name: str, lo: float, hi: float) -> None:
    """Keyframes well inside the control's range, so the final clamp cannot hide an overshoot (an unlimited
    Catmull-Rom spline through these points goes past 0.7 and below 0.2: this test fails on it)."""
    a = still(interpolation="smooth")
    pattern = [lo, hi, hi, lo + 0.2 * (hi - lo), lo + 0.3 * (hi - lo), lo]
    frames = [Keyframe(1.0 + 0.1 * i, {name: v}) for i, v in enumerate(pattern)]
    a.schedule(frames, now=0.0)
    ts = np.arange(1.0, 1.5, 0.002)
    vals = np.array([value(a, name, t) for t in ts])
    span = hi - lo
    assert vals.max() <= hi + 1e-9 * span and vals.min() >= lo - 1e-9 * span
    for k in frames:
        assert value(a, name, k.t) == pytest.approx(k.controls[name], abs=1e-9 * span)
    between = vals[(ts > 1.1) & (ts < 1.2)]
    assert np.all(between == pytest.approx(hi))  # flat stays flat (monotone cubic)
    steps = np.abs(np.diff(vals))
    assert steps.max() < 0.05 * span  # C1: no kinks big enough to see at this resolution
    segment = vals[(ts > 1.4) & (ts < 1.5)]  # from lo+0.3 span back down to lo: monotone, no dip below lo
    assert np.all(np.diff(segment) <= 1e-12)


@pytest.mark.parametrize("at", [2.05, 2.22, 2.37])
def test_clear_interrupts_smoothly(at: float) -> None:
    a = still()
    a.schedule(lipsync(2.0), now=1.0)
    v0, d0 = value(a, "jawOpen", at), velocity(a, "jawOpen", at, -1)
    a.clear(now=at)
    assert value(a, "jawOpen", at) == pytest.approx(v0, abs=1e-9)
    assert velocity(a, "jawOpen", at, +1) == pytest.approx(d0, abs=0.05)
    assert value(a, "jawOpen", at + RETURN_S) == 0.0
    assert a.is_static(at + RETURN_S)
    # the keyframes after the clear no longer play
    assert value(a, "jawOpen", 2.5) == 0.0


def test_clear_without_schedule_changes_nothing() -> None:
    a = still()
    a.set_expression("surprised", 1.0, 250, now=0.0)
    a.clear(now=1.0)
    assert a.sample(1.0).controls == preset_state("surprised", 1.0).controls
    assert a.turn.state_at(1.0) == "listening"  # a barge-in gives the user the turn (with idle off: no look)
    assert a.is_static(1.0)


def test_new_schedule_replaces_the_old_without_a_jump() -> None:
    a = still()
    a.schedule(lipsync(1.0), now=0.5)
    v0 = value(a, "jawOpen", 1.15)
    a.schedule(lipsync(1.5), now=1.15)
    assert value(a, "jawOpen", 1.15) == pytest.approx(v0, abs=1e-9)
    assert value(a, "jawOpen", 1.8) == pytest.approx(0.9)  # the new one plays


def test_schedule_in_the_past_is_ignored() -> None:
    a = still()
    a.schedule(lipsync(1.0), now=5.0)
    assert a.sample(5.0).controls == NEUTRAL and a.is_static(5.0)


def test_static_cache_contract() -> None:
    a = still()
    assert a.is_static(0.0)
    a.set_expression("happy", 1.0, 250, now=1.0)
    assert not a.is_static(1.1)
    assert a.is_static(1.25)
    key = a.sample(1.25).key()
    assert all(a.sample(t).key() == key for t in (2.0, 50.0, 5000.0))
    alive = Animator(IdleConfig(enabled=True, seed=1), 0.0)
    assert not alive.is_static(100.0)


def test_smoothed_stream_rejects_jitter_but_follows_a_step() -> None:
    rng = np.random.default_rng(0)
    raw = Animator(OFF, 0.0)
    smooth = Animator(OFF, 0.0, smooth=True)
    dt = 1 / 30
    out_raw, out_smooth = [], []
    for i in range(150):
        t = i * dt
        level = 0.3 if i < 90 else 0.8  # a deliberate step at 3 s
        v = float(np.clip(level + rng.normal(0, 0.03), 0, 1))
        for anim in (raw, smooth):
            anim.set_controls({"jawOpen": v}, transition_ms=0, now=t)
        out_raw.append(value(raw, "jawOpen", t + dt))
        out_smooth.append(value(smooth, "jawOpen", t + dt))
    jitter_raw = np.std(np.diff(out_raw[30:90]))
    jitter_smooth = np.std(np.diff(out_smooth[30:90]))
    assert jitter_smooth < 0.5 * jitter_raw
    # no lag on the deliberate change: within 5 frames (~170 ms) it is most of the way there
    assert out_smooth[95] > 0.3 + 0.8 * 0.5


def test_segment_velocity_is_the_derivative_of_its_value() -> None:
    seg = Segment(1.0, 0.4, 0.2, -3.0, 0.9)
    for t in np.linspace(1.01, 1.39, 12):
        (v0, _), (v1, _) = seg.at(t - H), seg.at(t + H)
        assert seg.at(t)[1] == pytest.approx((v1 - v0) / (2 * H), rel=1e-4, abs=1e-6)
    assert seg.at(0.5) == (0.2, -3.0) and seg.at(1.4) == (0.9, 0.0)
