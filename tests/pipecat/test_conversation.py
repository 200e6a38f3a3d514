"""The conversation frames through LivePortraitVideoService against a real engine: the user's turn makes the face
listen, an LLM's [happy] tag makes the face happy at its sentence (through the example's real espeak-ng TTS) and is
never spoken. They need the engine's conversation commands (docs/protocol.md: user_speech, user_audio, set_turn,
speak marks)."""

from __future__ import annotations

import asyncio

import numpy as np
from pipecat.frames.frames import (
    AggregatedTextFrame,
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputImageRawFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)

from engine.integrations.pipecat import LivePortraitEmotionTags, LivePortraitErrorFrame, LivePortraitVideoService
from examples.pipecat_bot import EspeakTTSService
from tests.pipecat.conftest import run_pipeline
from tests.service.conftest import EngineProcess


def service(engine: EngineProcess) -> LivePortraitVideoService:
    return LivePortraitVideoService(command_addr=engine.command_addr, frame_addr=engine.frame_addr, fps=25.0,
                                    width=128, height=128)


def test_the_users_turn_makes_the_face_listen(engine: EngineProcess, voice) -> None:
    """UserStartedSpeaking + the user's audio: the engine is told (user_speech, user_audio) and says the avatar
    is listening; when the user stops, thinking."""
    pcm, rate = voice("Could you tell me the way to the station, please?")
    engine.request({"v": 1, "cmd": "set_turn", "avatar": "default", "state": "idle"})  # whatever a test before left
    svc = service(engine)
    turns: list[str | None] = []
    step = int(rate * 0.02)

    async def script(worker) -> None:
        await asyncio.sleep(0.3)
        await worker.queue_frame(UserStartedSpeakingFrame())
        for i in range(0, len(pcm), step):
            await worker.queue_frame(InputAudioRawFrame(audio=pcm[i:i + step].astype("<i2").tobytes(),
                                                        sample_rate=rate, num_channels=1))
            await asyncio.sleep(0.02)
            if i % (step * 25) == 0:
                turns.append(svc.stats.turn)
        await asyncio.sleep(0.2)
        turns.append(svc.stats.turn)
        await worker.queue_frame(UserStoppedSpeakingFrame())
        await asyncio.sleep(0.3)
        turns.append(svc.stats.turn)

    run = asyncio.run(run_pipeline([svc], script))
    assert not run.of(LivePortraitErrorFrame, up=True), [s.frame.error for s in run.of(LivePortraitErrorFrame,
                                                                                      up=True)]
    assert turns[-2] == "listening" and turns[-1] == "thinking", turns


def test_an_emotion_tag_reaches_the_face_at_its_sentence(engine: EngineProcess) -> None:
    """An LLM reply '[happy] ...' through the tag stripper and espeak-ng: the TTS never gets the tag, and the frames
    that show that sentence are happy while the frames before it are not."""
    svc = service(engine)
    engine.request({"v": 1, "cmd": "set_expression", "avatar": "default", "expression": "neutral",
                    "transition_ms": 0})

    async def script(worker) -> None:
        await asyncio.sleep(0.5)
        await worker.queue_frame(LLMFullResponseStartFrame())
        for token in ["[hap", "py] What a ", "lovely day ", "it is today!"]:
            await worker.queue_frame(LLMTextFrame(text=token))
        await worker.queue_frame(LLMFullResponseEndFrame())
        await asyncio.sleep(3.5)

    try:
        run = asyncio.run(run_pipeline([LivePortraitEmotionTags(), EspeakTTSService(), svc], script))
    finally:  # the mark's expression stays: the next test starts neutral
        engine.request({"v": 1, "cmd": "set_expression", "avatar": "default", "expression": "neutral",
                        "transition_ms": 0})
    spoken = " ".join(s.frame.text for s in run.of(AggregatedTextFrame))
    assert "[" not in spoken and "lovely day" in spoken, spoken
    kinds = [s.frame for s in run.down]
    first_voice = next(i for i, f in enumerate(kinds) if isinstance(f, TTSAudioRawFrame))
    expressions = [(i, f.metadata["liveportrait"]["expression"]) for i, f in enumerate(kinds)
                   if isinstance(f, OutputImageRawFrame)]
    before = [e for i, e in expressions if i < first_voice]
    during = [e for i, e in expressions if i > first_voice][10:40]  # eased in by then, still speaking
    assert before and set(before) == {"neutral"}, before
    assert during and np.mean([e == "happy" for e in during]) > 0.9, during
