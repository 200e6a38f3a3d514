"""LivePortraitVideoService: a pipecat service that gives a voice pipeline our avatar's face, in sync with its voice.

Where it sits: ``... -> tts -> LivePortraitVideoService -> transport.output()``. What it does with each frame:

- ``TTSAudioRawFrame``: streamed to the avatar as ``speak`` (the first chunk of an utterance starts it, the next ones
  ``append``), batched to at most ``MAX_SPEAK_S`` a message. The audio itself is held back (timeline.HeldSpeech),
  keyed by the engine times the ``speak`` reply gives it, and leaves with the frame of the same engine time: the
  voice is delayed by exactly the face's delay (render + JPEG + PUB), one clock, as WHEP does (bridge/media.py).
- frames on the PUB socket (``frame.<avatar>``) -> ``OutputImageRawFrame`` at the stream's rate (``fps``, which
  should be the transport's ``video_out_framerate``), cut to ``width`` x ``height`` when given.
- ``audio_probe()``: a processor for after ``transport.output()``; with it each frame waits until the transport has
  taken its voice (audio_clock.py: pipecat queues the voice, not the video), plus ``video_delay_ms`` if given.
- ``InterruptionFrame``: ``clear`` at once, the held audio dropped, then the frame goes on (the transport drops
  what it has queued).
- ``UserStartedSpeakingFrame`` / ``UserStoppedSpeakingFrame`` -> ``user_speech``; the user's ``InputAudioRawFrame``
  while they speak -> ``user_audio`` in ~100 ms chunks (the listening face: docs/protocol.md, the conversation
  commands); ``BotStartedSpeakingFrame`` / ``BotStoppedSpeakingFrame`` -> ``set_turn`` speaking / idle, and the end
  of the user's turn -> ``thinking``. An engine without these commands answers ``unknown_command``: reported once,
  then they are not sent again (the face still speaks).
- ``AvatarEmotionFrame`` (emotion.py: the LLM's ``[happy]`` tags) -> a ``mark`` at t = 0 of the next speech sent.
- Engine errors become ``LivePortraitErrorFrame`` (an ErrorFrame with our wire ``code``) upstream; the pipeline
  never stops for them: when the engine cannot take speech, the voice goes on without a face.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterruptionFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.ai_service import AIService
from pipecat.services.settings import ServiceSettings
from pipecat.utils.errors import ErrorCategory

from engine.client import AsyncEngineClient, AsyncFrameSubscriber, EngineClientError
from engine.integrations.pipecat.audio_clock import AudioOutClock, AudioOutProbe
from engine.integrations.pipecat.emotion import AvatarEmotionFrame
from engine.integrations.pipecat.face_in import FaceIn
from engine.integrations.pipecat.listening import USER_AUDIO_CHUNK_S, Listening
from engine.integrations.pipecat.speech_out import SpeechOut, _Marker, _Speech
from engine.integrations.pipecat.timeline import HeldSpeech

# The engine's mouth for a sample is final once ~160 ms of audio after it has arrived (docs/speech.md, "Live
# latency"); before that the frame shows a provisional mouth. An utterance therefore starts this long after its first
# chunk arrives: the voice waits for a face that has heard enough of it.
LEAD_S = 0.12
RECOVER_S = 2.0  # how often an engine that went away is asked whether it is back


@dataclass
class LivePortraitErrorFrame(ErrorFrame):
    """An engine error: ``code`` is the wire code (docs/protocol.md: no_face, unknown_avatar, busy, ...)."""

    code: str = "internal"


@dataclass
class ServiceStats:
    """What a bench or a test reads: added latency per speech chunk, frames pushed, chunks that found no face."""

    added_ms: list[float] = field(default_factory=list)  # TTS chunk in -> its first sample out
    frames: int = 0
    first_frame_at: float | None = None
    last_frame_at: float | None = None
    speech_without_face: int = 0
    speaks: int = 0
    clears: int = 0
    turn: str | None = None  # the turn state the engine last reported (user_speech, user_audio, set_turn replies)


def _mono(audio: bytes, channels: int) -> np.ndarray:
    pcm = np.frombuffer(audio, "<i2")
    if channels > 1:
        pcm = pcm[: len(pcm) // channels * channels].reshape(-1, channels).mean(axis=1).astype(np.int16)
    return pcm


def _photo_bytes(photo: str | Path | bytes) -> bytes:
    return photo if isinstance(photo, bytes) else Path(photo).read_bytes()


class LivePortraitVideoService(SpeechOut, FaceIn, Listening, AIService):
    """Our avatar's face for a pipecat pipeline: TTS audio in, the voice and its face out together.

    Args:
        command_addr: the engine's (or a cluster's) command address.
        frame_addr: the PUB address the avatar's frames come from.
        photo: a portrait (path or bytes) that becomes the avatar at start; or ``avatar``, an id the engine holds
            (default: the engine's bundled portrait).
        fps: the avatar's frame rate; give the transport's ``video_out_framerate``.
        width, height: the size of the frames pushed (the transport's ``video_out_width`` / ``_height``); the
            engine's frame is cut to that aspect around its centre and scaled. None: the engine's size.
        framing: asked of the engine's ``stream`` (``full`` | ``head`` | ``face``) with ``width`` x ``height``, where
            it supports it (an even size, 64..1920); frames of another size are cut and scaled here.
        user_audio: send the user's voice while they speak (``user_audio``) for the listening face.
        lead_s: how long after its first chunk arrives an utterance starts (the mouth analysis' look-ahead).
        video_delay_ms: how long each frame waits after its voice has been pushed: the extra delay the
            transport and the browser put on the voice and not on the video (docs/pipecat.md, "A/V at the
            browser"); 0: pushed together, in sync at the service's output.
        timeout_ms: each command's wait at run time (twice, then the engine is taken as away: the voice goes on
            without its face until the engine answers again).
        start_timeout_s: how long start waits for the engine to be ready and for the photo to become an avatar.
    """

    def __init__(self, *, command_addr: str = "tcp://127.0.0.1:5555", frame_addr: str = "tcp://127.0.0.1:5556",
                 photo: str | Path | bytes | None = None, avatar: str = "default", fps: float = 25.0,
                 width: int | None = None, height: int | None = None, framing: str | None = None,
                 user_audio: bool = True, lead_s: float = LEAD_S, video_delay_ms: float = 0.0,
                 timeout_ms: int = 1000, start_timeout_s: float = 30.0, **kwargs: Any) -> None:
        super().__init__(settings=ServiceSettings(model=None), **kwargs)
        self._command_addr, self._frame_addr = command_addr, frame_addr
        self._photo, self._avatar = photo, avatar
        self._fps, self._size, self._framing = float(fps), (width, height), framing
        self._send_user_audio, self._timeout_ms, self._lead_s = user_audio, timeout_ms, float(lead_s)
        self._start_timeout_s = start_timeout_s
        self._video_delay_s = max(0.0, float(video_delay_ms)) / 1000.0
        # frames waiting for their voice to leave the transport (audio_probe) or for video_delay_ms:
        # (voice mark s, clock generation, monotonic due, image)
        self._delayed: asyncio.Queue = asyncio.Queue()
        self._clock = AudioOutClock()
        self._paced = False  # True once audio_probe() is in the pipeline
        self._client: AsyncEngineClient | None = None
        self._sub: AsyncFrameSubscriber | None = None
        self._offset = 0.0  # engine time = time.monotonic() + offset
        self._face_delay = 0.1  # engine seconds from a frame's ts to its arrival here (EWMA)
        self._held = HeldSpeech()
        self._speech_q: asyncio.Queue[_Speech | _Marker] = asyncio.Queue()
        self._gen = 0  # raised by each interruption: speech of an older generation is dropped
        self._utterance_open = False  # the next speech appends to the current utterance
        self._speech_end = 0.0  # engine time the speech sent so far ends
        self._marks: list[dict[str, Any]] = []
        self._user_speaking = False
        self._user_pcm: list[np.ndarray] = []
        self._user_rate = 16000
        self._unsupported: set[str] = set()
        self._live = False  # the engine is there and streaming: audio is held for its face
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = ServiceStats()

    @property
    def avatar(self) -> str:
        return self._avatar

    def engine_now(self) -> float:
        return time.monotonic() + self._offset

    def audio_probe(self) -> AudioOutProbe:
        """A processor for right after ``transport.output()``: with it each frame leaves when the transport has
        handed its voice to the audio track (the voice's clock), not when the voice was pushed."""
        self._paced = True
        return AudioOutProbe(self._clock)

    # lifecycle

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._client = AsyncEngineClient(self._command_addr, timeout_ms=self._timeout_ms, retries=1)
        try:
            await self._client.wait_ready(timeout_s=self._start_timeout_s)
            if self._photo is not None:
                try:
                    self._avatar = str((await self._client.call(
                        "set_source", image=_photo_bytes(self._photo),
                        timeout_ms=int(self._start_timeout_s * 1000)))["avatar"])
                except EngineClientError as exc:
                    await self._report(exc, f"the photo did not become an avatar; using {self._avatar!r}")
            await self._begin()
        except (EngineClientError, OSError) as exc:
            await self._report(exc, "no avatar: the voice goes on without a face")
            return
        self._sub = AsyncFrameSubscriber(self._frame_addr, self._avatar, hwm=8)
        self._live = True
        self._tasks = [self.create_task(self._speech_loop(), "liveportrait-speech"),
                       self.create_task(self._media_loop(), "liveportrait-media")]
        if self._video_delay_s > 0 or self._paced:
            self._tasks.append(self.create_task(self._delayed_loop(), "liveportrait-video-delay"))

    async def _begin(self) -> None:
        """Start the avatar's stream and measure the clock (at start, and again when the engine is back)."""
        assert self._client is not None
        # the engine frames the face at the transport's size where it can (stream's framing); an engine
        # without it ignores the fields and the frames are cut here (_image)
        framing = ({"framing": self._framing, "width": self._size[0], "height": self._size[1]}
                   if self._framing else {})
        reply = await self._client.call("stream", avatar=self._avatar, fps=self._fps, **framing)
        self._avatar = str(reply.get("avatar", self._avatar))
        self._offset = (await self._client.clock_offset()).offset

    async def _lost(self, exc: EngineClientError) -> None:
        """The engine stopped answering: the voice held for it goes out now, the next goes through as it comes,
        and the face comes back when the engine does (``_recover``)."""
        if not self._live:
            return
        self._live = False
        self._utterance_open = False
        await self._report(exc, "the engine is away: the voice goes on without a face until it is back")
        due = self._held.release(float("inf"))
        for seg in due.audio:
            await self.push_frame(TTSAudioRawFrame(audio=seg.pcm.astype("<i2").tobytes(), sample_rate=seg.rate,
                                                   num_channels=1))
        for item in due.frames:
            await self.push_frame(item)
        self._tasks.append(self.create_task(self._recover(), "liveportrait-recover"))

    async def _recover(self) -> None:
        assert self._client is not None
        while True:
            await asyncio.sleep(RECOVER_S)
            try:
                await self._client.health(timeout_ms=1000)
                await self._begin()
            except EngineClientError:
                continue
            logger.info(f"{self}: the engine is back; the face too")
            self._live = True
            return

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._close(stop_stream=self._photo is not None)

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._close(stop_stream=self._photo is not None)

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._close(stop_stream=False)

    async def _close(self, stop_stream: bool) -> None:
        """Stop the tasks and sockets; the stream too when the avatar is this service's own photo (an avatar
        named by id, or the default one, may be streaming for other bots)."""
        self._live = False
        for task in self._tasks:
            await self.cancel_task(task)
        self._tasks = []
        if self._client is not None:
            if stop_stream:
                with contextlib.suppress(EngineClientError):
                    await self._client.stream(self._avatar, 0)
            await self._client.aclose()
            self._client = None
        if self._sub is not None:
            await self._sub.aclose()
            self._sub = None

    # frames in

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            if not self._live:
                await self.push_frame(frame, direction)
                return
            self._speech_q.put_nowait(_Speech(_mono(frame.audio, frame.num_channels), frame.sample_rate,
                                              time.monotonic(), self._gen))
            return
        if isinstance(frame, AvatarEmotionFrame):
            if self._live:
                self._speech_q.put_nowait(_Marker(frame, self._gen))
            return
        if isinstance(frame, TTSStoppedFrame) and self._live:
            self._speech_q.put_nowait(_Marker(frame, self._gen))
            return
        if isinstance(frame, TTSStartedFrame) and self._live:
            self._speech_q.put_nowait(_Marker(frame, self._gen))
            return
        if isinstance(frame, InterruptionFrame):
            await self._interrupt()
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._user_speaking, self._user_pcm = True, []
            await self._conversation("user_speech", speaking=True)
        elif isinstance(frame, UserStoppedSpeakingFrame):
            await self._flush_user_audio()
            self._user_speaking = False
            await self._conversation("user_speech", speaking=False)
            await self._conversation("set_turn", state="thinking")
        elif isinstance(frame, InputAudioRawFrame):
            if self._user_speaking and self._send_user_audio:
                self._user_rate = frame.sample_rate
                self._user_pcm.append(_mono(frame.audio, frame.num_channels))
                if sum(len(p) for p in self._user_pcm) >= USER_AUDIO_CHUNK_S * self._user_rate:
                    await self._flush_user_audio()
        elif isinstance(frame, BotStartedSpeakingFrame):
            await self._conversation("set_turn", state="speaking")
        elif isinstance(frame, BotStoppedSpeakingFrame) and not self._user_speaking:
            await self._conversation("set_turn", state="idle")
        await self.push_frame(frame, direction)

    async def _interrupt(self) -> None:
        """Barge-in: the face stops at once and the voice held for it is never heard."""
        self._gen += 1
        self._utterance_open = False
        self._marks = []
        while not self._speech_q.empty():
            self._speech_q.get_nowait()
        self._held.drop()
        self._clock.rebase()  # the transport drops the voice it had queued: frames waiting for it go now
        if self._live:
            await self._clear()

    async def _clear(self) -> None:
        assert self._client is not None
        self.stats.clears += 1
        try:
            await self._client.clear(self._avatar)
        except EngineClientError as exc:
            await self._report(exc, "clear failed")

    # errors

    async def _report(self, exc: Exception, what: str) -> None:
        code = getattr(exc, "code", "internal")
        logger.warning(f"{self}: {what}: {code}: {exc}")
        category = ErrorCategory.CONNECTIVITY if code in ("engine_unavailable", "busy") else ErrorCategory.APPLICATION
        await self.push_error_frame(LivePortraitErrorFrame(error=f"liveportrait {code}: {what}: {exc}", code=code,
                                                           exception=exc, category=category))
