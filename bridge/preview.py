"""The live preview page at /preview: the avatar's frame stream in a browser, and the controls to drive it.

Why two stream transports: the page draws frames from a WebSocket onto a canvas (``/preview/ws``), which lets it read
every frame's header (ts, render_ms, late, renderer) and measure glass-to-glass delay; ``/preview/stream.mjpeg``
(``multipart/x-mixed-replace``) is the plain-``<img>`` alternative. ``bench/bench_preview.py`` measures both the
same way (a visible change's engine frame time -> the browser's paint); the page uses the WebSocket by default and
``?transport=mjpeg`` switches it.

The browser never speaks msgpack: it sends small JSON commands, which are checked here against a whitelist of
commands and field types before they reach the engine; whatever it sends, the answer is JSON: ``{"ok": true, ...}``,
or the bridge's one error shape ``{"error": {"code", "message"}}`` with a 4xx/5xx status (bridge/errors.py). The
page is a bridge ``Feature`` (``PREVIEW``): its routes, their OpenAPI rows, no options of its own.
Everything protocol-side goes through engine/client/: commands over the bridge's ``EngineLink`` (its pools, its
down-detection), frames through ``AsyncFrameSubscriber.recv_latest``, the clock through ``clock_offset``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.app import Bridge
from bridge.config import BridgeSettings
from bridge.engine_client import EngineLink
from bridge.feature import AVATAR_RE, Feature
from bridge.forms import read_body
from bridge.openapi import BUSY, Answer, Operation
from engine.client import BadReply, Frame
from engine.constants import MAX_AUDIO_SECONDS
from engine.errors import AudioTooLong, BadRequest, Busy, EngineError, ImageTooLarge, UnknownCommand
from engine.wav import read_header

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_VIEWERS = 8  # each viewer holds a SUB socket and copies every frame: bounded so no browser can exhaust the bridge
MAX_COMMAND_BYTES = 64 * 1024
MAX_CONTROLS = 64
MJPEG_BOUNDARY = "lpframe"
CLOCK_PROBES = 3
FRAME_POLL_MS = 1000  # how often a stream with no frames checks that the bridge is not shutting down

# Commands the page may send, with each field's type; "avatar" is required on all of them.
Number = (int, float)
COMMANDS: dict[str, dict[str, tuple[type, ...]]] = {
    "set_expression": {"expression": (str,), "intensity": Number, "transition_ms": Number},
    "set_controls": {"controls": (dict,), "transition_ms": Number, "smooth": (bool,)},
    "set_idle": {"enabled": (bool,), "seed": (int,)},
    "stream": {"fps": Number},
    "clear": {},
    "set_turn": {"state": (str,), "transition_ms": Number},
    # the browser's microphone: 16-bit PCM as base64 (JSON has no bytes), decoded here; the engine analyses and drops it
    "user_audio": {"audio": (str,), "sample_rate": (int,), "interrupt": (bool,)},
    "user_speech": {"speaking": (bool,), "interrupt": (bool,)},
}
PAGE_COMMANDS = ", ".join(COMMANDS)


# The OpenAPI rows of preview_routes (create_app's extra_operations). /preview/ws is not a row: OpenAPI 3.1 has no
# WebSocket operations, so it is described in /preview's row, and tests/service/test_openapi.py checks HTTP routes only.
# /preview/static/* are the page's files (a Mount), like /docs/assets.
PAGE_JSON = {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}}
ERR_400 = Answer(400, "a bad avatar id, field, type or command (the whitelist), or a body that is not JSON")
ERR_413 = Answer(413, "the body is over the limit")
ERR_500 = Answer(500, "a bug (logged)")
WS_NOTE = ("The frame stream is the WebSocket /preview/ws?avatar=ID[&jpeg=0] (not an OpenAPI operation): one binary "
           "message per frame, a u32 big-endian header length, the frame header as JSON (seq, ts on the engine "
           "clock, render_ms, late, renderer, bridge_wall), then the JPEG. Refusals are close codes: 1008 bad "
           "avatar, 1013 too many viewers or the bridge starting. ?transport=mjpeg switches the page to "
           "/preview/stream.mjpeg.")
PREVIEW_OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/preview", "The live preview page: the avatar's frame stream and controls to drive it", (
        Answer(200, "HTML page (its files under /preview/static/)", "text/html", {"type": "string"}),),
        description=WS_NOTE),
    Operation("get", "/preview/api/info", "What the page needs to start: renderer, presets, controls, avatars, "
              "clock offset", (Answer(200, "the engine's presets, controls and avatars", schema=PAGE_JSON),
                               ERR_500, BUSY)),
    Operation("get", "/preview/api/clock", "Unix time minus engine time, for the page's delay figures", (
        Answer(200, "offset_s and the probe's rtt_ms", schema={
            "type": "object", "required": ["ok", "offset_s", "rtt_ms"], "properties": {
                "ok": {"const": True}, "offset_s": {"type": "number"}, "rtt_ms": {"type": "number"}}}),
        ERR_500, BUSY)),
    Operation("get", "/preview/api/stats", "One avatar's stream figures from the engine's health reply", (
        Answer(200, "renderer, engine now, the avatar's stream, frame timings", schema=PAGE_JSON),
        ERR_400, ERR_500, BUSY)),
    Operation("post", "/preview/api/command", "A whitelisted engine command as JSON: " + PAGE_COMMANDS
              + " (user_audio's audio as base64 int16 PCM)", (
                  Answer(200, "the engine's reply (bytes given as their size)", schema=PAGE_JSON),
                  ERR_400, Answer(404, "unknown avatar"), ERR_413, ERR_500, BUSY),
              {"required": True, "content": {"application/json": {"schema": {
                  "type": "object", "required": ["cmd", "avatar"], "properties": {
                      "cmd": {"enum": list(COMMANDS)},
                      "avatar": {"type": "string", "pattern": AVATAR_RE.pattern}}}}}}),
    Operation("post", "/preview/api/source", "Upload a portrait (the raw image bytes): it becomes an avatar", (
        Answer(200, "the engine's set_source reply: the new avatar", schema=PAGE_JSON),
        ERR_400, ERR_413, Answer(422, "no face in the image"), ERR_500, BUSY),
              {"required": True, "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}}),
    Operation("post", "/preview/api/speak", "Make an avatar talk: a WAV body for the engine's speak command", (
        Answer(200, "the engine's speak reply", schema=PAGE_JSON),
        Answer(400, "a bad avatar id, or an engine that does not know speak yet"),
        Answer(404, "unknown avatar"), ERR_413, Answer(415, "not a WAV file"), ERR_500, BUSY),
              {"required": True, "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}}),
    Operation("get", "/preview/stream.mjpeg", "One avatar's frames as MJPEG (for a plain <img>)", (
        Answer(200, "multipart/x-mixed-replace of JPEG parts (X-Frame-Seq, X-Frame-Ts)",
               f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}", {"type": "string", "format": "binary"}),
        ERR_400, ERR_500, Answer(503, "too many viewers, or the bridge is starting"))),
)


@dataclass
class Viewers:
    """Open stream connections (WebSocket or MJPEG), counted against MAX_VIEWERS."""

    count: int = 0
    limit: int = MAX_VIEWERS
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def enter(self) -> bool:
        async with self.lock:
            if self.count >= self.limit:
                return False
            self.count += 1
            return True

    async def leave(self) -> None:
        async with self.lock:
            self.count -= 1


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def _jsonable(value: Any) -> Any:
    """Engine replies may hold bytes (a frame, an image): the page never needs them, so they become their size."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return {"bytes": len(value)}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_avatar(raw: object) -> str:
    if not isinstance(raw, str) or not AVATAR_RE.match(raw):
        raise BadRequest("avatar must be an avatar id (letters, digits, '-', '_'; 1-64)")
    return raw


def check_command(body: object) -> dict[str, Any]:
    """The page's JSON command -> ``{"cmd", "avatar", fields...}`` for the engine, or BadRequest. Ranges are the
    engine's to check."""
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object")
    cmd = body.get("cmd")
    if not isinstance(cmd, str) or cmd not in COMMANDS:
        raise UnknownCommand(f"cmd must be one of {sorted(COMMANDS)}")
    fields = COMMANDS[cmd]
    message: dict[str, Any] = {"cmd": cmd, "avatar": check_avatar(body.get("avatar"))}
    for key, value in body.items():
        if key in ("cmd", "avatar"):
            continue
        if key not in fields:
            raise BadRequest(f"{cmd} takes no field {key!r}")
        types = fields[key]
        if isinstance(value, bool) and bool not in types:
            raise BadRequest(f"{key} must be a number, not a boolean")
        if not isinstance(value, types):
            raise BadRequest(f"{key} has the wrong type")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest(f"{key} must be finite")
        message[key] = value
    if cmd == "user_audio":
        try:
            message["audio"] = base64.b64decode(message.get("audio", ""), validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("audio must be base64 (int16 little-endian mono PCM)") from None
    controls = message.get("controls")
    if controls is not None:
        if not controls or len(controls) > MAX_CONTROLS:
            raise BadRequest(f"controls must name 1-{MAX_CONTROLS} controls")
        for name, value in controls.items():
            if not isinstance(name, str) or isinstance(value, bool) or not isinstance(value, Number) \
                    or not math.isfinite(value):
                raise BadRequest("controls must map control names to finite numbers")
    return message


def bridge_of(conn: HTTPConnection) -> Bridge:
    return conn.app.state.bridge


def bridge_link(conn: HTTPConnection) -> EngineLink:
    """The bridge's engine link (made in create_app's lifespan); 503 while the bridge starts or stops."""
    return bridge_of(conn).link


async def newest_frames(link: EngineLink, addr: str, avatar: str) -> AsyncIterator[Frame]:
    """Yield one avatar's frames, newest first: frames that queued while we were slow are skipped (recv_latest),
    so a slow browser sees a lower rate, never a growing delay. A malformed frame is skipped, never fatal."""
    async with link.work.subscribe(addr, avatar) as sub:
        while True:
            try:
                frame = await sub.recv_latest(FRAME_POLL_MS)
            except BadReply:
                continue
            if frame is None:
                if link.closing:
                    return
                continue
            if frame.avatar == avatar:  # ZMQ subscriptions are prefixes: frame.ab would also match frame.abc
                yield frame


class PreviewRoutes:
    """The page, its static assets, its command endpoints and its two stream transports (for create_app's
    ``extra_routes``; their OpenAPI rows are ``PREVIEW_OPERATIONS``). One method per route."""

    def __init__(self, settings: BridgeSettings) -> None:
        self.settings = settings
        self.viewers = Viewers()

    async def call(self, request: Request, cmd: str, **fields: Any) -> dict[str, Any]:
        """One engine command through the bridge's link (its errors are answered by bridge/errors.py)."""
        link = bridge_link(request)
        return await link.run(link.work.call(cmd, **fields))

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "preview.html", headers={"Cache-Control": "no-store"})

    async def clock_offset(self, request: Request) -> dict[str, float]:
        """Unix time minus engine time (seconds): the page maps a frame's ``ts`` (engine clock) onto Date.now().
        The client measures engine = bridge monotonic + offset; the bridge's wall-minus-monotonic turns that into
        the wall clock the browser shares."""
        link = bridge_link(request)
        measured = await link.run(link.probes.clock_offset(CLOCK_PROBES))
        wall_minus_monotonic = time.time() - time.monotonic()
        return {"offset_s": wall_minus_monotonic - measured.offset, "rtt_ms": measured.rtt * 1000.0}

    async def info(self, request: Request) -> Response:
        expressions = await self.call(request, "expressions")
        avatars = await self.call(request, "list_avatars")
        return _json({"ok": True, "renderer": expressions.get("renderer"),
                      "expressions": _jsonable(expressions.get("expressions", [])),
                      "intensities": _jsonable(expressions.get("intensities", {})),
                      "controls": _jsonable(expressions.get("controls", [])),
                      "default_avatar": avatars.get("default"), "avatars": _jsonable(avatars.get("avatars", [])),
                      "clock": await self.clock_offset(request)})

    async def clock(self, request: Request) -> Response:
        return _json({"ok": True, **await self.clock_offset(request)})

    async def stats(self, request: Request) -> Response:
        avatar = check_avatar(request.query_params.get("avatar"))
        reply = await self.call(request, "health", timeout_ms=self.settings.health_timeout_ms)
        streams = reply.get("streams") or {}
        return _json({"ok": True, "renderer": reply.get("renderer"), "now": reply.get("now"),
                      "stream": _jsonable(streams.get(avatar)), "frames": _jsonable(reply.get("frames", {})),
                      "turn": (reply.get("turns") or {}).get(avatar)})

    async def command(self, request: Request) -> Response:
        body = await read_body(request, MAX_COMMAND_BYTES, bridge_of(request).limits)
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body must be JSON") from None
        return _json(_jsonable(await self.call(request, **check_command(parsed))))

    async def source(self, request: Request) -> Response:
        """The uploaded portrait's bytes as the body (what a file input's File is): it becomes an avatar."""
        image = await read_body(request, self.settings.max_upload_bytes, bridge_of(request).limits, ImageTooLarge)
        if not image:
            raise BadRequest("send the portrait's bytes as the request body")
        return _json(_jsonable(await self.call(request, "set_source", image=image)))

    async def speak(self, request: Request) -> Response:
        """Make it talk: a WAV body for the engine's ``speak`` command (its header checked here first)."""
        avatar = check_avatar(request.query_params.get("avatar"))
        audio = await read_body(request, self.settings.max_upload_bytes, bridge_of(request).limits, AudioTooLong)
        read_header(audio, MAX_AUDIO_SECONDS)  # 415 not a WAV, 400 a broken one, 413 too long: before a round trip
        return _json(_jsonable(await self.call(request, "speak", avatar=avatar, audio=audio, format="wav")))

    async def mjpeg(self, request: Request) -> Response:
        avatar = check_avatar(request.query_params.get("avatar"))
        link = bridge_link(request)
        if not await self.viewers.enter():
            raise Busy(f"at most {self.viewers.limit} streams at once")

        async def parts() -> AsyncIterator[bytes]:
            try:
                async for frame in newest_frames(link, self.settings.frame_addr, avatar):
                    yield (f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
                           f"X-Frame-Seq: {frame.seq}\r\nX-Frame-Ts: {frame.ts}\r\n\r\n").encode() \
                        + frame.jpeg + b"\r\n"
            finally:
                await self.viewers.leave()

        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})

    async def websocket(self, ws: WebSocket) -> None:
        """One binary message per frame: u32 big-endian header length, the header as JSON, the JPEG (left out with
        ``jpeg=0``: the MJPEG page's figures)."""
        with_jpeg = ws.query_params.get("jpeg", "1") != "0"
        entered = False
        try:
            await ws.accept()  # then refusals are close codes the page can read, not a bare 403 handshake
            try:
                avatar = check_avatar(ws.query_params.get("avatar"))
            except BadRequest as err:
                await ws.close(code=1008, reason=err.message[:120])
                return
            try:
                link = bridge_link(ws)
            except EngineError as err:
                await ws.close(code=1013, reason=err.message[:120])
                return
            entered = await self.viewers.enter()
            if not entered:
                await ws.close(code=1013, reason=f"at most {self.viewers.limit} streams at once")
                return

            await self._pump(ws, link, avatar, with_jpeg)
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            pass
        except Exception:
            log.exception("preview websocket failed")
        finally:
            if entered:
                await self.viewers.leave()

    async def _pump(self, ws: WebSocket, link: EngineLink, avatar: str, with_jpeg: bool) -> None:
        """Frames out until either side ends: the send loop, and a receive loop that notices the page leaving."""
        async def send() -> None:
            async for frame in newest_frames(link, self.settings.frame_addr, avatar):
                header = _jsonable(frame.header)
                header["bridge_wall"] = time.time()
                head = json.dumps(header).encode()
                await ws.send_bytes(struct.pack(">I", len(head)) + head + (frame.jpeg if with_jpeg else b""))

        async def receive() -> None:  # the page sends nothing; this notices it leaving
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass

        tasks = [asyncio.create_task(send()), asyncio.create_task(receive())]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:  # a closed socket ends send() with an error: expected, not logged
            if not task.cancelled():
                task.exception()
        for task in pending:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/preview", self.page, methods=["GET"]),
            Route("/preview/api/info", self.info, methods=["GET"]),
            Route("/preview/api/clock", self.clock, methods=["GET"]),
            Route("/preview/api/stats", self.stats, methods=["GET"]),
            Route("/preview/api/command", self.command, methods=["POST"]),
            Route("/preview/api/source", self.source, methods=["POST"]),
            Route("/preview/api/speak", self.speak, methods=["POST"]),
            Route("/preview/stream.mjpeg", self.mjpeg, methods=["GET"]),
            WebSocketRoute("/preview/ws", self.websocket),
            Mount("/preview/static", app=StaticFiles(directory=STATIC), name="preview_static"),
        ]


def preview_routes(settings: BridgeSettings) -> list[BaseRoute]:
    """The preview's routes alone (for create_app's ``extra_routes``; ``PREVIEW`` is the same as a feature)."""
    return PreviewRoutes(settings).routes()


PREVIEW = Feature("preview", routes=lambda bridge: preview_routes(bridge.settings), operations=PREVIEW_OPERATIONS)
