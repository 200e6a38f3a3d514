"""Expression marks on speech: "at 1.2 s into this audio, turn happy" (an LLM's emotion tags, placed on the words).

A mark is checked by the protocol (engine/protocol.py) and placed on the engine clock when its audio is placed
(``speak``): its time is the audio's engine start plus its offset. The Animator applies a due mark exactly as a
``set_expression`` (then ``set_controls``) issued at the mark's own time, so the easing is the usual one and
starts on time however late the frame that first sees it. A barge-in (``clear``) drops the marks not yet heard.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

MAX_MARKS = 256


@dataclass(frozen=True)
class Mark:
    """One mark: ``t`` seconds into its audio; ``expression`` at ``intensity``, then ``controls``, eased over
    ``transition_ms`` (the usual default when None)."""

    t: float
    expression: str
    intensity: float = 1.0
    controls: dict[str, float] = field(default_factory=dict)
    transition_ms: float | None = None


@dataclass
class MarkQueue:
    """Marks placed on the engine clock, in time order; ``due(t)`` pops those at or before t."""

    _times: list[float] = field(default_factory=list)
    _marks: list[Mark] = field(default_factory=list)

    def place(self, marks: tuple[Mark, ...], start: float) -> None:
        for mark in marks:
            at = start + mark.t
            i = bisect.bisect_right(self._times, at)
            self._times.insert(i, at)
            self._marks.insert(i, mark)

    def due(self, t: float) -> list[tuple[float, Mark]]:
        n = bisect.bisect_right(self._times, t)
        out = list(zip(self._times[:n], self._marks[:n], strict=True))
        del self._times[:n], self._marks[:n]
        return out

    def drop(self) -> None:
        self._times.clear()
        self._marks.clear()

    def __len__(self) -> int:
        return len(self._marks)
