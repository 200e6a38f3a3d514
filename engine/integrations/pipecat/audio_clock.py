"""The voice's clock after the transport: how much of the pushed voice the output transport has handed to its
audio track, so that each frame can wait for its own voice (docs/pipecat.md, "A/V at the browser").

pipecat's output transport queues the voice, writes it to the track in chunks and pushes each chunk downstream
once the track has taken it; under load that queue grows (the track fills gaps with silence) while the video
goes out as it comes, so the face runs ahead of the voice. ``AudioOutProbe`` sits after ``transport.output()``
and counts the voice that has gone; ``AudioOutClock`` holds both counts (pure, no pipecat)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pipecat.frames.frames import Frame, OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


@dataclass
class AudioOutClock:
    """Seconds of voice pushed by the service and seconds handed on by the transport (same voice, same order)."""

    pushed_s: float = 0.0
    out_s: float = 0.0
    generation: int = 0  # bumped when the counts are re-based (barge-in): frames waiting then go at once
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def pushed(self, samples: int, rate: int) -> None:
        self.pushed_s += samples / rate

    def out(self, seconds: float) -> None:
        self.out_s += seconds
        self.changed.set()

    def rebase(self) -> None:
        """Nothing of the voice is pending (silence, or the transport dropped its queue): start both counts over."""
        self.pushed_s = self.out_s
        self.generation += 1
        self.changed.set()

    def reached(self, mark: float, generation: int) -> bool:
        return generation != self.generation or self.out_s >= mark


class AudioOutProbe(FrameProcessor):
    """After ``transport.output()``: the voice it pushes on (each chunk after its track took it) moves the clock."""

    def __init__(self, clock: AudioOutClock, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._clock = clock

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, OutputAudioRawFrame) and frame.audio:
            self._clock.out(len(frame.audio) / (2 * frame.num_channels) / frame.sample_rate)
        await self.push_frame(frame, direction)
