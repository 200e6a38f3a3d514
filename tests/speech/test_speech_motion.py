"""The speaking face beyond the mouth, on rendered pixels: espeak-ng voices -> Animator -> offline renderer -> dlib.

Head pitch and brow height are read back from the frames by dlib's 68 points (tests/speech/headmeter.py, head
pitch calibrated in degrees on the renderer's own headPitch); syllable nuclei come from the audio's envelope
(tests/speech/lipmeter.py), not from the engine's prosody. Frames are the 512 crop at 25 fps, each drawn once and
shared by the tests of a module-scoped fixture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine.animation.marks import Mark
from engine.animation.speech import MOTION_CLEAR_S
from engine.animation.state import AnimationState
from engine.animation.timeline import DEFAULT_TRANSITION_MS, Animator, IdleConfig
from engine.face.intake import decode_image
from engine.face.pipeline import FacePipeline
from engine.render.offline import OfflineRenderer
from engine.speech.audio import Pcm
from engine.speech.prosody import analyse_prosody
from tests.speech.conftest import SENTENCE
from tests.speech.headmeter import HeadMeter
from tests.speech.lipmeter import LipMeter, envelope, nuclei

DATA = Path(__file__).resolve().parents[1] / "data"
FPS = 25.0
SHUT = 0.035  # inner-lip gap (iod) under which the lips read as closed (as tests/speech/test_speech_render.py)
LEAD_S = 2.0  # idle-only silence before the sentence: the head's sway to compare with
Speech = Callable[..., Pcm]


class Rig:
    def __init__(self) -> None:
        crop = FacePipeline.create(mode="dlib").crop(decode_image((DATA / "s1.jpg").read_bytes()))
        self.renderer = OfflineRenderer()
        self.source = self.renderer.prepare(crop)
        self.head = HeadMeter(LipMeter(crop.crop), self.draw)
        lm = crop.crop_landmarks  # the upper face: brows to the nose, above the reach of the mouth's fields
        self.upper = (slice(int(max(0, lm[19, 1] - 0.5 * (lm[8, 1] - lm[27, 1]))), int(lm[29, 1])),
                      slice(int(lm[0, 0]), int(lm[16, 0])))

    def draw(self, state: AnimationState) -> np.ndarray:
        return self.renderer.render(self.source, state)


@dataclass
class Take:
    """One voice's frames measured: times, head pitch (deg), brow height (iod), lip gap (iod), and the frames'
    upper faces (``Rig.upper``)."""

    times: np.ndarray
    pitch: np.ndarray
    brow: np.ndarray
    gap: np.ndarray
    upper: list[np.ndarray]


def take(rig: Rig, animator: Animator, times: np.ndarray, measure: bool = True) -> Take:
    frames = [rig.draw(animator.sample(float(t))) for t in times]
    m = np.array([rig.head.measure(f) for f in frames]) if measure else np.zeros((len(times), 3))
    return Take(times, m[:, 0], m[:, 1], m[:, 2], [f[rig.upper].astype(np.int16) for f in frames])


@pytest.fixture(scope="module")
def rig() -> Rig:
    return Rig()


@pytest.fixture(scope="module")
def takes(rig: Rig, speech: Speech) -> dict[str, object]:
    """The sentence after LEAD_S of silence, idle life on (seed 3): speech_motion 1 and 0, and idle alone."""
    pcm = speech(SENTENCE)
    padded = Pcm(np.concatenate([np.zeros(int(LEAD_S * pcm.sample_rate), np.float32), pcm.samples]),
                 pcm.sample_rate)
    times = np.arange(0.0, padded.duration, 1.0 / FPS)
    out: dict[str, object] = {"pcm": pcm}
    for name, gain in (("on", 1.0), ("off", 0.0), ("idle", None)):
        a = Animator(IdleConfig(seed=3), 0.0)
        if gain is not None:
            a.speak(padded, 0.0, 0.0, speech_motion=gain)
        out[name] = take(rig, a, times, measure=gain is not None)
    return out


def windows(t: Take) -> tuple[np.ndarray, np.ndarray]:
    silence = (t.times > 0.2) & (t.times < LEAD_S - 0.5)  # a phrase turn starts 0.35 s before its first vowel
    speaking = (t.times > LEAD_S) & (t.times < t.times[-1] - 0.3)
    return silence, speaking


def test_the_head_moves_more_while_speaking_than_in_silence(takes: dict[str, object]) -> None:
    on, off = takes["on"], takes["off"]
    silence, speaking = windows(on)
    assert np.allclose(on.pitch[silence], off.pitch[silence])  # the same idle sway before the speech
    sway = on.pitch[silence].std()
    print(f"head pitch std: silence {sway:.2f} deg, speaking {on.pitch[speaking].std():.2f} (speech_motion 1), "
          f"{off.pitch[speaking].std():.2f} (speech_motion 0)")
    assert on.pitch[speaking].std() >= 2.0 * sway
    assert on.pitch[speaking].std() >= 1.3 * off.pitch[speaking].std()  # the mouth alone moves the meter a little


def test_speech_motion_0_leaves_the_upper_face_to_the_idle_sway(takes: dict[str, object], rig: Rig) -> None:
    """With speech_motion 0 the frames above the mouth are the idle-only frames (the head, brows and lids do only
    what idle life does); with 1 they are not."""
    on, off, idle = takes["on"], takes["off"], takes["idle"]
    _, speaking = windows(on)

    def diff(a: Take) -> float:
        return max(float(np.abs(f - g).mean()) for f, g, s in zip(a.upper, idle.upper, speaking, strict=True) if s)

    print(f"upper face vs idle alone: speech_motion 0 {diff(off):.2f}, 1 {diff(on):.2f} grey levels")
    assert diff(off) < 0.5
    assert diff(on) > 4.0


def deep_minima(t: Take, mask: np.ndarray, depth: float) -> np.ndarray:
    """Times of the measured head pitch's dips (nods down) at least ``depth`` degrees under both sides' maxima
    within 0.3 s."""
    p, out = t.pitch, []
    reach = int(0.3 * FPS)
    for i in np.flatnonzero(mask):
        lo, hi = max(0, i - reach), min(len(p), i + reach + 1)
        if p[i] == p[lo:hi].min() and min(p[lo:i + 1].max(), p[i:hi].max()) - p[i] >= depth:
            out.append(t.times[i])
    return np.array(out)


def test_nods_fall_on_syllables(takes: dict[str, object]) -> None:
    on, off, pcm = takes["on"], takes["off"], takes["pcm"]
    _, speaking = windows(on)
    syllables = nuclei(envelope(pcm)) + LEAD_S
    # The prosody's nods are 1-2.2 degrees deep; the nose meter follows the commanded pitch (r 0.99 on this take),
    # so a nod is a dip of 1 degree (dlib's nose points, which the mouth's pixels moved, read them deeper).
    nods = deep_minima(on, speaking, 1.0)
    near = np.array([np.abs(syllables - n).min() for n in nods])
    print(f"nods at {np.round(nods - LEAD_S, 2)}, distance to the nearest syllable nucleus {np.round(near, 2)}")
    assert len(nods) >= 4, nods
    assert (near <= 0.12).mean() >= 0.75, near
    assert len(deep_minima(off, speaking, 1.0)) <= len(nods) // 2


def test_brows_rise_on_pitch_accents(rig: Rig, speech: Speech) -> None:
    """Idle off, so the brows move for the voice alone: up by >= 0.03 iod around each pitch accent, at rest far
    from any."""
    pcm = speech(SENTENCE, "en-us+f3", 80)
    accents = [e.t for e in analyse_prosody(pcm.samples, pcm.sample_rate) if e.accent > 0.0]
    assert accents, "the sentence has pitch accents"
    a = Animator(IdleConfig(enabled=False), 0.0)
    a.speak(pcm, 0.0, 0.0)
    t = take(rig, a, np.arange(0.0, pcm.duration, 1.0 / FPS))
    rise = t.brow - rig.head.brow_rest
    at = [rise[(t.times > s - 0.15) & (t.times < s + 0.45)].max() for s in accents]
    far = np.array([np.abs(np.array(accents) - x).min() > 1.0 for x in t.times])
    print(f"brow rise at accents {np.round(at, 3)} iod; away from them at most {rise[far].max():.3f}")
    assert min(at) >= 0.03
    assert rise[far].max() < 0.015


def test_an_expression_mark_is_on_time(speech: Speech) -> None:
    """A happy mark at t: the smile is above half its target within 2 frames of t + the easing, not before t."""
    pcm = speech(SENTENCE)
    a = Animator(IdleConfig(enabled=False), 0.0)
    mark = Mark(1.3, "happy", 1.0)
    span = a.speak(pcm, 5.0, 10.0, marks=(mark,))
    at = span.start + mark.t
    frames = np.arange(5.0, at + 2.0, 1.0 / FPS)
    smile = np.array([a.sample(float(t)).controls["mouthSmile"] for t in frames])
    assert smile[frames < at].max() == 0.0
    first = frames[np.argmax(smile > 0.5)]
    assert first <= at + DEFAULT_TRANSITION_MS / 1000.0 + 2.0 / FPS, (first, at)


def test_barge_in_closes_the_mouth_in_3_frames_and_the_head_settles(rig: Rig, speech: Speech,
                                                                    takes: dict[str, object]) -> None:
    """clear at 6 points of speech (4 where the mouth is widest), 25 fps ticks: the measured lips are shut by the 3rd
    frame after the clear (<= 120 ms), no step among the frames after it exceeds half the full opening, and the
    head is back at rest once MOTION_CLEAR_S has passed (bench/bench_bargein.py: 20 points, the figures)."""
    pcm = speech(SENTENCE)
    rest_pitch, _, rest = rig.head.measure(rig.draw(Animator(IdleConfig(enabled=False), 0.0).sample(0.0)))
    full = takes["on"].gap.max() - rest
    on = takes["on"]  # the same sentence after LEAD_S: clear where the mouth is widest, and at two random points
    widest = on.times[np.argsort(on.gap)[::-1]] - LEAD_S
    widest = [t for t in widest if 0.4 < t < pcm.duration - 0.6][:4]
    rng = np.random.default_rng(5)
    points = [*widest, *rng.uniform(0.4, pcm.duration - 0.6, 2)]
    # ticks 10-30 ms after the clear put the steep middle of a fade between two frames (how the old one jumped)
    for c, phase in zip(points, [0.02, 0.01, 0.03, 0.02, *rng.uniform(0.0, 1.0 / FPS, 2)], strict=True):
        a = Animator(IdleConfig(enabled=False), 0.0)
        a.speak(pcm, 0.0, 0.0)
        a.sample(float(c) - 0.02)
        a.clear(float(c))
        after = [rig.head.measure(rig.draw(a.sample(float(c + phase + k / FPS)))) for k in range(4)]
        gaps = np.array([m[2] for m in after])
        assert (gaps[:3] < SHUT).any(), (c, gaps)
        # At a wide-open mouth, closing by the 3rd tick (<= 80 ms + phase) cannot take less than half the opening in
        # some step: the two targets meet exactly at 50%. The linear fade measures 44-54% there (the lips' seal makes
        # the last bit sudden); the old 80 ms smoothstep over running speech took 68-81%.
        assert np.abs(np.diff(gaps)).max() <= 0.6 * full, (c, gaps, full)
        pitch = rig.head.measure(rig.draw(a.sample(float(c + MOTION_CLEAR_S + 0.04))))[0]
        assert abs(pitch - rest_pitch) < 0.3, (c, pitch, rest_pitch)
