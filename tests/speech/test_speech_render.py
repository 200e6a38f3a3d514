"""Speech on the rendered pixels: espeak-ng voices -> Animator -> offline renderer -> dlib's 68 points.

What a viewer sees, measured by a third-party landmark model on the frames (tests/speech/lipmeter.py), not on the
controls: the lips part on the syllables, shut in silence and on m/b/p, tuck for f/v, narrow for /u/, and the
opening follows the loudness. Frames are rendered at the 512 crop, only at the times a check needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.animation.controls import NEUTRAL
from engine.animation.state import AnimationState
from engine.animation.timeline import Animator, IdleConfig
from engine.face.intake import decode_image
from engine.face.pipeline import FacePipeline
from engine.render.offline import OfflineRenderer, OfflineSource
from engine.speech.audio import Pcm
from tests.speech.conftest import SENTENCE
from tests.speech.lipmeter import PARTED, LipMeter, Mouth, best_lag, envelope, loudness, nuclei

DATA = Path(__file__).resolve().parents[1] / "data"
FPS = 25.0
Speech = Callable[..., Pcm]
# The test voices (several languages, male and female); bench/bench_speech.py evaluates held-out ones too.
VOICES = [("en", 50), ("en-us+f3", 80), ("de", 40), ("fr+f2", 70)]
SHUT = 0.035  # inner-lip gap (iod) under which the lips read as closed (neutral s1: 0.017, dlib jitter ~0.01)


class Face:
    def __init__(self, name: str) -> None:
        self.crop = FacePipeline.create(mode="dlib").crop(decode_image((DATA / name).read_bytes()))
        self.renderer = OfflineRenderer()
        self.source: OfflineSource = self.renderer.prepare(self.crop)
        self.meter = LipMeter(self.crop.crop)

    def measure(self, controls: dict[str, float]) -> Mouth:
        return self.meter.mouth(self.renderer.render(self.source, AnimationState("t", 1.0, {**NEUTRAL, **controls})))

    def speak(self, pcm: Pcm, times: np.ndarray) -> list[Mouth]:
        animator = Animator(IdleConfig(enabled=False), 0.0)
        animator.speak(pcm, now=0.0, start=0.0, speech_motion=0.0)  # the mouth alone: a nod moves the lower lip too
        return [self.meter.mouth(self.renderer.render(self.source, animator.sample(float(t)))) for t in times]


@pytest.fixture(scope="module")
def face() -> Face:
    return Face("s1.jpg")


def frames(pcm: Pcm) -> np.ndarray:
    return np.arange(0.0, pcm.duration, 1.0 / FPS)


@pytest.mark.parametrize(("voice", "pitch"), VOICES)
def test_lips_part_on_every_syllable_and_follow_the_loudness(face: Face, speech: Speech, voice: str,
                                                             pitch: int) -> None:
    pcm = speech(SENTENCE, voice, pitch)
    times = frames(pcm)
    gap = np.array([m.gap for m in face.speak(pcm, times)])
    env = envelope(pcm)
    peaks = nuclei(env)
    assert len(peaks) >= 9, f"{len(peaks)} nuclei found in a 12-syllable sentence"
    at = np.clip(np.round(peaks * FPS).astype(int), 0, len(gap) - 1)
    # the frame nearest the nucleus or one either side (a frame is 40 ms; a nucleus is a moment)
    opened = np.array([gap[max(0, i - 1): i + 2].max() >= PARTED for i in at])
    assert opened.mean() >= 0.9, f"lips part on {opened.sum()}/{len(opened)} nuclei at {peaks[~opened]}"
    level = np.interp(times, np.arange(len(env)) * 0.01, env)
    r, lag = best_lag(gap, loudness(level), 1.0 / FPS)
    assert r >= 0.6 and abs(lag) <= 0.04 + 1e-9, (r, lag)


def test_lips_are_closed_in_silence(face: Face, speech: Speech) -> None:
    pcm = speech(SENTENCE)
    rate = pcm.sample_rate
    padded = Pcm(np.concatenate([np.zeros(rate // 2, np.float32), pcm.samples, np.zeros(rate // 2, np.float32)]),
                 rate)
    quiet = np.r_[np.arange(0.0, 0.4, 0.1), padded.duration - np.arange(0.1, 0.4, 0.1)]
    assert max(m.gap for m in face.speak(padded, quiet)) < SHUT


def consonant_frames(face: Face, pcm: Pcm) -> tuple[list[Mouth], list[Mouth]]:
    """The mouth over the middle 60% of [[A:xA:]] every 10 ms: (all frames, the vowels' frames)."""
    times = np.arange(0.2 * pcm.duration, 0.8 * pcm.duration, 0.01)
    mouths = face.speak(pcm, times)
    return mouths, [m for m in mouths if m.gap >= PARTED]


@pytest.mark.parametrize("consonant", ["m", "p", "b"])
def test_lips_close_on_bilabials(face: Face, speech: Speech, consonant: str) -> None:
    mouths, vowels = consonant_frames(face, speech(f"[[A:{consonant}A:]]", "de"))
    assert vowels, "the vowels around the closure do not open the lips"
    assert min(m.gap for m in mouths) < SHUT


@pytest.mark.parametrize("consonant", ["f", "v"])
def test_f_and_v_tuck_the_lower_lip(face: Face, speech: Speech, consonant: str) -> None:
    """The lower lip comes up under the upper teeth: its outer edge rises above where it rests, and the lips
    meet (a vowel around it drops it well below rest)."""
    mouths, vowels = consonant_frames(face, speech(f"[[A:{consonant}A:]]", "de"))
    assert vowels
    tuck = min(m.lower_y for m in mouths) - face.meter.neutral.lower_y
    assert tuck <= -0.025, f"the lower lip rises only {-tuck:.3f} iod on /{consonant}/"
    assert min(m.gap for m in mouths) < SHUT


def test_u_narrows_the_mouth(face: Face, speech: Speech) -> None:
    widths = {}
    for vowel in ("u", "a", "i"):
        pcm = speech(f"[[{vowel}::::::]]", "de")
        loud = np.flatnonzero(envelope(pcm) > -6.0) * 0.01  # the held vowel (espeak-ng adds silence after it)
        times = np.linspace(loud[0], loud[-1], 7)[1:-1]
        widths[vowel] = np.median([m.width for m in face.speak(pcm, times)])
    rest = face.meter.neutral.width
    assert widths["u"] < rest - 0.08, (widths, rest)
    assert widths["u"] < widths["a"] - 0.08 and widths["u"] < widths["i"] - 0.08, widths
    assert widths["i"] > rest + 0.02, (widths, rest)  # and /i/ spreads


@pytest.mark.parametrize("portrait", ["s1.jpg", "s42.jpg", "s7.jpg"])
def test_mouth_press_presses_and_thins_the_lips(portrait: str) -> None:
    """mouthPress at 1.0: the lips' red thins (upper + lower lip height down) and the lips stay shut, even on a
    jaw that is opening; each side presses its own half (the sum of both is the bilateral control)."""
    f = Face(portrait)
    rest = f.meter.neutral
    pressed = f.measure({"mouthPress": 1.0})
    thick = lambda m: m.upper_thick + m.lower_thick  # noqa: E731
    assert thick(pressed) <= thick(rest) - 0.025, (thick(pressed), thick(rest))
    assert pressed.gap < max(SHUT, rest.gap + 0.01)
    on_jaw = f.measure({"mouthPress": 1.0, "jawOpen": 0.25})
    assert on_jaw.gap < f.measure({"jawOpen": 0.25}).gap - 0.02
    assert thick(f.measure({"mouthPressLeft": 1.0, "mouthPressRight": 1.0})) == pytest.approx(thick(pressed),
                                                                                              abs=0.011)
