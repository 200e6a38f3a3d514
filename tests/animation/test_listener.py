"""Listener timing on synthetic voices (a glottal-like pulse train with syllable loudness, exact pause times) and the
turn states on the Animator's controls. The rendered-frame checks with espeak-ng are in tests/service/test_listen.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.animation.listener import STALE_S, WINDOW_S, Listener, ListenerConfig
from engine.animation.timeline import Animator, IdleConfig
from engine.speech.audio import Pcm

RATE = 16_000
CFG = ListenerConfig()


def voice(seconds: float, f0: float | tuple[float, float] = 120.0, seed: int = 0) -> np.ndarray:
    """A voiced stretch: harmonics of f0 (or a glide from f0[0] to f0[1]) under 4 Hz syllable loudness."""
    t = np.arange(int(seconds * RATE)) / RATE
    lo, hi = (f0, f0) if isinstance(f0, float) else f0
    freq = lo + (hi - lo) * t / max(seconds, 1e-9)
    phase = 2 * np.pi * np.cumsum(freq) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = 0.55 + 0.45 * np.abs(np.sin(2 * np.pi * 2.0 * t + seed))
    return (0.2 * x * syllables).astype(np.float32)


def quiet(seconds: float, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).normal(0, 3e-4, int(seconds * RATE))).astype(np.float32)


def feed(listener: Listener, x: np.ndarray, chunk_s: float = 0.1, realtime: bool = True) -> None:
    """Stream x in chunks: in real time (each chunk heard up to its end) or all sent at engine time 0."""
    n = int(chunk_s * RATE)
    for i in range(0, len(x), n):
        now = (i + len(x[i:i + n])) / RATE if realtime else 0.0
        listener.hear(x[i:i + n], RATE, now)


def nods(listener: Listener) -> list[float]:
    return [e.start for e in listener.events if e.kind == "nod"]


def test_a_nod_lands_in_the_pause_after_enough_speech() -> None:
    x = np.concatenate([quiet(0.5), voice(1.5), quiet(1.5)])
    listener = Listener()
    feed(listener, x)
    (nod,) = nods(listener)
    pause = 2.0  # the voice ends here
    assert pause + 0.3 <= nod <= pause + 0.8  # 300-800 ms into the pause
    assert nod == pytest.approx(pause + CFG.nod_delay_s, abs=0.06)


def test_no_nod_in_a_short_gap_nor_after_too_little_speech() -> None:
    listener = Listener()
    # 1.2 s of talk with a 0.3 s gap inside (not a pause), then 0.6 s of talk and a long pause: no run of >= 1 s ...
    feed(listener, np.concatenate([voice(0.6), quiet(0.3), voice(0.6), quiet(1.2)]))
    (nod,) = nods(listener)  # ... but the gap did not split the first run: one nod, after it
    assert nod == pytest.approx(1.5 + CFG.nod_delay_s, abs=0.06)
    listener = Listener()
    feed(listener, np.concatenate([voice(0.6), quiet(1.5)]))
    assert nods(listener) == []


def test_nods_are_spaced_by_the_gap_and_none_while_talking() -> None:
    x = np.concatenate([voice(1.2), quiet(0.6), voice(1.2), quiet(0.6), voice(1.2), quiet(2.0)])
    listener = Listener()
    feed(listener, x)
    got = nods(listener)
    talk = [(0.0, 1.2), (1.8, 3.0), (3.6, 4.8)]
    assert len(got) == 2  # after the first run and after the third: the second's pause is too soon
    assert all(b - a >= CFG.nod_gap_s for a, b in zip(got, got[1:], strict=False))
    for n in got:  # every nod starts in a pause
        assert not any(a <= n <= b for a, b in talk)


def test_same_audio_same_nods_and_a_chunk_delays_a_nod_by_at_most_its_length() -> None:
    x = np.concatenate([voice(1.3), quiet(0.9), voice(1.1, seed=2), quiet(3.5), voice(1.2), quiet(1.0)])
    pauses = [1.3, 3.3, 8.0]  # where the voice stops
    for chunk in (0.01, 0.1, 0.25):
        runs = []
        for _ in range(2):
            listener = Listener()
            feed(listener, x, chunk)
            runs.append(listener.events)
        assert runs[0] == runs[1]
        got = [e.start for e in runs[0] if e.kind == "nod"]
        assert len(got) == 2, (chunk, got)  # the second pause comes too soon after the first nod
        for nod, pause in zip(got, pauses[::2], strict=True):
            assert pause + CFG.nod_delay_s - 0.03 <= nod <= pause + CFG.nod_delay_s + chunk + 0.03


def test_a_rising_phrase_end_raises_the_brows_a_falling_one_does_not() -> None:
    up = Listener()
    feed(up, np.concatenate([voice(1.0, 120.0), voice(0.35, (120.0, 170.0)), quiet(1.2)]))
    assert [e.kind for e in up.events].count("brow") == 1
    brow = next(e for e in up.events if e.kind == "brow")
    assert up.offsets(brow.start + 0.4)["browInnerUp"] == pytest.approx(CFG.brow)
    down = Listener()
    feed(down, np.concatenate([voice(1.0, 120.0), voice(0.35, (120.0, 90.0)), quiet(1.2)]))
    assert all(e.kind != "brow" for e in down.events)


def test_nod_shape_is_small_smooth_and_downwards() -> None:
    listener = Listener()
    feed(listener, np.concatenate([voice(1.5), quiet(1.5)]))
    (nod,) = nods(listener)
    ts = np.arange(nod - 0.1, nod + CFG.nod_s + 0.1, 0.04)
    pitch = np.array([listener.offsets(float(t))["headPitch"] for t in ts])
    assert pitch.min() == pytest.approx(-CFG.nod_deg, abs=0.3) and pitch.max() <= 0.0
    assert np.abs(np.diff(pitch)).max() < 0.5 * CFG.nod_deg  # eases: no frame-to-frame jump at 25 fps
    assert pitch[0] == 0.0 and pitch[-1] == 0.0


def head_track(listener: Listener, start: float, seconds: float = 1.2) -> np.ndarray:
    """headPitch at 25 fps from ``start`` for ``seconds``."""
    return np.array([listener.offsets(float(t))["headPitch"] for t in np.arange(start, start + seconds, 0.04)])


def dips(track: np.ndarray) -> int:
    """How many separate dips below a third of the track's deepest point it has."""
    below = track < track.min() / 3
    return int(np.sum(below[1:] & ~below[:-1]) + below[0])


def test_nods_vary_with_how_long_the_user_talked() -> None:
    """A listener's nods are not one stamped dip: a short remark gets a lighter nod, a long run a deeper one, and a
    long run a double nod ("mm-hm"), two quicker dips, but never two doubles in a row."""
    listener = Listener()
    x = np.concatenate([voice(1.1), quiet(2.0), voice(2.5, seed=2), quiet(1.2), voice(3.5, seed=3), quiet(1.2),
                        voice(3.5, seed=4), quiet(1.2), voice(3.5, seed=5), quiet(1.2)])
    n, events, tracks = int(0.1 * RATE), [], []
    for i in range(0, len(x), n):  # fed in real time; each nod is read while the listener still keeps it
        listener.hear(x[i:i + n], RATE, (i + len(x[i:i + n])) / RATE)
        for e in listener.events:
            if e.kind == "nod" and e not in events:
                events.append(e)
                tracks.append(head_track(listener, e.start - 0.04))
    assert len(events) == 5, events
    depths = [-float(track.min()) for track in tracks]
    assert depths[0] < 0.95 * CFG.nod_deg < 1.05 * CFG.nod_deg < depths[1], depths  # short remark, longer run
    assert [dips(track) for track in tracks] == [1, 1, 2, 1, 2]  # long runs: double, single, double
    for track in tracks:  # each eases in and out, down only, and is done within 1.2 s
        assert track.max() <= 0.0 and track[0] == 0.0 and track[-1] == 0.0
        assert np.abs(np.diff(track)).max() < 0.5 * CFG.nod_deg


def test_vad_events_place_nods_and_a_resumed_talk_cancels_one() -> None:
    listener = Listener()
    listener.vad(True, 10.0)
    listener.vad(False, 11.3)
    assert listener.offsets(11.3 + CFG.nod_delay_s + CFG.nod_s / 2)["headPitch"] < -CFG.nod_deg * 0.9
    listener = Listener()
    listener.vad(True, 10.0)
    listener.vad(False, 11.3)
    listener.vad(True, 11.5)  # talk resumed before the nod's time: no nod
    listener.vad(False, 11.6)  # (a run of 1.6 s with a gap in it; this pause earns the nod)
    times = [11.3 + 0.05 * i for i in range(40)]
    first = next(t for t in times if listener.offsets(t)["headPitch"] < 0)
    assert first >= 11.6 + CFG.nod_delay_s


def test_a_stream_that_stops_after_speech_still_gets_its_nod() -> None:
    listener = Listener()
    feed(listener, voice(1.4))  # the client stops sending when the user stops (a gated microphone)
    assert listener.events == []
    end = 1.4
    t = end + STALE_S + CFG.nod_delay_s + 0.2
    listener.offsets(t)
    (nod,) = nods(listener)
    assert end + 0.3 <= nod <= end + 0.8


def test_no_user_audio_is_kept_past_the_analysis() -> None:
    listener = Listener()
    x = np.concatenate([voice(1.3), quiet(1.0)])
    for i in range(0, len(x), 1600):
        listener.hear(x[i:i + 1600], RATE, (i + 1600) / RATE)
        assert listener.held_samples <= WINDOW_S * RATE  # at most one analysis window, at the analysis rate
    arrays = [v for v in vars(listener).values() if isinstance(v, np.ndarray)]
    assert all(a.size <= WINDOW_S * RATE for a in arrays)


# -- turn states on the Animator -------------------------------------------------------------------------------------

def gaze_std(a: Animator, t0: float, t1: float) -> float:
    return float(np.std([a.sample(t).controls["gazeX"] for t in np.arange(t0, t1, 0.04)]))


def test_listening_holds_the_gaze_thinking_looks_away_and_up() -> None:
    idle = IdleConfig(enabled=True, seed=3)
    a, b = Animator(idle, 0.0), Animator(idle, 0.0)
    b.turn.set("listening", 0.0)
    assert gaze_std(b, 1.0, 30.0) < 0.35 * gaze_std(a, 1.0, 30.0)
    c = Animator(IdleConfig(enabled=False), 0.0)
    c.turn.set("thinking", 1.0)
    at = c.sample(1.6).controls
    assert at["gazeY"] > 0.3 and at["gazeX"] > 0.2 and at["headPitch"] > 1.5 and at["browInnerUp"] > 0.1
    assert at["jawOpen"] == 0.0
    later = c.sample(4.0).controls
    assert 0.0 < later["gazeY"] < at["gazeY"]  # the glance comes partway back
    steps = np.abs(np.diff([c.sample(t).controls["gazeY"] for t in np.arange(0.8, 4.0, 0.04)]))
    assert steps.max() < 0.15  # eased in and back, no jump


def test_speak_implies_speaking_then_idle_and_clear_listening() -> None:
    a = Animator(IdleConfig(enabled=False), 0.0)
    pcm = Pcm(voice(1.0), RATE)
    span = a.speak(pcm, now=1.0)
    assert a.turn.state_at(1.5) == "speaking"
    assert a.turn.state_at(span.end + 0.01) == "idle"
    a.speak(pcm, now=5.0)
    a.turn.set("thinking", 5.2)  # the orchestrator's word wins over the implied end
    assert a.turn.state_at(7.0) == "thinking"
    a.speak(pcm, now=8.0)
    a.clear(8.3)
    assert a.turn.state_at(8.3) == "listening"


def test_nods_show_only_while_listening() -> None:
    a = Animator(IdleConfig(enabled=False), 0.0)
    feed(a.turn.listener, np.concatenate([voice(1.5), quiet(1.5)]))
    (nod,) = nods(a.turn.listener)
    assert a.sample(nod + CFG.nod_s / 2).controls["headPitch"] == 0.0  # idle: the listener is not shown
    b = Animator(IdleConfig(enabled=False), 0.0)
    b.turn.set("listening", 0.0)
    feed(b.turn.listener, np.concatenate([voice(1.5), quiet(1.5)]))
    assert b.sample(nod + CFG.nod_s / 2).controls["headPitch"] == pytest.approx(-CFG.nod_deg, abs=0.2)


def test_a_turn_set_mid_ease_keeps_value_and_speed() -> None:
    a = Animator(IdleConfig(enabled=False), 0.0)
    a.turn.set("thinking", 1.0, transition_ms=400)
    before = [a.sample(t).controls["gazeY"] for t in (1.19, 1.2)]
    a.turn.set("idle", 1.2, transition_ms=400)
    after = [a.sample(t).controls["gazeY"] for t in (1.2, 1.21)]
    assert after[0] == pytest.approx(before[1], abs=1e-9)  # no jump ...
    assert (after[1] - after[0]) == pytest.approx(before[1] - before[0], rel=0.25)  # ... and no kink in speed
    assert a.sample(1.7).controls["gazeY"] == 0.0 and a.turn.state_at(1.7) == "idle"
