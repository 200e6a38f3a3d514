"""Measure speech on rendered pixels: dlib's 68-point predictor on each frame, syllable nuclei from the audio.

Used by the speech tests and bench/bench_speech.py. Independent of the engine's analysis: the loudness envelope
and the nuclei are computed here from the samples (numpy only), and the mouth is read back from the rendered frame
by a third-party landmark model, never from the controls.

Units are the neutral face's inter-ocular distance (iod), as dlib measures it on the unmoved crop. The face box is
detected once on the neutral crop and reused for every frame (a talking face does not move its box; re-detecting
would only add jitter and cost).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dlib
import numpy as np

from engine.animation.state import AnimationState
from engine.face.detect_dlib import predictor_path
from engine.speech.audio import Pcm

PARTED = 0.05  # inner-lip gap (iod) at which the lips visibly part (the measure)
HOP = 0.01


@dataclass
class Mouth:
    """One frame's mouth, in neutral iod."""

    gap: float  # inner-lip opening: mean of 61-67, 62-66, 63-65
    width: float  # outer corners 48-54
    lower_y: float  # outer lower lip's middle (57), y down +
    upper_thick: float  # 51-62: the upper lip's red, vertically
    lower_thick: float  # 66-57


class LipMeter:
    """dlib's 68 points on frames of one avatar, in that avatar's neutral iod."""

    def __init__(self, crop: np.ndarray) -> None:
        self.predictor = dlib.shape_predictor(str(predictor_path()))
        rects = dlib.get_frontal_face_detector()(crop, 1)
        if not rects:
            raise AssertionError("dlib finds no face on the neutral crop")
        self.rect = max(rects, key=lambda r: r.area())
        lm = self.points(crop)
        self.iod = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
        self.neutral = self.mouth(crop)

    def points(self, img: np.ndarray) -> np.ndarray:
        shape = self.predictor(img, self.rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def mouth(self, img: np.ndarray) -> Mouth:
        lm = self.points(img)
        u = self.iod if hasattr(self, "iod") else 1.0
        gap = float(np.mean([lm[67, 1] - lm[61, 1], lm[66, 1] - lm[62, 1], lm[65, 1] - lm[63, 1]])) / u
        return Mouth(gap, float(np.linalg.norm(lm[54] - lm[48])) / u, float(lm[57, 1]) / u,
                     float(lm[62, 1] - lm[51, 1]) / u, float(lm[57, 1] - lm[66, 1]) / u)


def envelope(pcm: Pcm) -> np.ndarray:
    """Level every 10 ms (dB re the utterance's peak, floored at -40): 30 ms RMS of the signal less its 10 ms
    moving average (a crude 100 Hz high-pass), centred on k * 10 ms."""
    x = pcm.samples.astype(np.float64)
    box = int(pcm.sample_rate / 100)
    x = x - np.convolve(x, np.ones(box) / box, "same")
    hop, win = int(round(HOP * pcm.sample_rate)), int(round(0.03 * pcm.sample_rate))
    n = len(x) // hop + 1
    pad = np.concatenate([np.zeros(win // 2), x, np.zeros(win)])
    rms = np.array([np.sqrt(np.mean(pad[k * hop: k * hop + win] ** 2)) for k in range(n)])
    db = 20 * np.log10(rms + 1e-9)
    return np.maximum(db - db.max(), -40.0)


def loudness(env_db: np.ndarray) -> np.ndarray:
    """Loudness from the level (Stevens' power law: loudness ~ intensity ** 0.3, i.e. amplitude ** 0.6), 0..1.

    Why not the dB level itself: in dB a nasal murmur or an s (10-25 dB under the vowels) sits near the top of the
    scale while the mouth is rightly shut on it; perceived loudness is what a viewer matches the mouth against."""
    return 10.0 ** (0.6 * env_db / 20.0)


def nuclei(env: np.ndarray, min_gap: float = 0.1, prominence: float = 4.0) -> np.ndarray:
    """Syllable nuclei: times (s) of the envelope's peaks within 20 dB of the top that stand at least
    ``prominence`` dB above the lower of the dips to their neighbouring peaks, at least ``min_gap`` apart."""
    k = np.convolve(env, np.hanning(7) / np.hanning(7).sum(), "same")
    peaks = [i for i in range(1, len(k) - 1) if k[i] >= k[i - 1] and k[i] > k[i + 1] and k[i] > -20.0]
    kept: list[int] = []
    for i in peaks:
        if kept and i - kept[-1] < min_gap / HOP:
            if k[i] > k[kept[-1]]:
                kept[-1] = i
            continue
        kept.append(i)
    out = []
    for j, i in enumerate(kept):
        left = k[kept[j - 1]: i + 1].min() if j else k[: i + 1].min()
        right = k[i: kept[j + 1] + 1].min() if j + 1 < len(kept) else k[i:].min()
        if k[i] - max(left, right) >= prominence or k[i] - min(left, right) >= 2 * prominence:
            out.append(i)
    return np.array(out) * HOP


def best_lag(a: np.ndarray, b: np.ndarray, step: float, reach: float = 0.12) -> tuple[float, float]:
    """(r, lag s) maximising corr(a[t], b[t - lag]) over |lag| <= reach: lag > 0 means ``a`` follows ``b``."""
    best = (-2.0, 0.0)
    m = int(round(reach / step))
    for s in range(-m, m + 1):
        x, y = (a[s:], b[: len(b) - s]) if s >= 0 else (a[: len(a) + s], b[-s:])
        if len(x) > 10 and x.std() > 0 and y.std() > 0:
            r = float(np.corrcoef(x, y)[0, 1])
            if r > best[0]:
                best = (r, s * step)
    return best


def render_track(meter: LipMeter, draw: Callable[[AnimationState], np.ndarray],
                 sample: Callable[[float], AnimationState], times: np.ndarray) -> list[Mouth]:
    """The measured mouth at each time."""
    return [meter.mouth(draw(sample(float(t)))) for t in times]
