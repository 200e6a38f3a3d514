"""/openapi.json is a valid OpenAPI 3.1 document that matches the app's routes and the bodies it really sends;
/docs renders offline (assets from the swagger-ui-py wheel) in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute

from bridge.app import create_app
from bridge.config import BridgeSettings
from bridge.openapi import Answer, Operation, openapi_document
from bridge.preview import PREVIEW_OPERATIONS, preview_routes
from bridge.whep import WHEP_OPERATIONS
from tests.service.conftest import DATA, BridgeProcess


def app_operations(app: Starlette | None = None) -> set[tuple[str, str]]:
    """Every HTTP operation of the app. Mounts (/docs/assets, /preview/static: a page's files) and WebSocket routes
    (/preview/ws: OpenAPI 3.1 has no WebSocket operation; /preview's row describes it) are not operations."""
    app = app or create_app(BridgeSettings())
    ops = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute | Mount):
            continue
        assert isinstance(route, Route), route  # a new kind of route must be classified here
        if not route.path.startswith("/docs/"):  # /docs/init.js is the page's script
            ops |= {(m.lower(), route.path) for m in route.methods or () if m != "HEAD"}
    return ops


def preview_app() -> Starlette:
    settings = BridgeSettings()
    return create_app(settings, extra_routes=preview_routes(settings), extra_operations=PREVIEW_OPERATIONS)


def doc_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


def conforms(doc: dict[str, Any], schema: dict[str, Any], body: Any) -> None:
    Draft202012Validator({**schema, "components": doc["components"]}).validate(body)


def test_document_is_valid_openapi_3_1_and_covers_every_route() -> None:
    doc = openapi_document()
    validate(doc)  # raises on an invalid document
    assert doc["openapi"].startswith("3.1")
    assert doc_operations(doc) == app_operations()


def test_the_served_document_with_every_feature_is_valid_openapi() -> None:
    """What ``python -m bridge`` serves (the core, the preview and WHEP): openapi-spec-validator passes it (it stopped
    on a duplicate operation id once: /whep and /whep/{avatar}), and every operation id is unique."""
    from bridge.features import FEATURES

    app = create_app(BridgeSettings(), features=FEATURES)
    validate(app.state.openapi)
    ids = [op["operationId"] for item in app.state.openapi["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), sorted(ids)
    assert doc_operations(app.state.openapi) == app_operations(app)


def test_a_feature_adds_its_routes_and_rows_in_one_call() -> None:
    async def page(request: object) -> Response:
        return Response("<html></html>", media_type="text/html")

    op = Operation("get", "/preview", "The live preview page", (Answer(200, "HTML", "text/html", {"type": "string"}),))
    app = create_app(BridgeSettings(), [Route("/preview", page, methods=["GET"])], [op])
    validate(app.state.openapi)
    assert doc_operations(app.state.openapi) == app_operations(app)
    assert ("get", "/preview") in app_operations(app)


def test_the_preview_pages_rows_match_its_routes_both_ways() -> None:
    app = preview_app()
    validate(app.state.openapi)
    preview_ops = {op for op in app_operations(app) if op[1].startswith("/preview")}
    assert {op for op in doc_operations(app.state.openapi) if op[1].startswith("/preview")} == preview_ops
    assert {("get", "/preview"), ("post", "/preview/api/command"), ("get", "/preview/stream.mjpeg")} <= preview_ops
    assert doc_operations(app.state.openapi) == app_operations(app)
    ws = [r.path for r in app.routes if isinstance(r, WebSocketRoute)]
    assert ws == ["/preview/ws"] and "/preview/ws" in app.state.openapi["paths"]["/preview"]["get"]["description"]


@pytest.mark.parametrize("doc", [openapi_document(), openapi_document(PREVIEW_OPERATIONS)], ids=["bridge", "preview"])
def test_every_error_answer_has_a_json_error_body(doc: dict[str, Any]) -> None:
    render = doc["paths"]["/api/render"]["post"]["responses"]
    assert {"400", "413", "415", "422", "503"} <= set(render)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                if int(status) >= 400:
                    assert "application/json" in answer["content"], (method, path, status)


def test_served_document_and_real_bodies_match_it(bridge: BridgeProcess, portrait: bytes) -> None:
    doc = httpx.get(bridge.url + "/openapi.json").json()
    assert doc == openapi_document((*PREVIEW_OPERATIONS, *WHEP_OPERATIONS))  # python -m bridge: preview + WHEP too
    schema_of = {(p, m, s): a["content"].get("application/json", {}).get("schema")
                 for p, item in doc["paths"].items() for m, op in item.items() for s, a in op["responses"].items()}
    checks = [
        ("/health", "get", httpx.get(bridge.url + "/health")),
        ("/expressions", "get", httpx.get(bridge.url + "/expressions")),
        ("/status", "get", httpx.get(bridge.url + "/status")),
        ("/api/render", "post", httpx.post(bridge.url + "/api/render", data={"expression": "x"},
                                           files={"source_image": ("a", portrait, "image/jpeg")})),
        ("/api/render", "post", httpx.post(bridge.url + "/api/render", json={})),
        ("/api/render", "post", httpx.post(bridge.url + "/api/render", files={
            "source_image": ("a", (DATA / "s1.jpg").read_bytes()[:500], "image/jpeg")})),
    ]
    for path, method, response in checks:
        schema = schema_of.get((path, method, str(response.status_code)))
        assert schema is not None, (path, method, response.status_code, "status not in the document")
        conforms(doc, schema, response.json())


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed (tools/system-deps.sh)")
def test_docs_page_renders_offline_in_chromium(bridge: BridgeProcess) -> None:
    page = httpx.get(bridge.url + "/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/init.js"):
        assert httpx.get(bridge.url + asset).status_code == 200, asset
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
             "--virtual-time-budget=15000", "--dump-dom", bridge.url + "/docs"],
            capture_output=True, text=True, timeout=120).stdout
    # Swagger UI drew the document: the title and every operation's path are in the live DOM
    assert "liveportrait-engine HTTP bridge" in dom
    for path in ("/api/render", "/health", "/status", "/openapi.json"):
        assert path in dom.split('id="swagger-ui"', 1)[-1], path
