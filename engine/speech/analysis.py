"""Per-frame acoustic features at a 10 ms hop: loudness, voicing, low-band share and the first two formants.

Why our own LPC rather than praat-parselmouth: the same Burg/autocorrelation idea, but vectorised over every frame
of a chunk at once (one FFT per frame gives the band energies, the autocorrelation for voicing and the LPC
normal equations), so it runs hundreds of times faster than real time on one core and streams chunk by chunk;
bench/bench_speech.py measures both and docs/speech.md gives the figures.

Frames are 25 ms Hann windows at ANALYSIS_RATE (11 kHz), frame k centred on k * 10 ms of the utterance (the
signal is preceded by half a window of silence), so a feature's time is its frame's centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.speech.audio import ANALYSIS_RATE, Resampler

HOP = ANALYSIS_RATE // 100  # 10 ms
WIN = ANALYSIS_RATE // 40  # 25 ms
NFFT = 320  # >= WIN + the longest F0 lag: the autocorrelation from the power spectrum is not circular
LPC_ORDER = 10
PRE_EMPHASIS = 0.97
F0_RANGE = (70.0, 400.0)  # Hz, lags searched for voicing
SILENCE_DB = -80.0  # frames quieter than this, or unvoiced, skip the LPC (formants NaN): they are not vowels
MIN_VOICING = 0.3
MIN_F2_GAP = 250.0  # Hz: no vowel has F2 closer to F1 than this (/o/, ~270 Hz apart, is the closest)

_WINDOW = np.hanning(WIN + 2)[1:-1].astype(np.float32)
_FREQS = np.fft.rfftfreq(NFFT, 1.0 / ANALYSIS_RATE)
_BAND = (_FREQS >= 100.0) & (_FREQS <= 3800.0)  # where the voice's loudness lives (not the hiss of s/f)
_LOW = (_FREQS >= 80.0) & (_FREQS <= 400.0)  # a closed mouth's murmur (m, n, b's voice bar) lives here
_HIGH = (_FREQS >= 2000.0) & (_FREQS <= 3800.0)  # frication's share: s, sh, th high; f, h middling; vowels low
# a nasal murmur's first resonance (~250 Hz) sits in _LOW; the antiformant above it leaves 400-800 Hz nearly empty
_VALLEY = (_FREQS > 400.0) & (_FREQS <= 800.0)
_BANDS = np.stack([_BAND, _BAND & _LOW, _BAND & _HIGH, _VALLEY], axis=1).astype(np.float32)
_LAG_WINDOW = np.exp(-0.5 * (2 * np.pi * 60.0 * np.arange(LPC_ORDER + 1) / ANALYSIS_RATE) ** 2)  # 60 Hz bandwidth
_LAGS = (int(ANALYSIS_RATE / F0_RANGE[1]), int(ANALYSIS_RATE / F0_RANGE[0]))
_WIN_ACF = np.fft.irfft(np.abs(np.fft.rfft(_WINDOW, NFFT)) ** 2)[: WIN]  # the window's own autocorrelation
_FULL_SCALE = 10.0 * np.log10(np.sum(_WINDOW ** 2) * 0.5 * NFFT / 2)  # a full-scale sine reads about 0 dB


@dataclass
class Features:
    """One row per 10 ms frame."""

    level: np.ndarray  # dB re full scale, 100-4000 Hz
    low_share: np.ndarray  # fraction of that band's power below 400 Hz
    voicing: np.ndarray  # peak normalised autocorrelation in the F0 range, 0..1
    f1: np.ndarray  # Hz, NaN where none was found
    f2: np.ndarray
    high_share: np.ndarray  # fraction of the band's power in 2000-3800 Hz (frication: f ~0.3, s ~0.6, sh ~1)
    valley: np.ndarray  # dB of 100-400 Hz over 400-800 Hz: nasal murmur 8-22, /i/ 5-23, /u/ 3-18, open vowels < 5

    def __len__(self) -> int:
        return len(self.level)

    @classmethod
    def empty(cls) -> Features:
        return cls(*(np.zeros(0) for _ in FIELDS))

    @classmethod
    def concat(cls, parts: list[Features]) -> Features:
        return cls(*(np.concatenate([getattr(p, n) for p in parts]) for n in FIELDS))

    def drop(self, n: int) -> Features:
        """The features from frame n on."""
        return Features(*(getattr(self, k)[n:] for k in FIELDS))


def frame_features(frames: np.ndarray, first: int = 0, prev: tuple[float, float] = (np.nan, np.nan)) -> Features:
    """Features of an (N, WIN) block of frames at ANALYSIS_RATE, the first being frame ``first`` of the utterance.

    Formants are measured on even frames and held over odd ones (``prev``: the last frame's F1, F2): formants
    move slowly next to the 70 ms smoothing of the mouth, and the LPC roots are the dearest step."""
    n = len(frames)
    if n == 0:
        return Features.empty()
    spec = np.fft.rfft((frames * _WINDOW).astype(np.float32), NFFT, axis=1)  # float32: twice the FFT speed
    power = spec.real ** 2 + spec.imag ** 2
    bands = (power @ _BANDS).astype(np.float64)  # (N, 4): the voice band, its low and high part, 400-800 Hz
    band = bands[:, 0]
    level = 10.0 * np.log10(band + 1e-12) - _FULL_SCALE
    low_share = bands[:, 1] / (band + 1e-12)
    high_share = bands[:, 2] / (band + 1e-12)
    valley = 10.0 * np.log10((bands[:, 1] + 1e-12) / (bands[:, 3] + 1e-12))
    acf = np.fft.irfft(power, NFFT, axis=1)[:, : _LAGS[1] + 1].astype(np.float64)
    norm = acf[:, _LAGS[0]: _LAGS[1] + 1] / (acf[:, :1] + 1e-12) / (_WIN_ACF[_LAGS[0]: _LAGS[1] + 1] / _WIN_ACF[0])
    voicing = np.clip(norm.max(axis=1), 0.0, 1.0)
    f1 = np.full(n, np.nan)
    f2 = np.full(n, np.nan)
    even = (first + np.arange(n)) % 2 == 0
    loud = np.flatnonzero((level > SILENCE_DB) & (voicing > MIN_VOICING) & even)
    if len(loud):
        # the pre-emphasised signal's autocorrelation, from the plain one: (1 + a^2) r[k] - a (r[k-1] + r[k+1])
        c = acf[loud, : LPC_ORDER + 2]
        below = np.concatenate([c[:, 1:2], c[:, : LPC_ORDER]], axis=1)
        r = ((1.0 + PRE_EMPHASIS ** 2) * c[:, : LPC_ORDER + 1] - PRE_EMPHASIS * (below + c[:, 1:])) * _LAG_WINDOW
        r[:, 0] *= 1.0 + 1e-6  # white-noise floor: keeps the normal equations well conditioned
        f1[loud], f2[loud] = _formants(_levinson(r))
    odd = np.flatnonzero(~even)
    held = odd - 1
    f1[odd] = np.where(held >= 0, f1[np.maximum(held, 0)], prev[0])
    f2[odd] = np.where(held >= 0, f2[np.maximum(held, 0)], prev[1])
    return Features(level, low_share, voicing, f1, f2, high_share, valley)


def _levinson(r: np.ndarray) -> np.ndarray:
    """LPC coefficients a (N, p+1), a[:, 0] = 1, from autocorrelations r (N, p+1): Levinson-Durbin, all rows at once."""
    n, p = r.shape[0], r.shape[1] - 1
    a = np.zeros((n, p + 1))
    a[:, 0] = 1.0
    err = r[:, 0].copy()
    for i in range(1, p + 1):
        acc = r[:, i] + np.einsum("nj,nj->n", a[:, 1:i], r[:, i - 1:0:-1]) if i > 1 else r[:, 1].copy()
        k = -acc / np.maximum(err, 1e-12)
        a[:, 1:i] = a[:, 1:i] + k[:, None] * a[:, i - 1:0:-1]
        a[:, i] = k
        err = err * (1.0 - k * k)
    return a


def _formants(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 and F2 (Hz) from the roots of the LPC polynomials (companion eigenvalues, batched)."""
    n, p = a.shape[0], a.shape[1] - 1
    comp = np.zeros((n, p, p))
    comp[:, 0, :] = -a[:, 1:]
    comp[:, np.arange(1, p), np.arange(p - 1)] = 1.0
    roots = np.linalg.eigvals(comp)
    freq = np.angle(roots) * ANALYSIS_RATE / (2 * np.pi)
    bw = -np.log(np.abs(roots) + 1e-12) * ANALYSIS_RATE / np.pi
    ok = (freq > 180.0) & (freq < ANALYSIS_RATE / 2 - 200.0) & (bw < 600.0)
    freq = np.where(ok, freq, np.inf)
    freq.sort(axis=1)
    f1 = freq[:, 0]
    # F2 is the next root at least MIN_F2_GAP above F1: a high voice's harmonics can split F1 into two poles
    apart = freq > (f1 + MIN_F2_GAP)[:, None]
    f2 = freq[np.arange(len(freq)), np.argmax(apart, axis=1)]
    f2 = np.where(apart.any(axis=1), f2, np.inf)
    f1 = np.where(np.isfinite(f1) & (f1 < 1200.0), f1, np.nan)
    f2 = np.where(np.isfinite(f2) & np.isfinite(f1) & (f2 < 3500.0), f2, np.nan)
    return f1, f2


FIELDS = ("level", "low_share", "voicing", "f1", "f2", "high_share", "valley")


class FeatureStream:
    """Audio chunks at any supported rate -> feature frames, exactly as the whole signal would give them."""

    def __init__(self, sample_rate: int) -> None:
        self._resampler = Resampler(sample_rate)
        self._buf = np.zeros(WIN // 2, np.float32)  # half a window of silence: frame k is centred on k * HOP
        self._samples = 0  # resampled samples received
        self._frames = 0  # frames emitted
        self._last = (np.nan, np.nan)  # the last frame's formants (held over the next, odd frame)
        self.finished = False

    def push(self, samples: np.ndarray, last: bool = False) -> Features:
        """Features of every frame that the samples so far complete (all frames up to the end when ``last``)."""
        x = self._resampler.push(samples, last=last)
        self._samples += len(x)
        buf = np.concatenate([self._buf, x])
        if last:
            self.finished = True
            total = self._samples // HOP + 1  # frames whose centre lies within the audio
            need = (total - self._frames - 1) * HOP + WIN
            if len(buf) < need:
                buf = np.concatenate([buf, np.zeros(need - len(buf), np.float32)])
        count = (len(buf) - WIN) // HOP + 1 if len(buf) >= WIN else 0
        if last:
            count = max(0, min(count, self._samples // HOP + 1 - self._frames))
        if count <= 0:
            self._buf = buf
            return Features.empty()
        frames = np.lib.stride_tricks.sliding_window_view(buf, WIN)[::HOP][:count]
        self._buf = buf[count * HOP:]
        feats = frame_features(frames, self._frames, self._last)
        self._frames += count
        self._last = (float(feats.f1[-1]), float(feats.f2[-1]))
        return feats
