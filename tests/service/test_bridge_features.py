"""A feature adds routes, OpenAPI rows, options, middleware and start/stop work to the bridge without editing it;
its routes get the bridge's one error shape, its body reader (cap and timeout) and its per-route metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.app import Bridge, create_app
from bridge.config import load_settings
from bridge.feature import Feature
from bridge.forms import read_body
from bridge.openapi import Answer, Operation
from engine.errors import BadRequest, ConfigError
from engine.options import Option

ECHO_OPTIONS = (Option("echo_word", "--echo-word", "LP_ECHO_WORD", str, "hi", "what GET /echo answers"),)


@dataclass(frozen=True)
class EchoSettings:
    echo_word: str = "hi"


class Stamp:
    """A feature's middleware: marks every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-echo", b"1")]
            await send(message)
        await self.app(scope, receive, stamped)


EVENTS: list[str] = []


@contextlib.asynccontextmanager
async def echo_lifespan(bridge: Bridge) -> AsyncIterator[None]:
    EVENTS.append("start")
    yield
    EVENTS.append("stop")


def echo_routes(bridge: Bridge) -> list[Route]:
    word = bridge.settings_of(ECHO).echo_word

    async def echo(request: Request) -> Response:
        return PlainTextResponse(word)

    async def echo_body(request: Request) -> Response:
        body = await read_body(request, 10, bridge.limits)
        if body == b"bad":
            raise BadRequest("not that")
        return PlainTextResponse(body)

    return [Route("/echo", echo, methods=["GET"]), Route("/echo/body", echo_body, methods=["POST"])]


ECHO = Feature("echo", routes=echo_routes, options=ECHO_OPTIONS, settings=EchoSettings,
               middleware=(Middleware(Stamp),), lifespan=echo_lifespan, operations=(
                   Operation("get", "/echo", "the word", (Answer(200, "it", "text/plain", {"type": "string"}),)),
                   Operation("post", "/echo/body", "the body", (Answer(200, "it", "text/plain",
                                                                        {"type": "string"}),))))


def test_a_features_options_parse_with_the_cores_from_one_argv_and_env() -> None:
    core, extra = load_settings(["--port", "9000", "--echo-word", "yo"], {}, features=[ECHO])
    assert core.port == 9000 and extra["echo"] == EchoSettings("yo")
    assert load_settings([], {"LP_ECHO_WORD": "env"}, features=[ECHO])[1]["echo"].echo_word == "env"
    with pytest.raises(SystemExit):
        load_settings(["--echo-word"], {}, features=[ECHO])  # a bad flag exits like a core one
    clash = Feature("clash", options=(Option("port2", "--port", "LP_PORT2", int, 1, "x"),),
                    settings=dataclass(frozen=True)(type("Clash", (), {"__annotations__": {"port2": int},
                                                                       "port2": 1})))
    with pytest.raises(ConfigError):
        load_settings([], {}, features=[clash])  # two owners of --port: refused, not silently shadowed


def test_a_features_routes_get_errors_body_limits_metrics_middleware_and_lifespan() -> None:
    core, extra = load_settings(["--engine-addr", "tcp://127.0.0.1:9", "--probe-interval-ms", "0"],
                                {"LP_ECHO_WORD": "yo"}, features=[ECHO])
    app = create_app(core, features=[ECHO], feature_settings=extra)
    EVENTS.clear()
    with TestClient(app) as client:
        assert EVENTS == ["start"]
        answer = client.get("/echo")
        assert answer.text == "yo" and answer.headers["x-echo"] == "1"
        refused = client.post("/echo/body", content=b"bad")
        assert refused.status_code == 400 and refused.json() == {"error": {"code": "bad_request",
                                                                           "message": "not that"}}
        too_big = client.post("/echo/body", content=b"x" * 11)
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
        assert client.get("/echo/nope").json()["error"]["code"] == "not_found"
        metrics = client.get("/metrics").text
        assert 'bridge_http_requests_total{method="GET",route="/echo",status="200"} 1.0' in metrics
        assert 'route="/echo/body",status="413"' in metrics and 'route="unmatched",status="404"' in metrics
        assert "/echo/nope" not in metrics  # labels are templates, never a client's path
        assert {"/echo", "/echo/body"} <= set(client.get("/openapi.json").json()["paths"])
    assert EVENTS == ["start", "stop"]
