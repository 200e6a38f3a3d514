"""Prosody from audio, streamed: pitch (f0), loudness, syllable nuclei, stress, pitch accents and pauses.

What the face needs from the voice to move like a speaker's (engine/animation/prosody.py turns these events into
head, brow and blink motion; docs/animation.md gives the figures):

- a nucleus is a loudness peak (a syllable's vowel); it is *stressed* when it stands out from the utterance (loud
  against the running peak, or high in pitch), and a *pitch accent* when its f0 stands at least ACCENT_ST semitones
  above the speaker's running median and rose into it;
- a *pause* is PAUSE_S of silence after speech: a phrase boundary (a head turn, a blink);
- pitch is in semitones against the speaker's own running median f0 (robust to octave slips), so a low and a
  high voice give the same events (no calibration); loudness is against the utterance's running peak (any gain
  works).

Causal apart from a fixed look-ahead of LOOKAHEAD frames (under the mouth's own, engine/speech/mouth.py), and
frame by frame with carried state: chunked input gives exactly the events of the whole, so the same audio always
moves the face the same way. Frames are 10 ms, frame k centred on k * 10 ms of the utterance (as the mouth's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.speech.audio import ANALYSIS_RATE, Resampler
from engine.speech.mouth import LOOKAHEAD as MOUTH_LOOKAHEAD

HOP = ANALYSIS_RATE // 100  # 10 ms
WIN = ANALYSIS_RATE // 25  # 40 ms: two periods of the lowest f0
NFFT = 512  # >= WIN + the longest lag: the autocorrelation from the power spectrum is not circular
F0_RANGE = (60.0, 450.0)  # Hz
OCTAVE_SHARE = 0.85
VOICED = 0.45  # normalised autocorrelation above which a frame has a pitch
SMOOTH = 2  # frames each side of the loudness smoothing (a 50 ms Hann)
PEAK_DECAY_DB_S = 6.0
PEAK_FLOOR_DB = -55.0
SPEECH_DB = 28.0  # quieter than the running peak by more than this is a pause
NUCLEUS_REACH = 9  # frames: a nucleus is the loudest frame within this reach either side (syllables >= 90 ms apart)
NUCLEUS_DB = 16.0  # a nucleus is within this of the running peak
DIP_DB = 3.0  # ... and stands this far above the dip before it or after it
PAUSE_S = 0.15  # silence this long after speech is a phrase boundary
ACCENT_ST = 1.5  # f0 this far above the speaker's median (semitones) ...
RISE_ST = 1.0  # ... having risen this much over the RISE_S before it, is a pitch accent
RISE_S = 0.25
KEEP = 100  # frames of history kept: more than any look-back (2 x NUCLEUS_REACH, RISE_S) needs
PRIOR_VOICED = 20  # voiced frames before the speaker's mean pitch is trusted for accents
LOOKAHEAD = max(NUCLEUS_REACH + SMOOTH, int(round(PAUSE_S * 100))) + 1
assert LOOKAHEAD <= MOUTH_LOOKAHEAD, "prosody must fit in the mouth's look-ahead: it adds no latency"

_WINDOW = np.hanning(WIN + 2)[1:-1].astype(np.float32)
_WIN_ACF = np.fft.irfft(np.abs(np.fft.rfft(_WINDOW, NFFT)) ** 2)[:WIN]
_LAGS = (int(ANALYSIS_RATE / F0_RANGE[1]), int(ANALYSIS_RATE / F0_RANGE[0]))
_SMOOTH_W = np.hanning(2 * SMOOTH + 3)[1:-1]
_SMOOTH_W = _SMOOTH_W / _SMOOTH_W.sum()
_LOG_LO = float(np.log2(F0_RANGE[0]))
_BINS = int(np.ceil((np.log2(F0_RANGE[1] * 1.1) - _LOG_LO) * 48))


@dataclass(frozen=True)
class ProsodyEvent:
    """One event at utterance time ``t`` (seconds). kind: "nucleus" (strength = stress 0..1, ``accent`` 0..1 when
    it is a pitch accent) or "pause" (strength 1: a phrase boundary; ``index`` counts them from 0)."""

    t: float
    kind: str
    strength: float
    accent: float = 0.0
    pitch_st: float = 0.0  # the nucleus's f0 against the speaker's median, semitones
    index: int = 0


def frame_pitch(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(level dB, f0 Hz or NaN, voicing 0..1) of an (N, WIN) block of frames at ANALYSIS_RATE."""
    x = (frames - frames.mean(axis=1, keepdims=True)).astype(np.float32) * _WINDOW
    spec = np.fft.rfft(x, NFFT, axis=1)  # float32 in: twice the FFT speed
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    energy = np.sum(x.astype(np.float64) ** 2, axis=1)
    level = 10.0 * np.log10(energy / np.sum(_WINDOW ** 2) + 1e-12)
    acf = np.fft.irfft(power, NFFT, axis=1)[:, : _LAGS[1] + 2].astype(np.float64)
    norm = acf[:, _LAGS[0]: _LAGS[1] + 1] / (acf[:, :1] + 1e-12) / (_WIN_ACF[_LAGS[0]: _LAGS[1] + 1] / _WIN_ACF[0])
    # the shortest lag that is a local peak within OCTAVE_SHARE of the best: the period, not a multiple of it
    # (the window's normalisation favours long lags, and a high voice then reads an octave low)
    top = norm.max(axis=1, keepdims=True)
    peak = np.zeros_like(norm, dtype=bool)
    peak[:, 1:-1] = (norm[:, 1:-1] >= norm[:, :-2]) & (norm[:, 1:-1] >= norm[:, 2:])
    good = peak & (norm >= OCTAVE_SHARE * top)
    best = np.where(good.any(axis=1), np.argmax(good, axis=1), np.argmax(norm, axis=1))
    voicing = np.clip(norm[np.arange(len(norm)), best], 0.0, 1.0)
    # parabolic refinement of the lag, then f0
    i = best + _LAGS[0]
    a, b, c = acf[np.arange(len(acf)), i - 1], acf[np.arange(len(acf)), i], acf[np.arange(len(acf)), i + 1]
    den = a - 2 * b + c
    shift = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(np.abs(den) > 1e-12, den, 1.0), 0.0)
    f0 = ANALYSIS_RATE / (i + np.clip(shift, -0.5, 0.5))
    f0 = np.where((voicing >= VOICED) & (level > PEAK_FLOOR_DB), f0, np.nan)
    return level, f0, voicing


@dataclass
class ProsodyAnalyser:
    """Streaming prosody of one utterance: ``push`` chunks; events come out once their look-ahead has arrived."""

    sample_rate: int
    _resampler: Resampler = field(init=False)
    _buf: np.ndarray = field(init=False)
    _level: np.ndarray = field(init=False)  # raw level per frame, from frame _base on
    _smooth: np.ndarray = field(init=False)  # smoothed level, as far as the level allows
    _st: np.ndarray = field(init=False)  # log2 f0 per frame (NaN unvoiced)
    _base: int = field(init=False, default=0)  # the frame the three arrays start at (older ones are dropped)
    _done: int = field(init=False, default=0)  # frames whose events are decided
    _peak: float = field(init=False, default=PEAK_FLOOR_DB)
    _voiced: int = field(init=False, default=0)
    _hist: np.ndarray = field(init=False)  # voiced frames per quarter-semitone of f0: the running median's
    _silent_run: int = field(init=False, default=0)
    _spoke: bool = field(init=False, default=False)  # speech since the last pause
    _pauses: int = field(init=False, default=0)
    events: list[ProsodyEvent] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._resampler = Resampler(self.sample_rate)
        self._buf = np.zeros(WIN // 2, np.float32)
        self._hist = np.zeros(_BINS, np.int64)
        self._level, self._smooth, self._st = np.zeros(0), np.zeros(0), np.zeros(0)

    def push(self, samples: np.ndarray) -> list[ProsodyEvent]:
        """The events these samples complete (possibly none); all of them are also kept in ``events``."""
        x = self._resampler.push(samples)
        buf = np.concatenate([self._buf, x])
        count = (len(buf) - WIN) // HOP + 1 if len(buf) >= WIN else 0
        if count > 0:
            frames = np.lib.stride_tricks.sliding_window_view(buf, WIN)[::HOP][:count]
            level, f0, _ = frame_pitch(frames)
            self._level = np.concatenate([self._level, level])
            self._st = np.concatenate([self._st, np.log2(f0)])
            self._buf = buf[count * HOP:]
            self._extend_smooth()
        else:
            self._buf = buf
        new: list[ProsodyEvent] = []
        while self._done + LOOKAHEAD < self._base + len(self._level):
            event = self._decide(self._done)
            self._done += 1
            if event is not None:
                new.append(event)
        if self._done - self._base > 4 * KEEP:  # bounded memory however long the utterance grows by appends
            cut = self._done - KEEP - self._base
            self._level, self._st, self._smooth = self._level[cut:], self._st[cut:], self._smooth[cut:]
            self._base += cut
        self.events.extend(new)
        return new

    def _extend_smooth(self) -> None:
        """Smooth every frame whose window of levels has arrived (frames before the first read -120 dB)."""
        b, n = self._base, len(self._level)
        first, last = b + len(self._smooth), b + n - SMOOTH  # frames first..last-1 get a value now
        if last <= first:
            return
        lo = first - SMOOTH
        pad = max(0, -lo)
        seg = np.concatenate([np.full(pad, -120.0), self._level[max(0, lo - b): last + SMOOTH - b]])
        vals = np.convolve(seg, _SMOOTH_W[::-1], "valid")
        self._smooth = np.concatenate([self._smooth, vals])

    def _window(self, lo: int, hi: int) -> np.ndarray:
        """Smoothed levels of frames lo..hi-1 (frames before the first read -120 dB)."""
        b = self._base
        if lo >= 0:
            return self._smooth[lo - b: hi - b]
        return np.concatenate([np.full(-lo, -120.0), self._smooth[: hi - b]])

    def _decide(self, k: int) -> ProsodyEvent | None:
        """Frame k's event, its look-ahead frames available; updates the running state in frame order."""
        b = self._base
        s = float(self._smooth[k - b])
        ahead = float(self._smooth[k - b: k - b + NUCLEUS_REACH + 1].max())
        decay = PEAK_DECAY_DB_S * 0.01
        self._peak = max(self._peak - decay, ahead, PEAK_FLOOR_DB)
        st = float(self._st[k - b])
        if math.isfinite(st) and s > self._peak - SPEECH_DB:
            self._voiced += 1
            self._hist[min(_BINS - 1, max(0, int((st - _LOG_LO) * 48.0)))] += 1
        speech = s > self._peak - SPEECH_DB and s > PEAK_FLOOR_DB
        if speech:
            self._silent_run = 0
            self._spoke = True
        else:
            self._silent_run += 1
            if self._spoke and self._silent_run == int(round(PAUSE_S * 100)):
                self._spoke = False
                self._pauses += 1
                return ProsodyEvent((k - self._silent_run + 1) * 0.01, "pause", 1.0, index=self._pauses - 1)
        if not speech or s < self._peak - NUCLEUS_DB:
            return None
        around = self._window(k - NUCLEUS_REACH, k + NUCLEUS_REACH + 1)
        if s < around.max():
            return None
        if (around[:NUCLEUS_REACH] == s).any():
            return None  # a plateau: its first frame was the nucleus
        before = float(self._window(max(0, k - 2 * NUCLEUS_REACH), k + 1).min()) if k > 0 else -120.0
        after = float(around[NUCLEUS_REACH:].min())
        if s - max(before, after) < DIP_DB and s - min(before, after) < 2 * DIP_DB:
            return None
        loud = min(1.0, max(0.0, (s - (self._peak - 10.0)) / 8.0))
        pitch, accent = 0.0, 0.0
        near = self._st[max(0, k - 5) - b: k + 6 - b]
        near = near[np.isfinite(near)]
        if len(near) and self._voiced >= PRIOR_VOICED:
            mean = _LOG_LO + (np.searchsorted(np.cumsum(self._hist), self._voiced / 2.0) + 0.5) / 48.0
            top = float(near.max())
            pitch = 12.0 * (top - mean)
            lead = self._st[max(0, k - int(RISE_S * 100)) - b: k - b]
            lead = lead[np.isfinite(lead)]
            rise = 12.0 * (top - float(lead.min())) if len(lead) else 0.0
            if pitch >= ACCENT_ST and rise >= RISE_ST:
                accent = min(1.0, max(0.0, (pitch - ACCENT_ST) / 3.0 + 0.5))
        stress = min(1.0, max(0.0, 0.6 * loud + 0.4 * min(1.0, max(0.0, (pitch + 1.0) / 4.0))))
        return ProsodyEvent(k * 0.01, "nucleus", stress, accent, pitch)


def analyse_prosody(samples: np.ndarray, sample_rate: int) -> list[ProsodyEvent]:
    """Every event of a whole utterance (trailing silence is added so its last syllables get their look-ahead)."""
    a = ProsodyAnalyser(sample_rate)
    a.push(samples)
    a.push(np.zeros(int(sample_rate * (LOOKAHEAD + 2) * 0.01) + 1, np.float32))
    return a.events
