"""A talking avatar bot in the browser, on this machine alone: no API key, no network, no GPU.

    make bot            # or: python examples/pipecat_bot.py --start-engine
    open http://127.0.0.1:7860/  (click Connect, allow the microphone, say something)

http://127.0.0.1:7860/client/ is pipecat's prebuilt page (pipecat-ai-small-webrtc-prebuilt), with transcripts and
metrics; its device manager (daily-js) loads a script from c.daily.co, so it needs that host. / is our own small
page that needs nothing from outside.

The pipeline, top to bottom:

    SmallWebRTCTransport input      the browser's microphone (WebRTC, peer to peer, aiortc)
    VADProcessor(SileroVADAnalyzer) when the user speaks (Silero's model ships in pipecat's wheel)
    UserTurnProcessor               user turns from the VAD; a user who starts speaking interrupts the bot
    ScriptedReply                   <- THE PLACE FOR A REAL STT + LLM: here a scripted line per user turn,
                                       sent as an LLM would send it (LLMTextFrames, with [emotion] tags)
    LivePortraitEmotionTags         [happy] tags out of the text, onto the face
    EspeakTTSService                a local TTS (espeak-ng); any pipecat TTS service can replace it
    LivePortraitVideoService        the avatar: the voice and its face, in sync
    SmallWebRTCTransport output     video + audio to the browser

To use a real assistant, replace ``ScriptedReply(...)`` by your STT, context aggregators and LLM, e.g.
``stt, context_aggregator.user(), llm`` and put ``context_aggregator.assistant()`` after the transport output; tell
the LLM in its system prompt that it may start a sentence with one of [happy] [sad] [surprised] [neutral].
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import uvicorn
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import HTMLResponse
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.turns.user_start.vad_user_turn_start_strategy import VADUserTurnStartStrategy
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_processor import UserTurnProcessor
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner
from pipecat_ai_small_webrtc_prebuilt.frontend import SmallWebRTCPrebuiltUI

from engine.integrations.pipecat import LivePortraitEmotionTags, LivePortraitVideoService

ROOT = Path(__file__).resolve().parents[1]
# each frame waits this long after its voice: the voice's extra delay through SmallWebRTC's output and the
# browser's jitter buffer, measured with bench/bench_pipecat.py (docs/pipecat.md, "A/V at the browser")
VIDEO_DELAY_MS = 0.0
PAGE = Path(__file__).with_name("pipecat_page.html")  # our own page: plain WebRTC, works offline
SCRIPT = (
    "[happy] Hello! I am your avatar, and I run on this machine, with no key and no cloud.",
    "[surprised] Oh, you want to hear more? Talk to me, and I will answer with the next line of my script.",
    "[sad 0.6] I cannot understand words yet. Plug a speech recogniser and a language model in, where my script is.",
)


class EspeakTTSService(TTSService):
    """Text to speech with espeak-ng (a local process, no network): its WAV on stdout, streamed as it comes."""

    def __init__(self, *, voice: str = "en-us", speed: int = 150, **kwargs: object) -> None:
        super().__init__(settings=TTSSettings(model=None, voice=voice, language=None), **kwargs)
        self._voice, self._speed = voice, speed

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        proc = await asyncio.create_subprocess_exec(
            "espeak-ng", "-v", self._voice, "-s", str(self._speed), "--stdout", text,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert proc.stdout is not None

        async def chunks() -> AsyncGenerator[bytes, None]:
            while data := await proc.stdout.read(8192):
                yield data

        try:
            await self.start_tts_usage_metrics(text)
            async for frame in self._stream_audio_frames_from_iterator(chunks(), strip_wav_header=True,
                                                                       context_id=context_id):
                await self.stop_ttfb_metrics()
                yield frame
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()


class ScriptedReply(FrameProcessor):
    """Stands in for STT + LLM: after each user turn, the next line of a script, word by word like an LLM."""

    def __init__(self, lines: tuple[str, ...] = SCRIPT, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._lines, self._turn = lines, 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, UserStoppedSpeakingFrame):
            line = self._lines[self._turn % len(self._lines)]
            self._turn += 1
            await self.push_frame(LLMFullResponseStartFrame())
            for word in line.split(" "):
                await self.push_frame(LLMTextFrame(text=word + " "))
            await self.push_frame(LLMFullResponseEndFrame())


def build_pipeline(connection: SmallWebRTCConnection, args: argparse.Namespace) -> tuple[Pipeline, object]:
    transport = SmallWebRTCTransport(webrtc_connection=connection, params=TransportParams(
        audio_in_enabled=True, audio_out_enabled=True, video_out_enabled=True, video_out_is_live=True,
        video_out_width=args.width, video_out_height=args.height, video_out_framerate=args.fps))
    avatar = LivePortraitVideoService(command_addr=args.command_addr, frame_addr=args.frame_addr, photo=args.photo,
                                      fps=args.fps, width=args.width, height=args.height, framing=args.framing,
                                      video_delay_ms=args.video_delay_ms)
    turns = UserTurnProcessor(user_turn_strategies=UserTurnStrategies(
        start=[VADUserTurnStartStrategy()],
        stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.3, wait_for_transcript=False)]))
    pipeline = Pipeline([
        transport.input(),
        VADProcessor(vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=0.3))),
        turns,
        ScriptedReply(tuple(args.line) if args.line else SCRIPT),  # <- your STT + LLM here
        LivePortraitEmotionTags(),
        EspeakTTSService(),
        avatar,
        transport.output(),
        *([] if args.no_voice_clock else [avatar.audio_probe()]),  # each frame waits for its voice to leave
    ])
    return pipeline, transport


async def run_bot(connection: SmallWebRTCConnection, args: argparse.Namespace) -> None:
    pipeline, transport = build_pipeline(connection, args)
    worker = PipelineWorker(pipeline, params=PipelineParams(audio_out_sample_rate=24000))

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport: object, _client: object) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def create_app(args: argparse.Namespace) -> FastAPI:
    """Our page at /, pipecat's prebuilt page at /client/, and the endpoints both call: /start, then
    /sessions/{id}/api/offer. The prebuilt page's device manager (daily-js) loads a bundle from c.daily.co: it
    needs that host; our page needs nothing from outside."""
    app = FastAPI()
    handler = SmallWebRTCRequestHandler()  # no ICE servers: host candidates only, nothing outside is contacted
    sessions: set[asyncio.Task[None]] = set()

    @app.get("/")
    async def root() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    @app.post("/start")
    async def start(request: Request) -> dict[str, object]:
        return {"sessionId": str(uuid.uuid4()), "iceConfig": {"iceServers": []}}

    @app.post("/sessions/{session_id}/api/offer")
    async def offer(session_id: str, request: Request, background: BackgroundTasks) -> dict[str, str] | None:
        body = await request.json()
        req = SmallWebRTCRequest(sdp=body["sdp"], type=body["type"], pc_id=body.get("pc_id"),
                                 restart_pc=body.get("restart_pc"))

        async def connected(connection: SmallWebRTCConnection) -> None:
            task = asyncio.create_task(run_bot(connection, args))
            sessions.add(task)
            task.add_done_callback(sessions.discard)

        return await handler.handle_web_request(request=req, webrtc_connection_callback=connected)

    @app.patch("/sessions/{session_id}/api/offer")
    async def candidates(session_id: str, request: Request) -> dict[str, str]:
        body = await request.json()
        await handler.handle_patch_request(SmallWebRTCPatchRequest(
            pc_id=body["pc_id"], candidates=[IceCandidate(**c) for c in body.get("candidates", [])]))
        return {"status": "success"}

    app.mount("/client", SmallWebRTCPrebuiltUI)
    return app


@contextlib.contextmanager
def engine_process(args: argparse.Namespace) -> Iterator[None]:
    """The engine as a child process (``--start-engine``), stopped with the bot."""
    if not args.start_engine:
        yield
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "--command-addr", args.command_addr,
                             "--frame-addr", args.frame_addr], cwd=ROOT, env=env)
    try:
        from engine.client import EngineClient
        with EngineClient(args.command_addr, timeout_ms=1000) as client:
            client.wait_ready(timeout_s=120)
        if proc.poll() is not None:
            raise SystemExit(f"the engine exited ({proc.returncode}): is {args.command_addr} already in use?")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--command-addr", default=os.environ.get("LP_COMMAND_ADDR", "tcp://127.0.0.1:5555"))
    p.add_argument("--frame-addr", default=os.environ.get("LP_FRAME_ADDR", "tcp://127.0.0.1:5556"))
    p.add_argument("--photo", default=None, help="a portrait for the avatar (default: the engine's bundled one)")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    # the transport's video_out_framerate and the avatar's stream rate (docs/pipecat.md: the A/V offset measured)
    p.add_argument("--fps", type=float, default=25.0)
    # the voice's extra delay through SmallWebRTC and the browser (docs/pipecat.md, "A/V at the browser")
    p.add_argument("--video-delay-ms", type=float, default=VIDEO_DELAY_MS,
                   help="hold each frame this long after its voice (the A/V offset at the browser)")
    p.add_argument("--no-voice-clock", action="store_true",
                   help="push each frame with its voice, not when the transport has taken that voice")
    p.add_argument("--framing", default="head", choices=("full", "head", "face"),
                   help="what the frames show: the whole photo, head and shoulders, or the face")
    p.add_argument("--line", action="append", help="a scripted reply (repeat for several; default: the demo's)")
    p.add_argument("--start-engine", action="store_true", help="start the engine as a child process")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with engine_process(args):
        logger.info(f"open http://{args.host}:{args.port}/ (started {time.strftime('%H:%M:%S')})")
        uvicorn.run(create_app(args), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
