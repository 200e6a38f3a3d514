"""The speech layer of the Animator: mouth controls from audio, placed on the engine clock, added to the face.

Why a layer and not a schedule: speech arrives in chunks while it is being played (streamed TTS), must continue
seamlessly across chunks, must start where the clock is when a chunk is late, and must stop at once on barge-in;
and it adds to the expression underneath (a happy face talking keeps its smile) instead of replacing it.

Besides the mouth, each track carries the speech-driven motion of the rest of the face (head nods and turns, brow
raises, blinks at pauses: engine/speech/prosody.py finds the events, engine/animation/prosody.py shapes them), scaled
by the track's ``speech_motion`` gain (None: the avatar's default, read live).

Times are engine seconds. An utterance's audio is a continuous sample stream analysed by one MouthAnalyser;
``pieces`` map its time (u, seconds of audio) to engine time: a chunk that arrives after the audio so far has
finished playing starts at ``now``, not at the (past) end of the previous chunk.
"""

from __future__ import annotations

import bisect
import math
import numbers
from dataclasses import dataclass

import numpy as np

from engine.animation.prosody import SETTLE_S, ProsodyMotion
from engine.errors import BadRequest
from engine.speech.audio import Pcm
from engine.speech.errors import BadAudio
from engine.speech.mouth import HOP_S, MOUTH_CONTROLS, MouthAnalyser
from engine.speech.prosody import ProsodyAnalyser

# clear(): the mouth holds the shape it had at the clear (the audio stops: nothing more is articulated) and shuts
# linearly over this. Why linear and 100 ms: at 25 fps the third frame after a clear lands at most 120 ms after it,
# and a linear fade takes at most 40/100 of the opening per frame (an 80 ms smoothstep over the running speech took
# up to 78% in one step when its steep middle fell between two ticks). bench/bench_bargein.py measures it.
CLEAR_S = 0.1
MOTION_CLEAR_S = 0.5  # clear(): the speech's head, brow and blink motion settles over this (a head does not snap)
CROSSFADE_S = 0.08  # a new utterance replacing a running one takes over over this
RESUME_S = 0.04  # a late chunk's mouth eases in over this (one frame at 25 fps)


@dataclass(frozen=True)
class SpeechSpan:
    """What a speak call placed: this chunk's engine start and end, and its duration (for the reply)."""

    start: float
    end: float
    duration: float


def _ease_out(s: float) -> float:
    """1 -> 0 smoothly over s in 0..1."""
    s = min(1.0, max(0.0, s))
    return 1.0 - s * s * (3.0 - 2.0 * s)


def _linear_out(s: float) -> float:
    """1 -> 0 linearly over s in 0..1 (exactly 0 from 1 on, float rounding of the clock included)."""
    return 0.0 if s >= 1.0 - 1e-9 else 1.0 - max(0.0, s)


class SpeechTrack:
    """Mouth controls of one utterance over engine time; grows with ``append``."""

    def __init__(self, sample_rate: int, start: float, speech_motion: float | None = None) -> None:
        self.sample_rate = sample_rate
        self.start = float(start)
        self.speech_motion = speech_motion  # None: the avatar's default gain
        self._analyser = MouthAnalyser(sample_rate)
        self._prosody = ProsodyAnalyser(sample_rate)
        self.motion = ProsodyMotion()
        self._final = np.zeros((256, len(MOUTH_CONTROLS)))  # grows by doubling: appends stay O(chunk)
        self._n = 0  # final rows in _final
        self._tail = np.zeros((0, len(MOUTH_CONTROLS)))  # provisional rows after them
        self._samples = 0
        self._u: list[float] = []  # audio time at the start of each piece
        self._e: list[float] = []  # engine time at the start of each piece

    @classmethod
    def from_pcm(cls, pcm: Pcm, start: float) -> SpeechTrack:
        track = cls(pcm.sample_rate, start)
        track.append(pcm, start)
        return track

    @property
    def audio_end(self) -> float:
        """Engine time at which the audio received so far has finished playing."""
        if not self._u:
            return self.start
        return self._e[-1] + (self._samples / self.sample_rate - self._u[-1])

    @property
    def end(self) -> float:
        """Engine time after which the track is silent (its rows run out, and the audio has been played)."""
        return max(self.engine_time(self.rows * HOP_S), self.audio_end)

    @property
    def rows(self) -> int:
        return self._n + len(self._tail)

    def append(self, pcm: Pcm, now: float) -> SpeechSpan:
        """Continue the utterance with the next chunk; a late chunk starts where the clock is."""
        if pcm.sample_rate != self.sample_rate:
            raise BadAudio(f"an appended chunk must keep the utterance's {self.sample_rate} Hz, "
                           f"got {pcm.sample_rate} Hz")
        begin = self.start if not self._u else max(self.audio_end, now)
        if not self._u or begin > self.audio_end:
            self._u.append(self._samples / self.sample_rate)
            self._e.append(begin)
        self._samples += len(pcm.samples)
        new = self._analyser.push(pcm.samples)
        self.motion.add(self._prosody.push(pcm.samples))
        if self._n + len(new) > len(self._final):
            grown = np.zeros((max(2 * len(self._final), self._n + len(new)), len(MOUTH_CONTROLS)))
            grown[: self._n] = self._final[: self._n]
            self._final = grown
        self._final[self._n: self._n + len(new)] = new
        self._n += len(new)
        self._tail = self._analyser.tail()
        return SpeechSpan(begin, self.audio_end, pcm.duration)

    def engine_time(self, u: float) -> float:
        if not self._u:
            return self.start + u
        i = max(0, bisect.bisect_right(self._u, u) - 1)
        return self._e[i] + (u - self._u[i])

    def audio_time(self, t: float) -> tuple[float, float]:
        """(audio time shown at engine time t, gain): the gain is 0 in a gap before a late chunk (nothing is
        heard) and eases in over RESUME_S when the late chunk starts, so the mouth neither hangs open nor jumps."""
        if not self._u:
            return t - self.start, 1.0
        i = max(0, bisect.bisect_right(self._e, t) - 1)
        u = self._u[i] + (t - self._e[i])
        if i + 1 < len(self._u) and u >= self._u[i + 1]:
            return self._u[i + 1], 0.0
        gain = 1.0 if i == 0 else 1.0 - _ease_out((t - self._e[i]) / RESUME_S)
        return u, gain

    def values(self, t: float) -> np.ndarray:
        """The MOUTH_CONTROLS at engine time t (zeros before and after), linearly between 10 ms rows."""
        u, gain = self.audio_time(t)
        x = u / HOP_S
        if self.rows < 2 or x < 0.0 or x > self.rows - 1 or gain <= 0.0:
            return np.zeros(len(MOUTH_CONTROLS))
        i = min(int(x), self.rows - 2)
        f = x - i
        return gain * (self._row(i) * (1.0 - f) + self._row(i + 1) * f)

    def motion_values(self, t: float) -> dict[str, float]:
        """Head, brow and blink offsets at engine time t (gain 1), easing back to rest after the track's end."""
        u, _ = self.audio_time(t)
        if u < -SETTLE_S:
            return {}
        fade = _ease_out((t - self.end) / SETTLE_S) if t > self.end else 1.0
        if fade <= 0.0:
            return {}
        return {name: fade * v for name, v in self.motion.offsets(u).items()}

    def _row(self, i: int) -> np.ndarray:
        return self._final[i] if i < self._n else self._tail[i - self._n]


class SpeechLayer:
    """The Animator's speech: the current track, a track fading out, and the barge-in fade."""

    def __init__(self) -> None:
        self.speech_motion = 1.0  # the avatar's default gain for tracks that name none
        self.track: SpeechTrack | None = None
        self._gain_from: float | None = None  # clear(): fade the track out from this time
        self._old: tuple[SpeechTrack, float | None, float] | None = None  # (track, its clear time, takeover time)

    def speak(self, audio: Pcm, now: float, start: float | None = None, append: bool = False,
              speech_motion: float | None = None) -> SpeechSpan:
        """Play audio's mouth from ``start`` (default now); ``append`` continues the running utterance.
        ``speech_motion``: this audio's motion gain (on append, the utterance's from now on); None: the avatar's."""
        if start is not None and (isinstance(start, bool) or not isinstance(start, numbers.Real)
                                  or not math.isfinite(float(start))):
            raise BadRequest(f"start must be a finite engine time in seconds, got {start!r}")
        if not isinstance(append, bool):
            raise BadRequest(f"append must be true or false, got {append!r}")
        if not isinstance(audio, Pcm):
            raise BadRequest("speak needs decoded audio (engine.speech.decode_audio)")
        track = self.track
        if speech_motion is not None:
            speech_motion = validate_speech_motion(speech_motion)
        if append and track is not None and self._gain_from is None:
            if speech_motion is not None:
                track.speech_motion = speech_motion
            return track.append(audio, now)
        begin = now if start is None else float(start)
        new = SpeechTrack(audio.sample_rate, begin, speech_motion)
        span = new.append(audio, now)
        if track is not None and self._active_track(track, self._gain_from, now):
            self._old = (track, self._gain_from, now)
        self.track, self._gain_from = new, None
        return span

    def clear(self, now: float) -> None:
        """Barge-in: the mouth shuts within CLEAR_S, the head settles over MOTION_CLEAR_S; later appends start a
        new utterance."""
        if self.track is not None and self._gain_from is None:
            self._gain_from = now

    def offsets(self, t: float) -> dict[str, float]:
        """Control offsets to add to the face at engine time t (empty when silent)."""
        total = np.zeros(len(MOUTH_CONTROLS))
        live = False
        if self.track is not None:
            g = self._gain(self._gain_from, t)
            if g > 0.0:
                total += g * self.track.values(t if self._gain_from is None else min(t, self._gain_from))
                live = True
        if self._old is not None:
            track, cleared, since = self._old
            g = self._gain(cleared, t) * _ease_out((t - since) / CROSSFADE_S)
            if g > 0.0:
                total += g * track.values(t if cleared is None else min(t, cleared))
                live = True
        out = {name: float(v) for name, v in zip(MOUTH_CONTROLS, total, strict=True) if v} if live else {}
        for name, v in self._motion(t).items():
            out[name] = out.get(name, 0.0) + v
        return out

    def _motion(self, t: float) -> dict[str, float]:
        """The speech-driven head, brows and blinks of the current and the fading track, with their gains."""
        parts = []
        if self.track is not None:
            parts.append((self.track, self._motion_gain(self._gain_from, t)))
        if self._old is not None:
            track, cleared, since = self._old
            parts.append((track, self._motion_gain(cleared, t) * _ease_out((t - since) / SETTLE_S)))
        out: dict[str, float] = {}
        for track, g in parts:
            gain = g * (self.speech_motion if track.speech_motion is None else track.speech_motion)
            if gain <= 0.0:
                continue
            for name, v in track.motion_values(t).items():
                out[name] = out.get(name, 0.0) + gain * v
        return out

    def active(self, t: float) -> bool:
        """True while speech can still move the mouth after t."""
        if self.track is not None and self._active_track(self.track, self._gain_from, t):
            return True
        return self._old is not None and t < self._old[2] + SETTLE_S

    @staticmethod
    def _gain(cleared: float | None, t: float) -> float:
        return 1.0 if cleared is None else _linear_out((t - cleared) / CLEAR_S)

    @staticmethod
    def _motion_gain(cleared: float | None, t: float) -> float:
        return 1.0 if cleared is None else _ease_out((t - cleared) / MOTION_CLEAR_S)

    @staticmethod
    def _active_track(track: SpeechTrack, cleared: float | None, t: float) -> bool:
        if cleared is not None and t >= cleared + MOTION_CLEAR_S:
            return False
        return t < track.end + SETTLE_S


MAX_SPEECH_MOTION = 2.0


def validate_speech_motion(value: object) -> float:
    """A speech_motion gain: a finite number in 0..MAX_SPEECH_MOTION (0: lips only)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or not 0.0 <= float(value) <= MAX_SPEECH_MOTION:
        raise BadRequest(f"'speech_motion' must be a number in 0..{MAX_SPEECH_MOTION:g}, not {value!r}")
    return float(value)
