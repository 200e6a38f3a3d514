"""HTTP routes: the seed contract exactly, plus /metrics. Every client error is 4xx JSON, never a 500.

- ``GET /health`` -> ``{"status": "ok"}``; 503 ``{"status": "unavailable", ...}`` when the engine does not answer.
- ``POST /api/render`` multipart ``source_image`` (JPEG/PNG), ``expression``, ``intensity`` -> ``image/jpeg``.
- ``GET /expressions`` -> ``{"expressions": [...], "intensities": {"min": 0.0, "max": 1.0}}``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.config import BridgeSettings
from bridge.engine_client import EngineClient, EngineUnavailable, Overloaded
from bridge.preview import preview_routes
from engine.animation.presets import EXPRESSIONS, validate_expression, validate_intensity
from engine.errors import HTTP_STATUS, BadRequest

log = logging.getLogger(__name__)

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the small fields, on top of the image's own limit
IMAGE_MAGIC = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}
RETRY_AFTER_S = "1"
Handler = Callable[[Request], Awaitable[Response]]


class ClientError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON with Python's default separators: the seed service's bytes, ``{"status": "ok"}``."""
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(err: ClientError) -> Response:
    return json_response({"error": {"code": err.code, "message": err.message}}, err.status, err.headers)


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


def create_app(settings: BridgeSettings, client: EngineClient | None = None) -> Starlette:
    metrics = Metrics()
    state: dict[str, EngineClient] = {}

    def engine() -> EngineClient:
        return state["client"]

    async def probe() -> dict[str, Any] | None:
        try:
            reply = await engine().request({"v": 1, "cmd": "health"}, timeout_ms=settings.health_timeout_ms,
                                            retries=0)
        except (EngineUnavailable, Overloaded):
            reply = None
        metrics.engine_up.set(1 if reply and reply.get("status") == "ok" else 0)
        return reply

    async def health(request: Request) -> Response:
        reply = await probe()
        if reply is not None and reply.get("ok") and reply.get("status") == "ok":
            return json_response({"status": "ok"})
        if reply is None:
            reason = "engine not answering"
        else:
            reason = f"engine {reply.get('status', 'error')}"
            failure = reply.get("failure") or reply.get("error")
            if isinstance(failure, dict):
                reason += f": {failure.get('message')}"
        return json_response({"status": "unavailable", "reason": reason}, 503)

    async def expressions(request: Request) -> Response:
        return json_response({"expressions": list(EXPRESSIONS), "intensities": {"min": 0.0, "max": 1.0}})

    async def render(request: Request) -> Response:
        image, expression, intensity = await read_render_form(request, settings.max_upload_bytes)
        message = {"v": 1, "cmd": "render", "image": image, "expression": expression, "intensity": intensity}
        try:
            reply = await engine().request(message)
        except Overloaded as exc:
            raise ClientError(503, "busy", str(exc), {"Retry-After": RETRY_AFTER_S}) from exc
        except EngineUnavailable as exc:
            raise ClientError(503, "engine_unavailable", str(exc), {"Retry-After": RETRY_AFTER_S}) from exc
        if not reply.get("ok"):
            err = reply.get("error") or {}
            code = str(err.get("code", "internal"))
            status = HTTP_STATUS.get(code, 500)
            headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
            raise ClientError(status, code, str(err.get("message", "engine error")), headers)
        header = reply.get("header") or {}
        metrics.renders.labels("hit" if reply.get("cached") else "miss").inc()
        return Response(reply["jpeg"], media_type="image/jpeg", headers={
            "X-Renderer": str(reply.get("renderer", "")), "X-Cache": "hit" if reply.get("cached") else "miss",
            "X-Render-Ms": str(header.get("render_ms", 0)), "X-Avatar": str(reply.get("avatar", ""))})

    async def metrics_route(request: Request) -> Response:
        reply = await probe()
        if reply is not None and reply.get("ok"):
            for name, value in _flatten(reply.get("frames", {}), "frames").items():
                metrics.engine.labels(name).set(value)
            for name, value in _flatten(reply.get("caches", {}), "cache").items():
                metrics.engine.labels(name).set(value)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def timed(route: str, handler: Handler) -> Handler:
        async def wrapper(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except ClientError as err:
                response = error_response(err)
            except Exception:  # never a bare 500 page; log the bug
                log.exception("%s failed", route)
                response = error_response(ClientError(500, "internal", "internal error"))
            metrics.requests.labels(route, request.method, str(response.status_code)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)
            return response

        return wrapper

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return json_response({"error": {"code": "http_error", "message": exc.detail}}, exc.status_code, exc.headers)

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        state["client"] = client or EngineClient(settings.engine_addr, settings.timeout_ms, settings.retries,
                                                 settings.concurrency, settings.queue)
        try:
            yield
        finally:
            state.pop("client").close()

    routes = [
        Route("/health", timed("/health", health), methods=["GET"]),
        Route("/expressions", timed("/expressions", expressions), methods=["GET"]),
        Route("/api/render", timed("/api/render", render), methods=["POST"]),
        Route("/metrics", timed("/metrics", metrics_route), methods=["GET"]),
    ]
    routes += preview_routes(settings, engine)
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.metrics = metrics
    return app


async def read_render_form(request: Request, max_image_bytes: int) -> tuple[bytes, str, float]:
    """Read the multipart body with a byte cap (413 as soon as it is passed), then check each field."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise ClientError(415, "unsupported_media_type", "send multipart/form-data with a 'source_image' file")
    limit = max_image_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ClientError(413, "image_too_large", f"request body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ClientError(413, "image_too_large", f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=8, max_part_size=limit)
    except Exception as exc:  # python-multipart's and Starlette's parse errors
        raise ClientError(400, "bad_request", f"malformed multipart body: {exc}") from exc
    try:
        upload = form.get("source_image")
        if not isinstance(upload, UploadFile):
            raise ClientError(400, "bad_request", "missing file field 'source_image' (a JPEG or PNG image)")
        image = await upload.read()
        if len(image) > max_image_bytes:
            raise ClientError(413, "image_too_large", f"image is {len(image)} bytes; the limit is {max_image_bytes}")
        if not any(image.startswith(magic) for magic in IMAGE_MAGIC):
            raise ClientError(415, "invalid_image", "source_image must be a JPEG or PNG image")
        expression = form.get("expression", "neutral")
        try:
            validate_expression(expression)
        except BadRequest as exc:
            raise ClientError(400, "bad_request", exc.message) from None
        intensity = _intensity(form.get("intensity"))
        return image, expression, intensity
    finally:
        await form.close()


def _intensity(raw: object) -> float:
    if raw is None or raw == "":
        return 1.0
    try:
        return validate_intensity(float(str(raw)))
    except ValueError:
        raise ClientError(400, "bad_request", f"intensity must be a number in 0.0-1.0, not {raw!r}") from None
    except BadRequest as exc:
        raise ClientError(400, "bad_request", exc.message) from None


def _flatten(values: dict[str, Any], prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}_{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
