"""HTTP routes: the seed contract exactly, plus /status, /metrics, /openapi.json and /docs.

- ``GET /health`` -> ``{"status": "ok"}``; 503 ``{"status": "unavailable", ...}`` when the engine does not answer.
- ``POST /api/render`` multipart ``source_image`` (JPEG/PNG/WebP), ``expression``, ``intensity`` -> ``image/jpeg``.
- ``GET /expressions`` -> ``{"expressions": [...], "intensities": {"min": 0.0, "max": 1.0}}``.

Every refusal is JSON ``{"error": {"code", "message"}}`` with a 4xx/5xx status, logged once with its code; nothing a
client sends may crash the process. The engine protocol itself lives in engine/client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bridge.config import BridgeSettings
from bridge.engine_client import EngineLink
from bridge.forms import BodyLimits, read_render_form, read_speak_form
from bridge.http import ClientError, json_bytes, log_error
from bridge.openapi import DOCS_HTML, DOCS_INIT_JS, Operation, openapi_document, swagger_assets
from engine.animation.presets import EXPRESSIONS
from engine.client import (
    EngineClientError,
    EngineReplyError,
    EngineUnavailable,
    HealthReply,
    Overloaded,
    build_message,
    check_reply,
)
from engine.errors import HTTP_STATUS, EngineError
from engine.protocol import MAX_AUDIO_SECONDS
from engine.speech import decode_audio

log = logging.getLogger(__name__)

RETRY_AFTER_S = "1"
CLIP_FRAME_BUDGET_S = 0.25  # engine time allowed per clip frame on top of --timeout-ms (draw + paste + H.264)
Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_bytes(body), status_code=status, media_type="application/json", headers=headers)


def error_response(err: ClientError, request: Request) -> Response:
    log_error(request.method, request.url.path, err.status, err.code, err.message)
    return json_response({"error": {"code": err.code, "message": err.message}}, err.status, err.headers)


def engine_error(exc: EngineClientError) -> ClientError:
    """The engine client's typed errors as HTTP: busy/unavailable are 503 with Retry-After."""
    retry = {"Retry-After": RETRY_AFTER_S}
    if isinstance(exc, Overloaded):
        return ClientError(503, "busy", exc.message, retry)
    if isinstance(exc, EngineUnavailable):
        return ClientError(503, "engine_unavailable", exc.message, retry)
    if isinstance(exc, EngineReplyError):
        status = HTTP_STATUS.get(exc.code, 500)
        return ClientError(status, exc.code, exc.message, retry if status == 503 else None)
    return ClientError(502, exc.code, exc.message)


class Metrics:
    """One registry per app (tests run several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("bridge_http_requests", "HTTP requests", ["route", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("bridge_http_request_seconds", "HTTP request latency", ["route"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                 registry=self.registry)
        self.renders = Counter("bridge_renders", "renders answered by the engine", ["cache"], registry=self.registry)
        self.engine_up = Gauge("engine_up", "1 when the engine answered the last health probe", registry=self.registry)
        self.engine = Gauge("engine_stat", "engine figures from its health reply", ["name"], registry=self.registry)


def unavailable_reason(reply: HealthReply | None) -> str | None:
    """None when the engine is ready; otherwise why not, for /health's 503."""
    if reply is None:
        return "engine not answering"
    if reply.status == "ok":
        return None
    reason = f"engine {reply.status or 'error'}"
    if isinstance(reply.failure, dict):
        reason += f": {reply.failure.get('message')}"
    return reason


def status_body(reply: HealthReply, link: EngineLink) -> dict[str, Any]:
    info = reply.renderer_info or {}
    return {
        "status": reply.status, "renderer": reply.renderer, "renderer_reason": reply.renderer_reason,
        "device": info.get("device"), "dtype": info.get("dtype"), "renderer_info": info,
        "face_detector": reply.face_detector, "face_detector_reason": reply.face_detector_reason,
        "avatars": reply.avatars, "default_avatar": reply.default_avatar, "streams": reply.streams,
        "frames": reply.frames, "caches": reply.caches,
        "bridge": {"engine_addr": link.settings.engine_addr, "engine_down_since": link.down_since},
    }


class Bridge:
    """The routes' handlers and what they share: settings, metrics and the engine link (made in the lifespan)."""

    def __init__(self, settings: BridgeSettings, operations: Iterable[Operation] = ()) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.limits = BodyLimits(settings.max_upload_bytes, settings.max_discard_bytes, settings.body_timeout_s)
        self.document = openapi_document(operations)
        self._link: EngineLink | None = None

    @property
    def link(self) -> EngineLink:
        if self._link is None:
            raise ClientError(503, "engine_unavailable", "the bridge is starting or stopping", {"Retry-After": "1"})
        return self._link

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._link = EngineLink(self.settings)
        self._link.start()
        try:
            yield
        finally:
            link, self._link = self._link, None
            await link.aclose()  # sockets closed, contexts terminated off the event loop

    def begin_shutdown(self) -> None:
        if self._link is not None:
            self._link.begin_shutdown()

    async def probe(self) -> HealthReply | None:
        reply = await self.link.probe()
        self.metrics.engine_up.set(1 if reply is not None and reply.status == "ok" else 0)
        return reply

    async def health(self, request: Request) -> Response:
        reason = unavailable_reason(await self.probe())
        if reason is None:
            return json_response({"status": "ok"})
        log_error(request.method, request.url.path, 503, "engine_unavailable", reason)
        return json_response({"status": "unavailable", "reason": reason}, 503)

    async def status(self, request: Request) -> Response:
        reply = await self.probe()
        if reply is None:
            log_error(request.method, request.url.path, 503, "engine_unavailable", "engine not answering")
            return json_response({"status": "unavailable", "reason": "engine not answering"}, 503)
        return json_response(status_body(reply, self.link))

    async def expressions(self, request: Request) -> Response:
        return json_response({"expressions": list(EXPRESSIONS), "intensities": {"min": 0.0, "max": 1.0}})

    async def render(self, request: Request) -> Response:
        form = await read_render_form(request, self.limits)
        link = self.link
        try:
            reply = await link.run(link.work.render(image=form.image, expression=form.expression,
                                                    intensity=form.intensity))
        except EngineClientError as exc:
            raise engine_error(exc) from exc
        cache = "hit" if reply.cached else "miss"
        self.metrics.renders.labels(cache).inc()
        return Response(reply.jpeg, media_type="image/jpeg", headers={
            "X-Renderer": reply.renderer, "X-Cache": cache, "X-Render-Ms": str(reply.header.get("render_ms", 0)),
            "X-Avatar": reply.avatar})

    async def speak(self, request: Request) -> Response:
        """A talking-portrait MP4. The WAV is decoded here first (typed 400/413/415 without a round trip, and its
        length sizes the engine timeout: ``timeout_ms`` + frames x CLIP_FRAME_BUDGET_S, no retry of a long clip)."""
        form = await read_speak_form(request, self.limits)
        try:
            pcm = await asyncio.to_thread(decode_audio, form.audio, "wav", None, MAX_AUDIO_SECONDS)
        except EngineError as exc:
            raise ClientError(HTTP_STATUS.get(exc.code, 400), exc.code, exc.message) from None
        timeout_ms = self.settings.timeout_ms + int(pcm.duration * form.fps * CLIP_FRAME_BUDGET_S * 1000)
        link = self.link
        try:
            # two messages (the portrait, then the audio) so each stays under the engine's message limit
            avatar = (await link.run(link.work.set_source(form.image))).avatar
            clip = f"http-{uuid.uuid4().hex[:16]}"
            message = build_message("speak_clip", {"avatar": avatar, "audio": form.audio, "format": "wav",
                                                   "expression": form.expression, "intensity": form.intensity,
                                                   "fps": form.fps, "clip": clip})
            reply = check_reply(await cancel_on_disconnect(request, link, clip, link.run(
                link.work.request(message, timeout_ms, retries=0, wait_ms=timeout_ms))))
        except EngineClientError as exc:
            raise engine_error(exc) from exc
        return Response(reply["mp4"], media_type="video/mp4", headers={
            "X-Renderer": str(reply.get("renderer", "")), "X-Avatar": str(reply.get("avatar", "")),
            "X-Frames": str(reply.get("frames", "")), "X-Duration": f"{float(reply.get('duration', 0.0)):.3f}"})

    async def metrics_route(self, request: Request) -> Response:
        reply = await self.probe()
        if reply is not None:
            for name, value in [*_flatten(reply.frames, "frames").items(), *_flatten(reply.caches, "cache").items()]:
                self.metrics.engine.labels(name).set(value)
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        return json_response(self.document)

    async def docs(self, request: Request) -> Response:
        return Response(DOCS_HTML, media_type="text/html")

    async def docs_init(self, request: Request) -> Response:
        return Response(DOCS_INIT_JS, media_type="text/javascript")

    def timed(self, route: str, handler: Handler) -> Handler:
        """Counts and times each request; turns ClientError into its JSON answer and a bug into a logged 500."""

        async def wrapper(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except ClientError as err:
                response = error_response(err, request)
            except Exception:  # never a bare 500 page; log the bug
                log.exception("%s failed", route)
                response = error_response(ClientError(500, "internal", "internal error"), request)
            self.metrics.requests.labels(route, request.method, str(response.status_code)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
            return response

        return wrapper

    def routes(self) -> list[BaseRoute]:
        plain = [("/health", self.health, "GET"), ("/expressions", self.expressions, "GET"),
                 ("/api/render", self.render, "POST"), ("/api/speak", self.speak, "POST"),
                 ("/status", self.status, "GET"),
                 ("/metrics", self.metrics_route, "GET"), ("/openapi.json", self.openapi, "GET"),
                 ("/docs", self.docs, "GET")]
        return [
            *(Route(path, self.timed(path, handler), methods=[method]) for path, handler, method in plain),
            Route("/docs/init.js", self.docs_init, methods=["GET"]),
            Mount("/docs/assets", StaticFiles(directory=swagger_assets()), name="docs-assets"),
        ]


async def cancel_on_disconnect(request: Request, link: EngineLink, clip: str, work: Awaitable[T]) -> T:
    """Await a ``speak_clip`` round trip; if the HTTP client goes away first (or the round trip times out), ask
    the engine to ``cancel_clip`` so it stops drawing for nobody. The cancel goes on the probe pool: a short
    message that must not queue behind the work it cancels. The body is read already, so ``receive`` waits for
    the disconnect (no polling)."""
    async def cancel(why: str) -> None:
        log.info("%s: cancelling clip %s", why, clip)
        with contextlib.suppress(EngineClientError):
            await link.probes.request(build_message("cancel_clip", {"clip": clip}), retries=0)

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task, watcher = asyncio.ensure_future(work), asyncio.ensure_future(gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await cancel("client left /api/speak")
        return await task
    except EngineUnavailable:
        await cancel("no answer in time")
        raise
    finally:
        watcher.cancel()


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (and any HTTPException) as the bridge's JSON error."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = exc.detail
    if exc.status_code == 404 and request.url.path.endswith("/") and request.url.path != "/":
        message += f"; did you mean {request.url.path.rstrip('/')}?"
    return error_response(ClientError(exc.status_code, code, message, dict(exc.headers or {})), request)


def create_app(settings: BridgeSettings, extra_routes: Sequence[BaseRoute] = (),
               extra_operations: Iterable[Operation] = ()) -> Starlette:
    """The bridge app; ``extra_routes`` + ``extra_operations`` add a feature's routes and their OpenAPI rows."""
    bridge = Bridge(settings, extra_operations)
    app = Starlette(routes=[*bridge.routes(), *extra_routes], lifespan=bridge.lifespan,
                    exception_handlers={HTTPException: http_error})
    app.router.redirect_slashes = False  # /api/render/ is a 404 with a hint, never a 307 that drops the body
    app.state.bridge = bridge
    app.state.metrics = bridge.metrics
    app.state.openapi = bridge.document
    app.state.begin_shutdown = bridge.begin_shutdown
    return app


def _flatten(values: dict[str, Any], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}_{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
