"""Prosody from real espeak-ng speech (engine/speech/prosody.py) and the motion it drives (engine/animation/prosody.py),
on the controls: streaming is exact, voices an octave apart give the same events, the gain scales it, ranges hold."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from engine.animation.controls import BY_NAME
from engine.animation.timeline import Animator, IdleConfig
from engine.errors import BadRequest
from engine.speech.audio import Pcm
from engine.speech.mouth import LOOKAHEAD as MOUTH_LOOKAHEAD
from engine.speech.prosody import LOOKAHEAD, ProsodyAnalyser, analyse_prosody
from tests.speech.conftest import SENTENCE

Speech = Callable[..., Pcm]
HEAD = ("headPitch", "headYaw", "headRoll", "browInnerUp", "browOuterUp")


def test_chunks_give_the_events_of_the_whole_within_the_mouths_look_ahead(speech: Speech) -> None:
    pcm = speech(SENTENCE)
    whole = analyse_prosody(pcm.samples, pcm.sample_rate)
    a = ProsodyAnalyser(pcm.sample_rate)
    rng = np.random.default_rng(1)
    i = 0
    while i < len(pcm.samples):
        n = int(rng.integers(1, 6000))
        a.push(pcm.samples[i: i + n])
        i += n
    a.push(np.zeros(pcm.sample_rate, np.float32))
    assert a.events == whole
    # a long utterance grown by appends drops its old frames as it goes (bounded memory) and finds the same events
    # as one push of it all (which keeps every frame until the end)
    gap = np.zeros(pcm.sample_rate // 2, np.float32)
    signal = np.concatenate([pcm.samples, gap] * 4)
    once = analyse_prosody(signal, pcm.sample_rate)
    long = ProsodyAnalyser(pcm.sample_rate)
    for i in range(0, len(signal), 2205):
        long.push(signal[i: i + 2205])
        assert len(long._level) <= 5 * 100
    long.push(np.zeros(pcm.sample_rate, np.float32))
    assert long.events == once and len(once) > 3 * len(whole)
    assert LOOKAHEAD <= MOUTH_LOOKAHEAD


def test_a_low_and_a_high_voice_give_the_same_syllables_and_accents(speech: Speech) -> None:
    """Speaker-normalised: a male voice and a female one an octave above find the same nuclei (within 60 ms), the
    same pauses and the main pitch accent on the same word."""
    low, high = speech(SENTENCE, "en", 30), speech(SENTENCE, "en-us+f3", 80)
    ev = {k: analyse_prosody(p.samples, p.sample_rate) for k, p in (("low", low), ("high", high))}
    nuclei = {k: np.array([e.t for e in v if e.kind == "nucleus"]) for k, v in ev.items()}
    assert len(nuclei["low"]) >= 10 and abs(len(nuclei["low"]) - len(nuclei["high"])) <= 1, nuclei
    scale = high.duration / low.duration  # the voices speak at slightly different rates
    matched = [np.abs(nuclei["high"] - t * scale).min() <= 0.06 for t in nuclei["low"]]
    assert np.mean(matched) >= 0.8, nuclei
    accents = {k: [e.t for e in v if e.accent > 0] for k, v in ev.items()}
    assert accents["low"] and accents["high"]
    # the voices' intonation differs (espeak-ng's female voice accents fewer words), but the main accent is shared
    assert np.abs(np.array(accents["low"]) * scale - accents["high"][0]).min() <= 0.1, accents
    pauses = {k: [e.t for e in v if e.kind == "pause"] for k, v in ev.items()}
    assert len(pauses["low"]) == len(pauses["high"]) >= 2, pauses


def head_track(pcm: Pcm, gain: float | None, expression: str = "neutral") -> dict[str, np.ndarray]:
    a = Animator(IdleConfig(enabled=False), 0.0)
    a.set_expression(expression, 1.0, 0.0, 0.0)
    a.speak(pcm, 0.0, 0.0, speech_motion=gain)
    states = [a.sample(float(t)).controls for t in np.arange(0.0, pcm.duration + 1.0, 0.02)]
    return {name: np.array([s[name] for s in states]) for name in (*HEAD, "eyeBlink")}


def test_the_gain_scales_the_motion_and_0_is_lips_only(speech: Speech) -> None:
    pcm = speech(SENTENCE)
    one, half, none = head_track(pcm, 1.0), head_track(pcm, 0.5), head_track(pcm, 0.0)
    for name in HEAD:
        assert np.ptp(one[name]) > 0.2, name
        assert np.allclose(half[name], 0.5 * one[name], atol=1e-9), name
        assert not none[name].any(), name
    assert one["eyeBlink"].max() >= 0.99 and not none["eyeBlink"].any()  # a blink in a pause
    assert one["headPitch"].min() >= -3.0 and one["headPitch"].max() <= 2.0  # a few degrees (docs/animation.md)
    assert np.abs(one["headYaw"]).max() <= 3.5


def test_the_same_audio_moves_the_face_the_same_way(speech: Speech) -> None:
    pcm = speech(SENTENCE, "de", 40)
    first, second = head_track(pcm, 1.0), head_track(pcm, 1.0)
    assert all(np.array_equal(first[n], second[n]) for n in HEAD)


def test_on_top_of_an_expression_it_stays_in_range(speech: Speech) -> None:
    """Surprised already raises the brows to their top: speech at gain 2 adds to it, clamped, never past 1."""
    pcm = speech(SENTENCE)
    track = head_track(pcm, 2.0, "surprised")
    for name in HEAD:
        c = BY_NAME[name]
        assert c.minimum <= track[name].min() and track[name].max() <= c.maximum


@pytest.mark.parametrize("gain", [-0.1, 2.1, float("nan"), True, "1"])
def test_a_bad_gain_is_refused(speech: Speech, gain: object) -> None:
    a = Animator(IdleConfig(enabled=False), 0.0)
    with pytest.raises(BadRequest):
        a.speak(speech(SENTENCE), 0.0, speech_motion=gain)
    with pytest.raises(BadRequest):
        a.set_speech_motion(gain)
