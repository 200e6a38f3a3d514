"""The speech layer of the Animator: placed on the engine clock, streamed in chunks, cleared on barge-in, added
on top of the expression with idle life going on."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from engine.animation.prosody import SETTLE_S
from engine.animation.speech import CLEAR_S, MOTION_CLEAR_S, SpeechTrack
from engine.animation.timeline import Animator, IdleConfig
from engine.errors import BadRequest
from engine.speech.audio import Pcm
from engine.speech.errors import BadAudio
from engine.speech.mouth import HOP_S, MOUTH_CONTROLS, analyse
from tests.speech.conftest import SENTENCE

OFF = IdleConfig(enabled=False)
Speech = Callable[..., Pcm]
T0 = 100.0  # engine time of the first sample


def chunks(pcm: Pcm, seconds: float) -> list[Pcm]:
    n = int(seconds * pcm.sample_rate)
    return [Pcm(pcm.samples[i: i + n], pcm.sample_rate) for i in range(0, len(pcm.samples), n)]


def jaw_curve(a: Animator, t0: float, t1: float, step: float = 0.01) -> np.ndarray:
    return np.array([a.sample(t).controls["jawOpen"] for t in np.arange(t0, t1, step)])


def test_speak_follows_the_analysis_on_the_engine_clock(speech: Speech) -> None:
    pcm = speech(SENTENCE)
    a = Animator(OFF, T0)
    span = a.speak(pcm, now=T0 - 0.5, start=T0)
    assert span.start == T0 and span.end == pytest.approx(T0 + pcm.duration) and span.duration == pcm.duration
    rows = analyse(pcm)
    for k in range(0, len(rows), 7):
        got = a.sample(T0 + k * HOP_S).controls
        for j, name in enumerate(MOUTH_CONTROLS):
            assert got[name] == pytest.approx(min(1.0, rows[k, j]), abs=0.01)
    assert a.sample(T0 - 0.2).controls["jawOpen"] == 0.0


def test_streamed_chunks_give_the_whole_utterance(speech: Speech) -> None:
    pcm = speech(SENTENCE)
    whole = Animator(OFF, T0)
    whole.speak(pcm, now=T0, start=T0)
    streamed = Animator(OFF, T0)
    now, previous_end = T0, T0
    for i, chunk in enumerate(chunks(pcm, 0.37)):
        span = streamed.speak(chunk, now=now, start=T0 if i == 0 else None, append=i > 0)
        assert span.start == pytest.approx(previous_end)  # seamless: right after the previous chunk
        previous_end = span.end
        now += 0.1  # TTS runs faster than real time: every chunk arrives before it is due
    np.testing.assert_allclose(jaw_curve(streamed, T0, T0 + pcm.duration + 0.2),
                               jaw_curve(whole, T0, T0 + pcm.duration + 0.2), atol=0.01)


def test_a_late_chunk_plays_from_where_the_clock_is(speech: Speech) -> None:
    pcm = speech("[[A:::::]]", "de")
    a = Animator(OFF, T0)
    first = a.speak(pcm, now=T0, start=T0)
    late = first.end + 0.5
    second = a.speak(pcm, now=late, append=True)
    assert second.start == pytest.approx(late)  # not queued behind at first.end (already past)
    assert a.sample(late + 0.3).controls["jawOpen"] > 0.4
    assert a.sample(first.end + 0.25).controls["jawOpen"] < 0.02  # closed in the gap


def test_clear_closes_the_mouth_within_100_ms(speech: Speech) -> None:
    pcm = speech("[[A:::::::]]", "de")
    a = Animator(OFF, T0)
    a.speak(pcm, now=T0, start=T0)
    t = T0 + 0.3
    assert a.sample(t).controls["jawOpen"] > 0.5
    a.clear(t)
    assert CLEAR_S <= 0.1
    assert a.sample(t + 0.1).controls["jawOpen"] == 0.0
    curve = jaw_curve(a, t - 0.04, t + 0.12, 0.04)  # at 25 fps: eases, no jump to shut
    assert np.abs(np.diff(curve)).max() < 0.5
    assert a.is_static(t + MOTION_CLEAR_S)  # the speech head motion has settled too
    assert a.speak(pcm, now=t + 0.2, append=True).start == pytest.approx(t + 0.2)  # a new utterance after clear


def test_a_happy_face_talking_stays_happy_and_idle_life_goes_on(speech: Speech) -> None:
    pcm = speech(SENTENCE)
    a = Animator(IdleConfig(seed=3, blink_median_s=1.0, blink_interval_s=(0.5, 1.5)), T0)
    a.set_expression("happy", 1.0, transition_ms=0, now=T0 - 1.0)
    rest = a.sample(T0 - 0.1).controls
    a.speak(pcm, now=T0, start=T0)
    states = [a.sample(T0 + k * 0.04).controls for k in range(int(pcm.duration / 0.04))]
    assert min(s["mouthSmile"] for s in states) >= rest["mouthSmile"] - 1e-9  # smile kept
    jaws = np.array([s["jawOpen"] for s in states])
    assert jaws.min() >= rest["jawOpen"] - 0.05 and jaws.max() > rest["jawOpen"] + 0.3  # opening added on top
    assert max(s["eyeBlink"] for s in states) > 0.8  # blinks go on
    assert np.ptp([s["headPitch"] for s in states]) > 0.1  # so does the breathing sway


def test_is_static_while_speaking(speech: Speech) -> None:
    pcm = speech("[[A:::]]", "de")
    a = Animator(OFF, T0)
    assert a.is_static(T0)
    span = a.speak(pcm, now=T0, start=T0)
    assert not a.is_static(T0) and not a.is_static(span.end - 0.01)
    assert a.is_static(span.end + SETTLE_S)  # the speech head motion eases back over SETTLE_S


def test_a_new_utterance_takes_over_without_a_jump(speech: Speech) -> None:
    a = Animator(OFF, T0)
    a.speak(speech("[[A:::::::]]", "de"), now=T0, start=T0)
    t = T0 + 0.3
    a.speak(speech("[[i:::::::]]", "de"), now=t, start=t)
    curve = jaw_curve(a, t - 0.04, t + 0.2, 0.04)
    assert np.abs(np.diff(curve)).max() < 0.5


@pytest.mark.parametrize(("start", "append"), [(float("nan"), False), (float("inf"), False), ("soon", False),
                                               (True, False), (None, "yes"), (None, 1)])
def test_bad_start_or_append_is_refused(speech: Speech, start: object, append: object) -> None:
    a = Animator(OFF, T0)
    with pytest.raises(BadRequest):
        a.speak(speech("[[A:::]]", "de"), now=T0, start=start, append=append)  # type: ignore[arg-type]
    assert a.sample(T0 + 0.2).controls["jawOpen"] == 0.0


def test_append_with_another_rate_is_refused(speech: Speech) -> None:
    pcm = speech("[[A:::]]", "de")
    track = SpeechTrack.from_pcm(pcm, T0)
    with pytest.raises(BadAudio):
        track.append(Pcm(pcm.samples, 16000), T0)
    a = Animator(OFF, T0)
    a.speak(pcm, now=T0)
    with pytest.raises(BadAudio):
        a.speak(Pcm(pcm.samples, 16000), now=T0 + 0.1, append=True)
