"""The bridge's one body reader (a byte cap and a timeout, for every route that reads a body), and the multipart
forms of ``POST /api/render`` and ``/api/speak``, each field checked (typed errors from engine/errors.py).

An oversized body is still read (and dropped) up to ``max_discard_bytes`` before the 413 goes out: a client that
streams its upload without ``Expect: 100-continue`` (Python urllib/requests, Node fetch) would otherwise get a broken
pipe instead of the answer. Beyond that bound the 413 goes out at once and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect, Request

from bridge.errors import Abort
from engine.constants import MAX_CLIP_FPS, MIN_CLIP_FPS, validate_expression, validate_intensity
from engine.errors import (
    AudioTooLong,
    BadRequest,
    BodyTimeout,
    BodyTooLarge,
    EngineError,
    ImageTooLarge,
    InvalidImage,
    UnsupportedMediaType,
)

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small fields, on top of the image's own limit
# The formats the engine decodes (engine/face/intake.py); the bridge refuses the rest before a round trip.
IMAGE_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}
IMAGE_FORMATS = "JPEG, PNG or WebP"


MAX_AUDIO_BYTES = 16_000_000  # > 60 s of 48 kHz stereo 16-bit WAV, under the engine's message limit (20 MB)
CLIP_FPS = (MIN_CLIP_FPS, MAX_CLIP_FPS)


@dataclass(frozen=True)
class SpeakForm:
    image: bytes
    audio: bytes
    expression: str
    intensity: float
    fps: float
    speech_motion: float | None = None  # None: the engine's default (1.0)
    marks: list[Any] | None = None  # checked by the engine (engine/protocol.py parse_marks, check_marks)


MAX_MARKS_JSON = 64 * 1024


@dataclass(frozen=True)
class BodyLimits:
    max_image_bytes: int
    max_discard_bytes: int
    timeout_s: float


@dataclass(frozen=True)
class RenderForm:
    image: bytes
    expression: str
    intensity: float


def image_format(data: bytes) -> str | None:
    for magic, name in IMAGE_MAGIC.items():
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


async def read_body(request: Request, limit: int, limits: BodyLimits,
                    too_large: type[EngineError] = BodyTooLarge) -> bytes:
    """The one body reader of the bridge: the whole body, or a typed error. ``too_large`` (413) over ``limit``, after
    reading and dropping the rest up to ``max_discard_bytes`` (beyond it: answered at once and the connection
    closed); BodyTimeout (408, connection closed) past ``timeout_s``; BadRequest when the client goes away."""
    declared = request.headers.get("content-length")
    declared_size = int(declared) if declared is not None and declared.isdigit() else None
    refusal = too_large(f"request body is {declared_size or 'over'} bytes; the limit is {limit}")
    if declared_size is not None and declared_size > limits.max_discard_bytes:
        raise Abort(refusal)  # too big even to drain: answer now, drop the connection
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_discard_bytes:
                    raise Abort(refusal)
                if size <= limit:
                    chunks.append(chunk)
                else:
                    chunks.clear()  # keep reading so the client can finish sending, but hold nothing
    except TimeoutError:
        raise Abort(BodyTimeout(f"the request body did not arrive within {limits.timeout_s:g} s")) from None
    except ClientDisconnect:
        raise BadRequest("the client went away before sending the whole body") from None
    if size > limit or (declared_size is not None and declared_size > limit):
        raise refusal
    return b"".join(chunks)


async def drain(request: Request, limits: BodyLimits) -> None:
    """Read and drop a body we refuse anyway (bounded like any other), so the client receives our answer."""
    try:
        await read_body(request, 0, limits)
    except (Abort, BodyTooLarge) as exc:
        if not isinstance(exc.error if isinstance(exc, Abort) else exc, BodyTooLarge):
            raise


async def _parse_form(request: Request, limits: BodyLimits, limit: int, max_files: int) -> FormData:
    """The body read under its byte cap, then parsed; a malformed one is a 400 (not Starlette's plain-text error)."""
    body = await read_body(request, limit, limits, ImageTooLarge)

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=max_files, max_fields=8, max_part_size=limit)
    except Exception as exc:  # python-multipart's and Starlette's parse errors
        raise BadRequest(f"malformed multipart body: {exc}") from exc


async def read_render_form(request: Request, limits: BodyLimits) -> RenderForm:
    """Read the multipart body with a byte cap, then check each field (400/413/415 with a JSON body)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        await drain(request, limits)  # so the client receives the 415, not a broken pipe
        raise UnsupportedMediaType("send multipart/form-data with a 'source_image' file")
    form = await _parse_form(request, limits, limits.max_image_bytes + FORM_OVERHEAD, max_files=1)
    try:
        upload = form.get("source_image")
        if not isinstance(upload, UploadFile):
            raise BadRequest(f"missing file field 'source_image' (a {IMAGE_FORMATS} image)")
        image = await upload.read()
        if len(image) > limits.max_image_bytes:
            raise ImageTooLarge(f"image is {len(image)} bytes; the limit is {limits.max_image_bytes}")
        if image_format(image) is None:
            raise InvalidImage(f"source_image must be a {IMAGE_FORMATS} image")
        expression = validate_expression(form.get("expression", "neutral"))
        return RenderForm(image, str(expression), _intensity(form.get("intensity")))
    finally:
        await form.close()


def _intensity(raw: object) -> float:
    if raw is None or raw == "":
        return 1.0
    try:
        value = float(str(raw))
    except ValueError:
        raise BadRequest(f"intensity must be a number in 0.0-1.0, not {raw!r}") from None
    return validate_intensity(value)


async def read_speak_form(request: Request, limits: BodyLimits) -> SpeakForm:
    """``POST /api/speak``: ``source_image`` as for /api/render plus an ``audio`` WAV, ``fps`` (default 25),
    ``speech_motion`` (0-2) and ``marks`` (a JSON list of {t, expression, intensity?, controls?, transition_ms?})."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        await drain(request, limits)
        raise UnsupportedMediaType("send multipart/form-data with 'source_image' and 'audio'")
    form = await _parse_form(request, limits, limits.max_image_bytes + MAX_AUDIO_BYTES + FORM_OVERHEAD, max_files=2)
    try:
        upload, sound = form.get("source_image"), form.get("audio")
        if not isinstance(upload, UploadFile):
            raise BadRequest(f"missing file field 'source_image' (a {IMAGE_FORMATS} image)")
        if not isinstance(sound, UploadFile):
            raise BadRequest("missing file field 'audio' (a WAV file)")
        image, audio = await upload.read(), await sound.read()
        if len(image) > limits.max_image_bytes:
            raise ImageTooLarge(f"image is {len(image)} bytes; the limit is {limits.max_image_bytes}")
        if len(audio) > MAX_AUDIO_BYTES:
            raise AudioTooLong(f"audio is {len(audio)} bytes; the limit is {MAX_AUDIO_BYTES}")
        if image_format(image) is None:
            raise InvalidImage(f"source_image must be a {IMAGE_FORMATS} image")
        expression = validate_expression(form.get("expression", "neutral"))
        return SpeakForm(image, audio, str(expression), _intensity(form.get("intensity")), _fps(form.get("fps")),
                         _speech_motion(form.get("speech_motion")), _marks(form.get("marks")))
    finally:
        await form.close()


def _speech_motion(raw: object) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(str(raw))
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or not 0.0 <= value <= 2.0:
        raise BadRequest(f"speech_motion must be a number in 0.0-2.0, not {raw!r}")
    return value


def _marks(raw: object) -> list[Any] | None:
    """The ``marks`` field: a JSON list (its items are the engine's to check, with the audio's length)."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > MAX_MARKS_JSON:
        raise BadRequest(f"marks must be a JSON list of at most {MAX_MARKS_JSON} characters")
    shape = "marks must be a JSON list of {t, expression, intensity?, controls?, transition_ms?}"
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep for the JSON parser
        raise BadRequest(shape) from None
    if not isinstance(value, list):
        raise BadRequest(shape)
    return value


def _fps(raw: object) -> float:
    if raw is None or raw == "":
        return 25.0
    try:
        fps = float(str(raw))
    except ValueError:
        fps = float("nan")
    if not CLIP_FPS[0] <= fps <= CLIP_FPS[1]:
        raise BadRequest(f"fps must be a number in {CLIP_FPS[0]:g}-{CLIP_FPS[1]:g}, not {raw!r}")
    return fps
