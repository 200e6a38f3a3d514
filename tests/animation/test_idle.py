"""Idle life: blink statistics over 10 simulated minutes, sway and gaze bounds, determinism, never fighting."""

from __future__ import annotations

import numpy as np
import pytest

from engine.animation.idle import Blink, IdleConfig, IdleLife
from engine.animation.timeline import IDLE_FADE_S, Animator

FPS = 25
MINUTES = 10


def run(seed: int, start: float = 100.0) -> tuple[Animator, np.ndarray, dict[str, np.ndarray]]:
    a = Animator(IdleConfig(enabled=True, seed=seed), start)
    times = start + np.arange(FPS * 60 * MINUTES) / FPS
    states = [a.sample(float(t)).controls for t in times]
    return a, times, {n: np.array([s[n] for s in states]) for n in states[0]}


@pytest.fixture(scope="module")
def ten_minutes() -> tuple[Animator, np.ndarray, dict[str, np.ndarray]]:
    return run(seed=42)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame indices of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def test_blink_events_follow_human_statistics(ten_minutes) -> None:
    _, times, _ = ten_minutes
    life = IdleLife(IdleConfig(seed=42), 100.0)
    blinks = life.blinks_until(float(times[-1]))
    durations = np.array([b.duration for b in blinks])
    assert durations.min() >= 0.18 and durations.max() <= 0.28
    # below half-open for 100-170 ms (human blinks): the hold plus half of the close and open ramps
    shut = np.array([b.hold + 0.5 * (b.close + b.open) for b in blinks])
    assert shut.min() >= 0.10 and shut.max() <= 0.17
    groups = [b for b in blinks if not b.double]
    doubles = [b for b in blinks if b.double]
    share = len(doubles) / len(groups)
    assert 0.03 <= share <= 0.30, share  # an occasional double blink
    # gaps between blink groups: from the end of a blink (or its double) to the next group's start
    ends = {}
    for b in blinks:
        key = max(g.start for g in groups if g.start <= b.start)
        ends[key] = max(ends.get(key, 0.0), b.end)
    starts = [g.start for g in groups]
    gaps = np.array([nxt - ends[cur] for cur, nxt in zip(starts, starts[1:], strict=False)])
    assert gaps.min() >= 2.0 and gaps.max() <= 10.0
    assert 3.0 <= np.mean(gaps) <= 6.5
    per_minute = len(groups) / MINUTES
    assert 8 <= per_minute <= 20, per_minute  # people blink ~10-20 times a minute
    assert len({round(g, 1) for g in gaps}) > 20  # random, not a metronome


def test_sampled_frames_show_the_same_blinks(ten_minutes) -> None:
    _, times, c = ten_minutes
    closed = runs(c["eyeBlink"] > 0.0)
    life = IdleLife(IdleConfig(seed=42), 100.0)
    blinks = [b for b in life.blinks_until(float(times[-1])) if b.end < times[-1]]
    # every event that spans a frame shows up; a double blink may merge with its first at 25 fps
    assert len(blinks) * 0.8 <= len(closed) <= len(blinks)
    for first, last in closed:
        assert (last - first + 1) / FPS <= 0.28 + 0.15 + 0.28 + 1 / FPS  # at most a double blink
        lids = c["eyeBlink"][first:last + 1]
        assert (lids >= 0.9).sum() >= 1  # EVERY blink shows a closed frame at 25 fps (a closed hold) ...
        assert (lids >= 0.9).sum() <= 8  # ... and a blink is not a long closure (1-4 per blink, 8 for a double)


@pytest.mark.parametrize("seed", [42, 7])
def test_sway_follows_calm_human_heads(seed: int, ten_minutes) -> None:
    _, _, c = ten_minutes if seed == 42 else run(seed)
    for name in ("headPitch", "headYaw", "headRoll"):
        angle = c[name][FPS:]  # after the fade-in
        speed = np.abs(np.diff(angle)) * FPS
        assert 0.3 <= angle.std() <= 0.8, (name, angle.std())  # calm people: 0.3-0.8 degrees std per axis
        assert 2.0 <= np.percentile(speed, 90) <= 5.0, (name, np.percentile(speed, 90))  # p90 speed 2-5 deg/s
        assert np.abs(angle).max() <= 3.5
        power = np.abs(np.fft.rfft(angle - angle.mean())) ** 2
        assert power.max() < 0.05 * power.sum()  # no single period dominates (a sine puts ~all power in one bin)


def test_gaze_shifts_are_visible_and_bounded(ten_minutes) -> None:
    _, _, c = ten_minutes
    assert np.abs(c["gazeX"]).max() <= 0.5 and np.abs(c["gazeY"]).max() <= 0.3
    assert np.percentile(np.abs(c["gazeX"]), 90) >= 0.2  # large enough to show on both renderers
    for name in ("mouthSmile", "jawOpen", "browDown"):
        assert not c[name].any()


def test_deterministic_under_seed_and_sampling_order() -> None:
    a = Animator(IdleConfig(seed=5), 0.0)
    b = Animator(IdleConfig(seed=5), 0.0)
    other = Animator(IdleConfig(seed=6), 0.0)
    ts = [float(t) for t in np.arange(0.0, 60.0, 1 / 25)]
    seq_a = [a.sample(t).controls for t in ts]
    # b is asked out of order (the far end first): same answers
    seq_b = {t: b.sample(t).controls for t in reversed(ts)}
    assert all(seq_a[i] == seq_b[t] for i, t in enumerate(ts))
    assert any(seq_a[i] != other.sample(t).controls for i, t in enumerate(ts))


def test_idle_never_fights_the_command() -> None:
    a = Animator(IdleConfig(seed=3), 0.0)
    a.set_controls({"eyeBlink": 1.0, "headPitch": 10.0}, 250, now=0.0)
    ts = np.arange(1.0, 120.0, 1 / 25)
    states = [a.sample(float(t)).controls for t in ts]
    assert all(s["eyeBlink"] == 1.0 for s in states)  # commanded closed eyes stay closed
    pitches = np.array([s["headPitch"] for s in states])
    assert np.abs(pitches - 10.0).max() <= 3.5  # sway adds to the commanded pose
    half = Animator(IdleConfig(seed=3), 0.0)
    half.set_controls({"eyeBlink": 0.5}, 250, now=0.0)
    lids = np.array([half.sample(float(t)).controls["eyeBlink"] for t in ts])
    assert lids.min() == 0.5 and lids.max() > 0.9  # blinks close from there and come back


def test_idle_off_fades_then_is_static() -> None:
    a = Animator(IdleConfig(seed=1), 0.0)
    a.set_expression("happy", 1.0, 250, now=0.0)
    before = a.sample(30.0).controls["headPitch"]
    a.set_idle(IdleConfig(enabled=False), now=30.0)
    assert a.sample(30.0).controls["headPitch"] == pytest.approx(before)
    assert not a.is_static(30.0 + IDLE_FADE_S / 2)
    assert a.is_static(30.0 + IDLE_FADE_S)
    assert a.sample(31.0).controls["headPitch"] == 0.0
    same = IdleConfig(seed=1)
    b = Animator(same, 0.0)
    first = b.sample(10.0).controls
    b.set_idle(same, now=10.0)  # the same config keeps running, undisturbed
    assert b.sample(10.0).controls == first


def test_still_config_is_static() -> None:
    cfg = IdleConfig(enabled=True, blink=False, gaze=False, sway_std_deg=(0.0, 0.0, 0.0))
    assert cfg.is_still
    assert Animator(cfg, 0.0).is_static(1.0)


def test_blink_shape_closes_fast_holds_then_opens() -> None:
    blink = Blink(10.0, close=0.06, hold=0.05, open=0.12)
    ts = np.linspace(9.99, 10.25, 2601)
    lid = np.array([blink.closure(float(t)) for t in ts])
    assert lid[0] == 0.0 and lid[-1] == 0.0 and lid.max() == 1.0
    shut = ts[lid >= 0.9]
    assert shut.max() - shut.min() >= 1 / FPS  # any 25 fps sampling lands at least one frame in here
    peak = ts[np.argmax(lid)]
    assert peak - 10.0 < 0.07  # closes faster than it opens
    top = int(np.argmax(lid))
    assert np.all(np.diff(lid[: top + 1]) >= 0) and np.all(np.diff(lid[top:]) <= 0)
