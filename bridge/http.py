"""HTTP plumbing shared by the routes: JSON bodies, the one error body, its log line, and uvicorn's own 400s as JSON.

Every refusal the bridge answers, on every route, is ``{"error": {"code", "message"}}`` with a 4xx/5xx status
(the seed contract's shape); ``code`` is always one of engine/errors.py's. bridge/errors.py turns exceptions into it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.errors import BadRequest

log = logging.getLogger("bridge.http")


def json_bytes(body: dict[str, Any]) -> bytes:
    """Python's default separators: the seed service's bytes, ``{"status": "ok"}``."""
    return json.dumps(body).encode()


def error_body(code: str, message: str) -> bytes:
    return json_bytes({"error": {"code": code, "message": message}})


def log_error(method: str, path: str, status: int, code: str, message: str) -> None:
    """Every 4xx/5xx the bridge answers is logged once, with its code (5xx as errors)."""
    level = logging.ERROR if status >= 500 else logging.WARNING
    log.log(level, "%s %s -> %d %s: %s", method, path, status, code, message)


class JSONErrorH11Protocol(H11Protocol):
    """uvicorn answers malformed HTTP itself with a plain-text 400; this one answers the bridge's JSON error, and then
    closes the connection as its header says (left open, each malformed request held a socket until the client left)."""

    def send_400_response(self, msg: str) -> None:
        import h11

        body = error_body(BadRequest.code, msg)
        log_error("-", "-", 400, BadRequest.code, msg)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
        self.transport.write(self.conn.send(h11.Data(data=body)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()
