"""The bridge's app: the seed contract exactly, plus /status, /metrics, /openapi.json and /docs, and the features.

- ``GET /health`` -> ``{"status": "ok"}``; 503 ``{"status": "unavailable", ...}`` when the engine does not answer.
- ``POST /api/render`` multipart ``source_image`` (JPEG/PNG/WebP), ``expression``, ``intensity`` -> ``image/jpeg``.
- ``GET /expressions`` -> ``{"expressions": [...], "intensities": {"min": 0.0, "max": 1.0}}``.

Routes raise typed errors; bridge/errors.py answers each as ``{"error": {"code", "message"}}`` (one handler per
error type) and bridge/metrics.py counts and times every request (one middleware). A feature (``Feature``: the
preview page, WHEP, ...) adds its routes, OpenAPI rows, options, middleware and start/stop work without editing this
file; bridge/features.py lists the features ``python -m bridge`` serves. The engine protocol lives in
engine/client/; this module imports nothing of the engine beyond it and its small helpers (tests/service/
test_bridge_imports.py keeps it so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bridge.config import BridgeSettings
from bridge.engine_client import EngineLink
from bridge.errors import EXCEPTION_HANDLERS
from bridge.feature import Feature
from bridge.forms import BodyLimits, read_render_form, read_speak_form
from bridge.http import json_bytes, log_error
from bridge.metrics import Metrics, MetricsMiddleware
from bridge.openapi import DOCS_HTML, DOCS_INIT_JS, Operation, openapi_document, swagger_assets
from engine.client import EngineClientError, EngineUnavailable, HealthReply, build_message, check_reply
from engine.constants import EXPRESSIONS, INTENSITY_RANGE, MAX_AUDIO_SECONDS
from engine.errors import EngineUnavailableError
from engine.wav import read_header

log = logging.getLogger(__name__)

CLIP_FRAME_BUDGET_S = 0.25  # engine time allowed per clip frame on top of --timeout-ms (draw + paste + H.264)
T = TypeVar("T")


def json_response(body: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json_bytes(body), status_code=status, media_type="application/json", headers=headers)


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
    cluster = {"cluster": reply.raw["cluster"]} if "cluster" in reply.raw else {}  # engine/cluster/: every replica
    return {
        "status": reply.status, "renderer": reply.renderer, "renderer_reason": reply.renderer_reason,
        "device": info.get("device"), "dtype": info.get("dtype"), "renderer_info": info,
        "face_detector": reply.face_detector, "face_detector_reason": reply.face_detector_reason,
        "avatars": reply.avatars, "default_avatar": reply.default_avatar, "streams": reply.streams,
        "frames": reply.frames, "caches": reply.caches,
        "bridge": {"engine_addr": link.settings.engine_addr, "engine_down_since": link.down_since},
        **cluster,
    }


class Bridge:
    """The routes' handlers and what they share: settings, metrics, body limits and the engine link (made in the
    lifespan), and the features' settings."""

    def __init__(self, settings: BridgeSettings, operations: Iterable[Operation] = (),
                 features: Sequence[Feature] = (), feature_settings: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self.features = tuple(features)
        self.metrics = Metrics()
        self.limits = BodyLimits(settings.max_upload_bytes, settings.max_discard_bytes, settings.body_timeout_s)
        self.document = openapi_document([*operations, *(op for f in self.features for op in f.operations)])
        self._feature_settings = {**{f.name: f.settings() for f in self.features if f.settings is not None},
                                  **(feature_settings or {})}
        self._link: EngineLink | None = None

    def settings_of(self, feature: Feature) -> Any:
        """A feature's settings: parsed from argv/env by load_settings, else its dataclass's defaults."""
        return self._feature_settings[feature.name]

    @property
    def link(self) -> EngineLink:
        if self._link is None:
            raise EngineUnavailableError("the bridge is starting or stopping")
        return self._link

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._link = EngineLink(self.settings)
        self._link.start()
        try:
            async with AsyncExitStack() as features:
                for feature in self.features:
                    if feature.lifespan is not None:
                        await features.enter_async_context(feature.lifespan(self))
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
        log_error(request.method, request.url.path, 503, EngineUnavailableError.code, reason)
        return json_response({"status": "unavailable", "reason": reason}, 503)

    async def status(self, request: Request) -> Response:
        reply = await self.probe()
        if reply is None:
            log_error(request.method, request.url.path, 503, EngineUnavailableError.code, "engine not answering")
            return json_response({"status": "unavailable", "reason": "engine not answering"}, 503)
        return json_response(status_body(reply, self.link))

    async def expressions(self, request: Request) -> Response:
        return json_response({"expressions": list(EXPRESSIONS), "intensities": dict(INTENSITY_RANGE)})

    async def render(self, request: Request) -> Response:
        form = await read_render_form(request, self.limits)
        link = self.link
        reply = await link.run(link.work.render(image=form.image, expression=form.expression,
                                                intensity=form.intensity))
        cache = "hit" if reply.cached else "miss"
        self.metrics.renders.labels(cache).inc()
        return Response(reply.jpeg, media_type="image/jpeg", headers={
            "X-Renderer": reply.renderer, "X-Cache": cache, "X-Render-Ms": str(reply.header.get("render_ms", 0)),
            "X-Avatar": reply.avatar})

    async def speak(self, request: Request) -> Response:
        """A talking-portrait MP4. The WAV's header is checked here first (typed 400/413/415 without a round trip),
        and its length sizes the engine timeout: ``timeout_ms`` + frames x CLIP_FRAME_BUDGET_S, no retry."""
        form = await read_speak_form(request, self.limits)
        wav = read_header(form.audio, MAX_AUDIO_SECONDS)
        timeout_ms = self.settings.timeout_ms + int(wav.duration * form.fps * CLIP_FRAME_BUDGET_S * 1000)
        link = self.link
        # two messages (the portrait, then the audio) so each stays under the engine's message limit
        avatar = (await link.run(link.work.set_source(form.image))).avatar
        clip = f"http-{uuid.uuid4().hex[:16]}"
        message = build_message("speak_clip", {"avatar": avatar, "audio": form.audio, "format": "wav",
                                               "expression": form.expression, "intensity": form.intensity,
                                               "fps": form.fps, "clip": clip, "speech_motion": form.speech_motion,
                                               "marks": form.marks})
        reply = check_reply(await cancel_on_disconnect(request, link, clip, link.run(
            link.work.request(message, timeout_ms, retries=0, wait_ms=timeout_ms))))
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

    def routes(self) -> list[BaseRoute]:
        """The core's route table: (path, handler, method) rows, then the docs page's files."""
        table = [("/health", self.health, "GET"), ("/expressions", self.expressions, "GET"),
                 ("/api/render", self.render, "POST"), ("/api/speak", self.speak, "POST"),
                 ("/status", self.status, "GET"), ("/metrics", self.metrics_route, "GET"),
                 ("/openapi.json", self.openapi, "GET"), ("/docs", self.docs, "GET"),
                 ("/docs/init.js", self.docs_init, "GET")]
        return [*(Route(path, handler, methods=[method]) for path, handler, method in table),
                Mount("/docs/assets", StaticFiles(directory=swagger_assets()), name="docs-assets")]


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



def create_app(settings: BridgeSettings, extra_routes: Sequence[BaseRoute] = (),
               extra_operations: Iterable[Operation] = (), features: Sequence[Feature] = (),
               feature_settings: Mapping[str, Any] | None = None) -> Starlette:
    """The bridge app: the core routes, then each feature's (``features``; ``feature_settings`` from
    bridge.config.load_settings). ``extra_routes`` + ``extra_operations`` add bare routes and their OpenAPI rows."""
    bridge = Bridge(settings, extra_operations, features, feature_settings)
    routes = [*bridge.routes(), *extra_routes]
    for feature in bridge.features:
        routes += feature.routes(bridge) if feature.routes is not None else []
    middleware = [Middleware(MetricsMiddleware, metrics=bridge.metrics),
                  *(m for feature in bridge.features for m in feature.middleware)]
    app = Starlette(routes=routes, middleware=middleware, lifespan=bridge.lifespan,
                    exception_handlers=dict(EXCEPTION_HANDLERS))
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
