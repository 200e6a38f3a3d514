"""The HTTP API described: an OpenAPI 3.1 document built from one table, and /docs served from a local package.

Each route is one ``Operation`` row; a new route (e.g. bridge/preview.py's) adds its rows to ``OPERATIONS`` or
passes them to ``openapi_document``. A test checks the table against the app's routes, both ways.
The docs page uses Swagger UI's files from the ``swagger-ui-py`` wheel (no CDN: it works offline).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.constants import EXPRESSIONS

JSON = "application/json"


def error_schema() -> dict[str, Any]:
    return {"$ref": "#/components/schemas/Error"}


@dataclass(frozen=True)
class Answer:
    """One response: its status, what it means, its media type and schema."""

    status: int
    description: str
    media: str = JSON
    schema: dict[str, Any] = field(default_factory=error_schema)
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    answers: tuple[Answer, ...]
    request: dict[str, Any] | None = None  # an OpenAPI requestBody
    description: str = ""


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


BUSY = Answer(503, "engine unavailable, starting or busy; retry after Retry-After seconds", headers=("Retry-After",))
RENDER_FORM = {
    "required": True,
    "content": {"multipart/form-data": {"schema": ref("RenderForm"),
                                        "encoding": {"source_image": {"contentType": "image/jpeg, image/png, "
                                                                                     "image/webp"}}}},
}

OPERATIONS: list[Operation] = [
    Operation("get", "/health", "Liveness of the bridge and the engine (the seed contract, byte-exact)", (
        Answer(200, "ready: exactly {\"status\": \"ok\"}", schema=ref("Health")),
        Answer(503, "the engine does not answer within the probe timeout", schema=ref("Unavailable")))),
    Operation("get", "/expressions", "The expression presets and the intensity range (the seed contract)", (
        Answer(200, "presets", schema=ref("Expressions")),)),
    Operation("post", "/api/render", "One still frame of a portrait with an expression", (
        Answer(200, "the rendered frame", "image/jpeg", {"type": "string", "format": "binary"},
               ("X-Renderer", "X-Cache", "X-Render-Ms", "X-Avatar")),
        Answer(400, "a bad field: missing source_image, unknown expression, intensity outside 0..1, bad multipart"),
        Answer(408, "the request body did not arrive in time"),
        Answer(413, "the body or the image is over the limit (the body is read and dropped first)"),
        Answer(415, "not multipart/form-data, or the image is not a JPEG, PNG or WebP"),
        Answer(422, "no face detected in the image"),
        Answer(500, "an engine bug (the message says what)"),
        BUSY), RENDER_FORM),
    Operation("post", "/api/speak", "A talking-portrait MP4: the portrait speaking a WAV (H.264 + AAC)", (
        Answer(200, "the clip, as long as the audio, at fps frames per second", "video/mp4",
               {"type": "string", "format": "binary"}, ("X-Renderer", "X-Avatar", "X-Frames", "X-Duration")),
        Answer(400, "a bad field or bad audio (cut short, no samples, NaN, absurd rate); bad multipart"),
        Answer(408, "the request body did not arrive in time"),
        Answer(413, "the body or the image is over the limit, or the audio is longer than 60 s"),
        Answer(415, "not multipart/form-data, the image is not a JPEG, PNG or WebP, or the audio is not a WAV"),
        Answer(422, "no face detected in the image"),
        Answer(500, "an engine bug (the message says what)"),
        BUSY), {
        "required": True,
        "content": {"multipart/form-data": {"schema": ref("SpeakForm"), "encoding": {
            "source_image": {"contentType": "image/jpeg, image/png, image/webp"},
            "audio": {"contentType": "audio/wav"}}}}},
        "The engine's timeout scales with the audio: LP_ENGINE_TIMEOUT_MS + 0.25 s per frame; audio <= 60 s."),
    Operation("get", "/status", "What the engine runs and how it is doing (from its health reply)", (
        Answer(200, "renderer and why, device, dtype, face detector and why, avatars, streams, timings, caches",
               schema=ref("Status")),
        Answer(503, "the engine does not answer", schema=ref("Unavailable")))),
    Operation("get", "/metrics", "Prometheus metrics of the bridge and the engine", (
        Answer(200, "Prometheus text format", "text/plain", {"type": "string"}),)),
    Operation("get", "/openapi.json", "This document", (Answer(200, "OpenAPI 3.1", schema={"type": "object"}),)),
    Operation("get", "/docs", "Interactive API docs (served locally)", (
        Answer(200, "HTML page", "text/html", {"type": "string"}),)),
]

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "examples": ["bad_request", "no_face", "busy"]},
                       "message": {"type": "string"}}}}},
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    "Unavailable": {"type": "object", "required": ["status", "reason"],
                    "properties": {"status": {"const": "unavailable"}, "reason": {"type": "string"}}},
    "Expressions": {"type": "object", "required": ["expressions", "intensities"], "properties": {
        "expressions": {"type": "array", "items": {"enum": list(EXPRESSIONS)}},
        "intensities": {"type": "object", "properties": {"min": {"type": "number"}, "max": {"type": "number"}}}}},
    "RenderForm": {"type": "object", "required": ["source_image"], "properties": {
        "source_image": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP portrait"},
        "expression": {"enum": list(EXPRESSIONS), "default": "neutral"},
        "intensity": {"type": "number", "minimum": 0.0, "maximum": 1.0, "default": 1.0}}},
    "SpeakForm": {"type": "object", "required": ["source_image", "audio"], "properties": {
        "source_image": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP portrait"},
        "audio": {"type": "string", "format": "binary", "description": "WAV (PCM int or float, 8-48 kHz), <= 60 s"},
        "expression": {"enum": list(EXPRESSIONS), "default": "neutral"},
        "intensity": {"type": "number", "minimum": 0.0, "maximum": 1.0, "default": 1.0},
        "fps": {"type": "number", "minimum": 1.0, "maximum": 60.0, "default": 25.0},
        "speech_motion": {"type": "number", "minimum": 0.0, "maximum": 2.0, "default": 1.0,
                          "description": "gain of the head, brow and blink motion the voice drives (0: lips only)"},
        "marks": {"type": "string", "description": "JSON list of {t, expression, intensity?, controls?, "
                  "transition_ms?}: expressions on the words, t seconds into the audio"}}},
    "Status": {"type": "object", "required": ["status", "renderer"], "properties": {
        "status": {"type": "string", "description": "the engine's status: ok, starting or failed"},
        "renderer": {"type": "string"}, "renderer_reason": {"type": "string"},
        "device": {"type": ["string", "null"]}, "dtype": {"type": ["string", "null"]},
        "face_detector": {"type": ["string", "null"]}, "face_detector_reason": {"type": "string"},
        "avatars": {"type": "integer"}, "default_avatar": {"type": ["string", "null"]},
        "streams": {"type": "object"}, "frames": {"type": "object"}, "caches": {"type": "object"},
        "renderer_info": {"type": "object"}, "bridge": {"type": "object"}}},
}


def _answer(a: Answer) -> dict[str, Any]:
    out: dict[str, Any] = {"description": a.description, "content": {a.media: {"schema": a.schema}}}
    if a.headers:
        out["headers"] = {h: {"schema": {"type": "string"}} for h in a.headers}
    return out


def openapi_document(operations: Iterable[Operation] = (), version: str = "0.1.0") -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``OPERATIONS`` plus ``operations`` (more routes, e.g. /preview)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in [*OPERATIONS, *operations]:
        entry: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op),
                                 "responses": {str(a.status): _answer(a) for a in op.answers}}
        if op.description:
            entry["description"] = op.description
        if op.request is not None:
            entry["requestBody"] = op.request
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "liveportrait-engine HTTP bridge", "version": version, "license": {
            "name": "MIT", "identifier": "MIT"},
            "description": "The seed service's contract (/health, /api/render, /expressions) plus status, metrics "
                           "and docs. Errors are JSON {\"error\": {\"code\", \"message\"}} on every route; unknown "
                           "paths 404 and wrong methods 405, both with that body."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }


def _operation_id(op: Operation) -> str:
    words = [w for w in op.path.replace(".", "_").split("/") if w and not w.startswith("{")]
    return op.method + "_" + "_".join(words)


def swagger_assets() -> Path:
    """Swagger UI's static files inside the installed ``swagger_ui`` package (found without importing it)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed; /docs needs its files")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>liveportrait-engine API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>
"""

DOCS_INIT_JS = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  validatorUrl: null, presets: [SwaggerUIBundle.presets.apis]});
"""
