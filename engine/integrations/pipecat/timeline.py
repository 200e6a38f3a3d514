"""The voice held back until its face is drawn: PCM keyed by engine time, released a frame at a time.

Why: the engine draws the mouth for speech heard from engine time ``start`` (the ``speak`` reply), and the frame of
engine time ``ts`` reaches us render + JPEG + PUB later. Pushing the voice as soon as the TTS made it would put it
ahead of its face by exactly that delay. So the audio waits here, keyed by the engine times the engine gave it, and
leaves with the frame that shows it: the frame of ``ts`` releases the speech of ``[released, ts + 1/fps)``. One
clock (the engine's), as bridge/media.py does for WHEP; no pipecat types here (pure, tested without a pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Segment:
    """Speech heard from engine time ``start``: mono int16 at ``rate``; ``entered`` is when the TTS gave it to us
    (the client's monotonic clock), so the added latency can be measured as it leaves."""

    start: float
    pcm: np.ndarray
    rate: int
    entered: float = 0.0

    @property
    def end(self) -> float:
        return self.start + len(self.pcm) / self.rate


@dataclass
class Released:
    """What one step of the clock lets go: speech pieces (in order) and the frames that waited for their time."""

    audio: list[Segment] = field(default_factory=list)
    frames: list[Any] = field(default_factory=list)


class HeldSpeech:
    """Speech and end-of-speech markers waiting for the face; ``release(until)`` hands out what is due."""

    def __init__(self) -> None:
        self._segments: list[Segment] = []
        self._after: list[tuple[float, Any]] = []  # (engine time, frame): pushed once the speech before it left
        self.released_until = 0.0

    @property
    def pending(self) -> bool:
        return bool(self._segments or self._after)

    @property
    def end(self) -> float:
        """Engine time at which the held speech ends (0 when nothing is held)."""
        return max((s.end for s in self._segments), default=0.0)

    def add(self, segment: Segment) -> None:
        self._segments.append(segment)

    def add_after(self, t: float, item: Any) -> None:
        """Release ``item`` with the frame that covers engine time ``t`` (e.g. TTSStoppedFrame after the speech)."""
        self._after.append((t, item))

    def release(self, until: float) -> Released:
        """Everything heard before engine time ``until``: whole segments or their heads, cut at a sample."""
        out = Released()
        keep: list[Segment] = []
        for s in self._segments:
            if s.start >= until:
                keep.append(s)
                continue
            n = len(s.pcm) if s.end <= until else int(round((until - s.start) * s.rate))
            if n > 0:
                out.audio.append(Segment(s.start, s.pcm[:n], s.rate, s.entered))
            if n < len(s.pcm):
                keep.append(Segment(s.start + n / s.rate, s.pcm[n:], s.rate, s.entered))
        self._segments = keep
        due = [item for t, item in self._after if t < until]
        self._after = [(t, item) for t, item in self._after if t >= until]
        out.frames = due
        self.released_until = max(self.released_until, until)
        return out

    def drop(self) -> int:
        """Barge-in: nothing held is heard any more. Returns the samples dropped."""
        n = sum(len(s.pcm) for s in self._segments)
        self._segments = []
        self._after = []
        return n
