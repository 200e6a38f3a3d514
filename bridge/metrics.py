"""Prometheus figures of the bridge: one middleware counts and times every HTTP request by its route template.

Why a middleware: a figure per route written by hand misses the routes someone forgets (the preview's did); this
sees every request, refusals included, after the exception handlers have answered. Labels are the route's template
(``/preview/api/command``, ``/docs/assets/{path}``), never the raw path, so a client cannot grow the series: paths
that match no route share ``unmatched``. Latency is the time to the response's first byte (a stream such as
``/preview/stream.mjpeg`` would otherwise count its whole life).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"


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


def route_template(scope: Scope) -> str:
    """The template of the route Starlette matched (it records it in the scope), or ``unmatched``."""
    route: Any = scope.get("route")
    if route is None:
        return UNMATCHED
    if isinstance(route, Mount):
        return route.path + "/{path}"
    return str(getattr(route, "path", UNMATCHED))


class MetricsMiddleware:
    """Pure ASGI (no response buffering): counts ``(route, method, status)`` and observes latency per route."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # a bug that escapes every handler (ServerErrorMiddleware then answers 500)

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.latency.labels(route_template(scope)).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            self.metrics.requests.labels(route_template(scope), scope["method"], str(status)).inc()
