"""HTTP plumbing shared by the routes: JSON errors (logged with their code) and uvicorn's own 400s as JSON."""

from __future__ import annotations

import json
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("bridge.http")


class ClientError(Exception):
    """A refusal with its HTTP status and wire-style code; becomes ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def json_bytes(body: dict[str, Any]) -> bytes:
    """Python's default separators: the seed service's bytes, ``{"status": "ok"}``."""
    return json.dumps(body).encode()


def log_error(method: str, path: str, status: int, code: str, message: str) -> None:
    """Every 4xx/5xx the bridge answers is logged once, with its code (5xx as errors)."""
    level = logging.ERROR if status >= 500 else logging.WARNING
    log.log(level, "%s %s -> %d %s: %s", method, path, status, code, message)


class JSONErrorH11Protocol(H11Protocol):
    """uvicorn answers malformed HTTP itself with a plain-text 400; this one answers the bridge's JSON error."""

    def send_400_response(self, msg: str) -> None:
        import h11

        body = json_bytes({"error": {"code": "bad_request", "message": msg}})
        log_error("-", "-", 400, "bad_request", msg)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
        self.transport.write(self.conn.send(h11.Data(data=body)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
