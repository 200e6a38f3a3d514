"""Listening: the user's voice (or a VAD's start/stop events) -> backchannel nods and question brows.

Pure, no I/O: ``Listener.hear`` takes one chunk of the user's microphone as it arrives, reduces it to one
(energy, pitch) pair per 20 ms frame and lets the samples go; only the tail of one 40 ms analysis window (the part
the next chunk's first frame still needs) is held between chunks. No audio is stored, nothing is published.

What it does with the frames (docs/animation.md, "Listening"):
- a speech run is the user's talk from its first active frame to the start of a real pause (gaps shorter than
  ``nod_delay_s`` are inside the run: stop closures and breaths are not pauses);
- a backchannel nod lands ``nod_delay_s`` (0.45 s) into a pause that follows at least ``min_speech_s`` of talk, at
  most one per ``nod_gap_s``; it is held back until the audio (or a VAD stop) shows the pause lasted that long, or
  the stream went quiet, so no nod lands on a talking user; the longer the talk, the deeper the nod, and a long
  run earns a double nod (not twice in a row);
- a phrase whose pitch rises at its end (a question: its last voiced frames >= ``rise_st`` semitones above the low
  point of the 600 ms before and not below the phrase's median) raises the brows in the pause.

Engine time of the audio: a chunk's first sample is placed at ``max(end of the previous chunk, now - duration)``:
a microphone streamed in real time ends at ``now``; a client that sends faster than real time is laid end to end.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

HOP_S = 0.02  # one analysis frame per 20 ms of audio
WINDOW_S = 0.04  # pitch window: two periods of a 50 Hz voice
F0_RANGE = (70.0, 400.0)  # Hz: adult voices, low men to high women
VOICED_NAC = 0.6  # normalised autocorrelation at the period above which a frame is voiced
FLOOR_DB = -55.0  # an active frame is at least this loud (dBFS) ...
OVER_FLOOR_DB = 12.0  # ... and this far above the tracked noise floor
FLOOR_RISE_DB_S = 1.0  # the noise floor follows a quieter room at once, a louder one at this rate
STALE_S = 0.3  # no audio for this long after the last chunk: the stream went quiet (the client stopped sending)
KEEP_S = 10.0  # events and pitch frames older than this are dropped
DOUBLE_DEPTH = 0.65  # each dip of a double nod, as a share of a single nod's depth ...
DOUBLE_BEAT = 0.55  # ... and its length, as a share of nod_s (the two together a little longer than one nod)


@dataclass(frozen=True)
class ListenerConfig:
    """Backchannel timing and sizes (figures in docs/animation.md)."""

    min_speech_s: float = 1.0  # a nod needs at least this much talk before the pause
    nod_delay_s: float = 0.45  # how far into the pause the nod starts (people nod 300-800 ms into it)
    nod_gap_s: float = 3.0  # at most one nod per this many seconds
    nod_s: float = 0.6  # a nod's length: down and back up
    nod_deg: float = 3.5  # its depth (head pitch, degrees down) after about 1.5 s of talk ...
    nod_talk: tuple[float, float] = (0.85, 1.2)  # ... from this share of it after a short run to this after a long one
    double_after_s: float = 3.0  # a run at least this long earns a double nod ("mm-hm"), never twice in a row
    rise_st: float = 2.4  # a phrase-final pitch rise this large (semitones) reads as a question
    brow: float = 0.4  # browInnerUp at the raise (browOuterUp 0.8 of it)
    brow_s: tuple[float, float, float] = (0.15, 0.8, 0.35)  # rise, hold, fall


@dataclass(frozen=True)
class Event:
    """A nod or a brow raise placed at engine time ``start``."""

    kind: str  # "nod" or "brow"
    start: float
    depth: float = 0.0  # a nod's depth (degrees); each dip of a double nod is DOUBLE_DEPTH of it
    beats: int = 1  # 1: one nod, 2: a double nod (two quicker dips back to back)


@dataclass
class _Pause:
    """A pause that may earn a nod: decided once the pause is known to have lasted ``nod_delay_s``."""

    at: float  # the engine time the nod would start (pause start + nod_delay_s)
    nod: bool
    talk: float  # how long the run before it was (s)
    question: bool
    vad: bool = False  # told by a VAD stop: no audio will confirm it, its time confirms it


@dataclass
class FrameStats:
    """What ``hear`` saw in one chunk (for the handler: a barge-in needs voiced speech)."""

    frames: int = 0
    active: int = 0
    voiced: int = 0
    start: float = 0.0  # engine time of the chunk's first sample
    end: float = 0.0


def _bump(s: float) -> float:
    """0 -> 1 -> 0 over s in 0..1, with zero slope at both ends."""
    if s <= 0.0 or s >= 1.0:
        return 0.0
    return math.sin(math.pi * s) ** 2


def _smoothstep(s: float) -> float:
    s = min(1.0, max(0.0, s))
    return s * s * (3.0 - 2.0 * s)


def pitch(frame: np.ndarray, rate: float) -> float:
    """f0 (Hz) of one window by normalised autocorrelation, or 0.0 when unvoiced.

    The shortest lag whose correlation is within 10% of the best wins, so a subharmonic does not halve the pitch."""
    x = frame - frame.mean()
    n = len(x)
    lo, hi = int(rate / F0_RANGE[1]), min(int(rate / F0_RANGE[0]), n - 2)
    if hi <= lo or not np.any(x):
        return 0.0
    spec = np.fft.rfft(x, 2 * n)
    r = np.fft.irfft(spec * np.conj(spec))[:n]
    sq = np.cumsum(x * x)
    lags = np.arange(lo, hi + 1)
    e0 = sq[n - 1 - lags]  # energy of x[0:n-lag]
    e1 = sq[n - 1] - sq[lags - 1]  # energy of x[lag:n]
    nac = r[lags] / np.sqrt(np.maximum(e0 * e1, 1e-20))
    best = float(nac.max())
    if best < VOICED_NAC:
        return 0.0
    lag = int(lags[np.argmax(nac >= 0.9 * best)])
    return rate / lag


class Listener:
    """One avatar's listening: fed the user's audio (``hear``) or VAD events (``vad``), sampled with ``offsets``."""

    def __init__(self, config: ListenerConfig | None = None) -> None:
        self.config = config or ListenerConfig()
        self._rate = 0
        self._tail = np.zeros(0, np.float32)  # < one window of the previous chunk, at the analysis rate
        self._audio_end: float | None = None  # engine time the audio heard so far ends
        self._floor = FLOOR_DB - OVER_FLOOR_DB
        self._run_start: float | None = None  # the current speech run's first active frame
        self._last_active: float | None = None  # end of the latest active frame
        self._vad_talking = False
        self._pause: _Pause | None = None
        self._last_nod = -math.inf
        self._pitch: deque[tuple[float, float]] = deque()  # (engine time, semitones re 100 Hz) of voiced frames
        self.events: list[Event] = []

    # -- input -----------------------------------------------------------------------------------------------------

    @property
    def held_samples(self) -> int:
        """Samples of user audio held right now: at most one analysis window (nothing past the analysis)."""
        return len(self._tail)

    @property
    def talking(self) -> bool:
        """True while the user talks (a run started and no pause has been confirmed)."""
        return self._run_start is not None and self._pause is None

    def hear(self, samples: np.ndarray, sample_rate: int, now: float) -> FrameStats:
        """Analyse one chunk of the user's microphone (mono, -1..1) heard up to about ``now``; keep none of it."""
        x = np.asarray(samples, np.float32)
        k = max(1, int(sample_rate) // 8000)  # pitch and energy at ~8 kHz: plenty for f0 <= 400 Hz
        rate = sample_rate / k
        if k > 1:
            x = x[: len(x) // k * k].reshape(-1, k).mean(axis=1)
        duration = len(samples) / sample_rate
        start = now - duration if self._audio_end is None else max(self._audio_end, now - duration)
        if rate != self._rate or (self._audio_end is not None and start > self._audio_end + 1e-6):
            self._tail = np.zeros(0, np.float32)  # a new rate or a gap in the stream: no window spans it
            self._rate = rate
        stats = FrameStats(start=start, end=start + duration)
        hop, window = int(round(HOP_S * rate)), int(round(WINDOW_S * rate))
        buf = np.concatenate([self._tail, x])
        # buf[0] is at engine time start - len(tail)/rate; a frame is the hop that ends a window
        t0 = start - len(self._tail) / rate
        i = 0
        while i + window <= len(buf):
            frame = buf[i:i + window]
            end = t0 + (i + window) / rate
            stats.frames += 1
            self._frame(frame[-hop:], frame, rate, end, now, stats)
            i += hop
        self._tail = buf[i:].copy()
        self._audio_end = stats.end
        self._commit_stale(now)
        return stats

    def vad(self, speaking: bool, now: float) -> None:
        """A VAD's start (``speaking`` True) or stop event at ``now``: pauses are known, pitch is not."""
        self._commit_stale(now)
        if speaking:
            self._vad_talking = True
            self._active(now, now)
        elif self._vad_talking:
            self._vad_talking = False
            self._last_active = now
            if self._run_start is not None:
                self._pause_started(now, question=False, vad=True)

    # -- sampling ----------------------------------------------------------------------------------------------------

    def offsets(self, t: float) -> dict[str, float]:
        """headPitch (nods, degrees down) and browInnerUp/browOuterUp (question raises) at engine time t."""
        self._commit_stale(t)
        cfg = self.config
        pitch_deg, brow = 0.0, 0.0
        rise, hold, fall = cfg.brow_s
        for e in self.events:
            u = t - e.start
            if e.kind == "nod" and e.beats == 2:
                beat = DOUBLE_BEAT * cfg.nod_s
                pitch_deg -= DOUBLE_DEPTH * e.depth * (_bump(u / beat) + _bump(u / beat - 1.0))
            elif e.kind == "nod":
                pitch_deg -= e.depth * _bump(u / cfg.nod_s)
            elif 0.0 < u < rise + hold + fall:
                up = _smoothstep(u / rise) if u < rise else 1.0 - _smoothstep((u - rise - hold) / fall)
                brow = max(brow, cfg.brow * up)
        return {"headPitch": pitch_deg, "browInnerUp": brow, "browOuterUp": 0.8 * brow}

    def active(self, t: float) -> bool:
        """True while a nod or raise may still move the face after t (so frames are not cached)."""
        return self._pause is not None or any(e.start + 2.0 > t for e in self.events)

    # -- internals -----------------------------------------------------------------------------------------------------

    def _frame(self, hop: np.ndarray, window: np.ndarray, rate: float, end: float, now: float,
               stats: FrameStats) -> None:
        rms = float(np.sqrt(np.mean(hop.astype(np.float64) ** 2)))
        db = 20.0 * math.log10(max(rms, 1e-5))
        active = db > max(FLOOR_DB, self._floor + OVER_FLOOR_DB)
        self._floor = db if db < self._floor else self._floor + FLOOR_RISE_DB_S * HOP_S
        if self._pause is not None and not active and end >= self._pause.at:
            self._decide(max(self._pause.at, now))  # the pause lasted long enough: heard, not guessed
        if not active:
            if self._last_active is not None and self._pause is None and self._run_start is not None:
                self._pause_started(self._last_active, self._question())
            return
        stats.active += 1
        f0 = pitch(window, rate)
        if f0 > 0.0:
            stats.voiced += 1
            self._pitch.append((end, 12.0 * math.log2(f0 / 100.0)))
            while self._pitch and self._pitch[0][0] < end - 3.0:
                self._pitch.popleft()
        self._active(end - HOP_S, end)

    def _active(self, start: float, end: float) -> None:
        """The user talks from start to end: a pause that had not earned its nod yet is not a pause."""
        if self._pause is not None and start < self._pause.at:
            self._pause = None  # speech came back before the nod's time: a gap inside the run
        if self._run_start is None:
            self._run_start = start
        self._last_active = end

    def _pause_started(self, at: float, question: bool, vad: bool = False) -> None:
        assert self._run_start is not None
        cfg = self.config
        talk = at - self._run_start
        nod = talk >= cfg.min_speech_s and at + cfg.nod_delay_s - self._last_nod >= cfg.nod_gap_s
        self._pause = _Pause(at + cfg.nod_delay_s, nod, talk, question and talk >= 0.5, vad)

    def _decide(self, start: float) -> None:
        """The pause is real: place its nod and raise (at ``start``), and end the run."""
        pause, self._pause = self._pause, None
        self._run_start = None
        self._pitch.clear()
        assert pause is not None
        if pause.question:
            self.events.append(Event("brow", start - 0.2))
        if pause.nod:
            self.events.append(self._nod(start, pause.talk))
            self._last_nod = start
        self.events = [e for e in self.events if e.start > start - KEEP_S]

    def _nod(self, start: float, talk: float) -> Event:
        """The nod a run of ``talk`` seconds earns: deeper after more talk, a double nod after a long run unless the
        last nod was one (a listener's nods vary; the same dip every time reads as a machine)."""
        cfg = self.config
        low, high = cfg.nod_talk
        depth = cfg.nod_deg * min(high, max(low, 0.8 + 0.13 * talk))
        last = next((e for e in reversed(self.events) if e.kind == "nod"), None)
        double = talk >= cfg.double_after_s and (last is None or last.beats == 1)
        return Event("nod", start, depth, 2 if double else 1)

    def _commit_stale(self, t: float) -> None:
        """The stream went quiet (or a VAD said stop) and the nod's time came: place it."""
        if (self._pause is None and self._run_start is not None and self._last_active is not None
                and self._audio_end is not None and not self._vad_talking and t >= self._audio_end + STALE_S):
            self._pause_started(self._last_active, self._question())  # the audio stopped with the user's talk
        pause = self._pause
        if pause is None:
            return
        quiet_from = pause.at if pause.vad or self._audio_end is None else max(pause.at, self._audio_end + STALE_S)
        if t >= quiet_from:
            self._decide(quiet_from)

    def _question(self) -> bool:
        """A phrase-final rise: the last three voiced frames well above the low point of the 600 ms before them,
        and not below the phrase's median (a statement falls to its end). Tuned on espeak-ng voices in eight
        languages (bench/bench_listen.py): 6 of 8 questions, none of 16 statements."""
        if len(self._pitch) < 8:
            return False
        end = self._pitch[-1][0]
        last = float(np.median([st for _, st in list(self._pitch)[-3:]]))
        recent = sorted(st for t, st in self._pitch if t > end - 0.6)
        low = recent[1] if len(recent) > 4 else recent[0]  # the second lowest: one octave slip is not a low
        middle = float(np.median([st for _, st in self._pitch]))
        return last - low >= self.config.rise_st and last >= middle
