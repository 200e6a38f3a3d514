"""LivePortraitVideoService in a real pipecat pipeline against a real engine: the voice leaves with its face,
barge-in stops both, engine errors become ErrorFrames with our codes and never stop the pipeline."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from engine.integrations.pipecat import LivePortraitErrorFrame, LivePortraitVideoService
from tests.pipecat.conftest import Run, feed_realtime, run_pipeline, tts_chunks
from tests.service.conftest import EngineProcess, free_port

SENTENCE = "Hello there, my mom bought a puppy, and we walked it by the river all afternoon."
FPS = 25.0


def service(engine: EngineProcess, **kwargs: object) -> LivePortraitVideoService:
    return LivePortraitVideoService(command_addr=engine.command_addr, frame_addr=engine.frame_addr, fps=FPS,
                                    width=128, height=128, **kwargs)


def per_frame(run: Run) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """For each image pushed: the RMS of the voice pushed with it (since the previous image) and its jawOpen;
    and the index in ``run.down`` of each image."""
    rms, jaw, where, acc = [], [], [], []
    for i, seen in enumerate(run.down):
        f = seen.frame
        if isinstance(f, TTSAudioRawFrame):
            acc.append(np.frombuffer(f.audio, "<i2").astype(np.float64))
        elif isinstance(f, OutputImageRawFrame):
            x = np.concatenate(acc) if acc else np.zeros(1)
            acc = []
            rms.append(float(np.sqrt(np.mean(x ** 2))))
            jaw.append(float(f.metadata["liveportrait"]["jawOpen"] or 0.0))
            where.append(i)
    return np.array(rms), np.array(jaw), where


def best_r(rms: np.ndarray, jaw: np.ndarray, max_lag: int = 3) -> tuple[float, int]:
    out = []
    for lag in range(-max_lag, max_lag + 1):  # lag > 0: the mouth after the voice
        e, j = (rms[:len(rms) - lag], jaw[lag:]) if lag >= 0 else (rms[-lag:], jaw[:lag])
        out.append((float(np.corrcoef(e, j)[0, 1]), lag))
    return max(out)


def burst(pcm: np.ndarray, rate: int):
    """A pipeline script: after 0.3 s, one TTS utterance in 50 ms chunks at once (faster than real time, as TTS
    services send it), then time for it to play out."""

    async def script(worker) -> None:
        await asyncio.sleep(0.3)
        await worker.queue_frames([TTSStartedFrame(), *tts_chunks(pcm, rate, 0.05), TTSStoppedFrame()])
        await asyncio.sleep(len(pcm) / rate + 0.8)

    return script


def test_the_voice_leaves_with_its_face(engine: EngineProcess, voice) -> None:
    """A TTS burst (faster than real time, as TTS services send it): every sample comes out, each with the frame
    that shows it: the mouth opening follows the voice pushed with each frame (r >= 0.6 at lag 0 +-1 frame)."""
    pcm, rate = voice(SENTENCE)
    svc = service(engine)

    run = asyncio.run(run_pipeline([svc], burst(pcm, rate)))
    out = np.concatenate([np.frombuffer(s.frame.audio, "<i2") for s in run.audio()])
    assert len(out) == len(pcm) and np.array_equal(out, pcm)  # all of it, in order, untouched
    rms, jaw, _ = per_frame(run)
    r, lag = best_r(rms, jaw)
    assert jaw.max() > 0.3 and r >= 0.6 and abs(lag) <= 1, (r, lag, jaw.max())
    kinds = [type(s.frame).__name__ for s in run.down]
    assert kinds.index("TTSStoppedFrame") > max(i for i, k in enumerate(kinds) if k == "TTSAudioRawFrame")
    assert not run.of(LivePortraitErrorFrame, up=True)


def test_video_delay_holds_each_frame_after_its_voice(engine: EngineProcess, voice) -> None:
    """``video_delay_ms`` (the browser-side A/V offset's correction, docs/pipecat.md): the voice still leaves on
    time and whole, and each frame leaves that much later: the mouth follows the voice pushed 3 frames before it
    (120 ms at 25 fps, +-1 frame), not the voice pushed with it (with video_delay_ms=0: lag 0, fails)."""
    pcm, rate = voice(SENTENCE)
    svc = service(engine, video_delay_ms=120)

    run = asyncio.run(run_pipeline([svc], burst(pcm, rate)))
    out = np.concatenate([np.frombuffer(s.frame.audio, "<i2") for s in run.audio()])
    assert len(out) == len(pcm) and np.array_equal(out, pcm)
    rms, jaw, _ = per_frame(run)
    r, lag = best_r(rms, jaw, max_lag=6)
    # r looser than with no delay: frames leave from their own task, so the voice between two of them varies
    assert jaw.max() > 0.3 and r >= 0.4 and 2 <= lag <= 4, (r, lag, jaw.max())
    ts = [s.frame.metadata["liveportrait"]["ts"] for s in run.images()]
    assert ts == sorted(ts)  # in order


class LateVoice(FrameProcessor):
    """Stands in for an output transport whose voice queue has grown (pipecat's, under load): the voice goes on
    LATE_S late, in order; everything else at once."""

    def __init__(self) -> None:
        super().__init__()
        self._q: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._task = self.create_task(self._late(), "late-voice")
        elif isinstance(frame, EndFrame) and self._task is not None:
            await self.cancel_task(self._task)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, TTSAudioRawFrame):
            self._q.put_nowait((time.monotonic() + LATE_S, frame))
            return
        await self.push_frame(frame, direction)

    async def _late(self) -> None:
        while True:
            due, frame = await self._q.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self.push_frame(frame)


LATE_S = 0.3


def test_frames_wait_for_their_voice_to_leave_the_transport(engine: EngineProcess, voice) -> None:
    """``audio_probe()`` after a transport that holds the voice back 300 ms: each frame leaves after its own voice
    (mouth vs voice at lag 0 +-1 frame after the probe), not 7 frames before it (the probe left out: fails)."""
    pcm, rate = voice(SENTENCE)
    svc = service(engine)
    probe = svc.audio_probe()

    async def script(worker) -> None:
        await asyncio.sleep(0.3)
        await feed_realtime(worker, [TTSStartedFrame(), *tts_chunks(pcm, rate), TTSStoppedFrame()])
        await asyncio.sleep(1.2)

    run = asyncio.run(run_pipeline([svc, LateVoice(), probe], script))
    out = np.concatenate([np.frombuffer(s.frame.audio, "<i2") for s in run.audio()])
    assert len(out) == len(pcm) and np.array_equal(out, pcm)
    rms, jaw, _ = per_frame(run)
    r, lag = best_r(rms, jaw, max_lag=10)
    assert jaw.max() > 0.3 and r >= 0.4 and abs(lag) <= 1, (r, lag, jaw.max())


def test_interruption_stops_the_face_and_the_voice_at_once(engine: EngineProcess, voice) -> None:
    """Barge-in 1 s into a 5 s answer the TTS already sent: within 3 frames no voice is pushed any more and the
    mouth is shut (the held audio is dropped, ``clear`` sent)."""
    pcm, rate = voice(SENTENCE)
    svc = service(engine)

    async def script(worker) -> None:
        await asyncio.sleep(0.3)
        await worker.queue_frames([TTSStartedFrame(), *tts_chunks(pcm, rate, 0.05)])
        await asyncio.sleep(1.2)
        await worker.queue_frame(InterruptionFrame())
        await asyncio.sleep(1.0)

    run = asyncio.run(run_pipeline([svc], script))
    cut = next(i for i, s in enumerate(run.down) if isinstance(s.frame, InterruptionFrame))
    images_after = [i for i, s in enumerate(run.down) if i > cut and isinstance(s.frame, OutputImageRawFrame)]
    assert len(images_after) >= 10
    third = images_after[2]
    voice_after = [i for i, s in enumerate(run.down) if isinstance(s.frame, TTSAudioRawFrame) and i > third]
    assert not voice_after, f"{len(voice_after)} voice frames after the 3rd frame past the interruption"
    jaw = [run.down[i].frame.metadata["liveportrait"]["jawOpen"] or 0.0 for i in images_after]
    before = [s.frame.metadata["liveportrait"]["jawOpen"] or 0.0 for s in run.down[:cut]
              if isinstance(s.frame, OutputImageRawFrame)]
    rest = before[0]  # the mouth before it spoke (an expression may part the lips a little)
    assert max(before) > rest + 0.3  # it was speaking
    assert max(jaw[3:]) < rest + 0.05, (rest, jaw[:10])
    assert svc.stats.clears >= 1


def test_engine_errors_become_error_frames_and_the_pipeline_goes_on(engine: EngineProcess, voice) -> None:
    """A photo that is not an image: ErrorFrame(code=invalid_image), the default avatar is used and streams.
    No engine at all: ErrorFrame(code=engine_unavailable) and the voice passes through as it came."""
    svc = service(engine, photo=b"not an image at all")

    async def wait(worker) -> None:
        await asyncio.sleep(0.8)

    run = asyncio.run(run_pipeline([svc], wait))
    codes = [s.frame.code for s in run.of(LivePortraitErrorFrame, up=True)]
    assert codes == ["invalid_image"], codes
    assert len(run.images()) >= 5

    pcm, rate = voice("Still here.")
    gone = f"tcp://127.0.0.1:{free_port()}"
    down = LivePortraitVideoService(command_addr=gone, frame_addr=gone, timeout_ms=300, start_timeout_s=1.0)
    chunks = tts_chunks(pcm, rate)

    async def speak(worker) -> None:
        await worker.queue_frames(chunks)
        await asyncio.sleep(0.3)

    run = asyncio.run(run_pipeline([down], speak))
    assert [s.frame.code for s in run.of(LivePortraitErrorFrame, up=True)] == ["engine_unavailable"]
    assert b"".join(s.frame.audio for s in run.audio()) == pcm.astype("<i2").tobytes()


def test_an_engine_that_goes_away_costs_the_face_not_the_voice(engine: EngineProcess, voice) -> None:
    """The engine stops answering mid-answer (SIGSTOP): the voice held for the face and the voice after it go out
    without it (every sample, in order), one ErrorFrame says engine_unavailable; when the engine answers again
    (SIGCONT) the face comes back and speaks."""
    first, rate = voice("Here is the first part of my answer.")
    second, _ = voice("And this part comes while the engine sleeps.")
    third, _ = voice("Now the face is back with me.")
    svc = service(engine, timeout_ms=300)
    assert engine.proc is not None
    marks: dict[str, int] = {}

    async def script(worker) -> None:
        await asyncio.sleep(0.3)
        await worker.queue_frames([TTSStartedFrame(), *tts_chunks(first, rate, 0.05)])
        await asyncio.sleep(0.6)
        os.kill(engine.proc.pid, signal.SIGSTOP)
        try:
            await worker.queue_frames(tts_chunks(second, rate, 0.05))
            await asyncio.sleep(len(first) / rate + 1.0)
        finally:
            os.kill(engine.proc.pid, signal.SIGCONT)
        await worker.queue_frame(TTSStoppedFrame())
        await asyncio.sleep(3.0)  # the service asks every 2 s whether the engine is back
        marks["back"] = len(run_seen)
        await worker.queue_frames([TTSStartedFrame(), *tts_chunks(third, rate, 0.05), TTSStoppedFrame()])
        await asyncio.sleep(len(third) / rate + 1.0)

    run_seen: list = []
    run = asyncio.run(run_pipeline([svc], script, seen=run_seen))
    out = np.concatenate([np.frombuffer(s.frame.audio, "<i2") for s in run.audio()])
    assert np.array_equal(out, np.concatenate([first, second, third])), (len(out), len(first) + len(second))
    codes = [s.frame.code for s in run.of(LivePortraitErrorFrame, up=True)]
    assert codes == ["engine_unavailable"], codes
    after = [s.frame.metadata["liveportrait"]["jawOpen"] or 0.0 for s in run.down[marks["back"]:]
             if isinstance(s.frame, OutputImageRawFrame)]
    assert max(after) > 0.3, after  # the face speaks again
