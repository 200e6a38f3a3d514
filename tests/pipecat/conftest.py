"""A real engine (offline renderer) and a real pipecat pipeline around LivePortraitVideoService: no mocks.

``run_pipeline(processors, script)`` runs ``[head tap, *processors, sink tap]`` on pipecat's own worker and runner
(as pipecat.tests.utils.run_test does) while ``script`` queues frames in real time; both taps keep every frame with
the time it passed (``Seen``), so a test reads what left the service and when.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pipecat.frames.frames import EndFrame, Frame, OutputImageRawFrame, StartFrame, TTSAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from engine.speech import decode_audio
from tests.service.conftest import EngineProcess
from tests.speech.conftest import espeak


@dataclass
class Seen:
    t: float  # time.monotonic() when it passed the tap
    frame: Frame


class Tap(FrameProcessor):
    """Keeps what passes (downstream at the sink, upstream at the head) and lets it go on."""

    def __init__(self, keep: FrameDirection) -> None:
        super().__init__()
        self.keep = keep
        self.seen: list[Seen] = []
        self.started = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self.started.set()
        if direction == self.keep:
            self.seen.append(Seen(time.monotonic(), frame))
        await self.push_frame(frame, direction)


@dataclass
class Run:
    down: list[Seen] = field(default_factory=list)
    up: list[Seen] = field(default_factory=list)

    def of(self, kind: type, up: bool = False) -> list[Seen]:
        return [s for s in (self.up if up else self.down) if isinstance(s.frame, kind)]

    def images(self) -> list[Seen]:
        return self.of(OutputImageRawFrame)

    def audio(self) -> list[Seen]:
        return self.of(TTSAudioRawFrame)


async def run_pipeline(processors: Sequence[FrameProcessor], script: Callable[[PipelineWorker], Awaitable[None]],
                       seen: list[Seen] | None = None) -> Run:
    """``seen``: a list the sink fills as frames pass (the script may look at it while it runs)."""
    head, sink = Tap(FrameDirection.UPSTREAM), Tap(FrameDirection.DOWNSTREAM)
    if seen is not None:
        sink.seen = seen
    worker = PipelineWorker(Pipeline([head, *processors, sink]), cancel_on_idle_timeout=False,
                            params=PipelineParams())
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)

    async def drive() -> None:
        await asyncio.wait_for(sink.started.wait(), 30)
        await script(worker)
        await worker.queue_frame(EndFrame())

    await asyncio.wait_for(asyncio.gather(runner.run(), drive()), 120)
    return Run(sink.seen, head.seen)


def tts_chunks(pcm: np.ndarray, rate: int, chunk_s: float = 0.02) -> list[TTSAudioRawFrame]:
    n = int(rate * chunk_s)
    return [TTSAudioRawFrame(audio=pcm[i:i + n].astype("<i2").tobytes(), sample_rate=rate, num_channels=1)
            for i in range(0, len(pcm), n)]


async def feed_realtime(worker: PipelineWorker, frames: Sequence[Frame], chunk_s: float = 0.02) -> None:
    """Queue TTS chunks at the pace a streaming TTS gives them (real time)."""
    t0 = time.monotonic()
    for i, f in enumerate(frames):
        await worker.queue_frame(f)
        await asyncio.sleep(max(0.0, t0 + (i + 1) * chunk_s - time.monotonic()))


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """One engine for every test here (each test leaves the default avatar as it found it)."""
    proc = EngineProcess(tmp_path_factory.mktemp("engine")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def voice(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[np.ndarray, int]]:
    """voice(text) -> (int16 mono PCM, sample rate): espeak-ng's real speech, as a local TTS gives it."""
    folder: Path = tmp_path_factory.mktemp("voice")

    def make(text: str) -> tuple[np.ndarray, int]:
        path = espeak(folder / f"{abs(hash(text))}.wav", text)
        pcm = decode_audio(path.read_bytes())
        return (np.clip(pcm.samples, -1, 1) * 32767).astype(np.int16), pcm.sample_rate

    return make
