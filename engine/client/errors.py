"""The client's errors: each carries the engine's wire ``code`` (engine/errors.py), so callers branch on codes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import BadEngineReply, Busy, EngineUnavailableError


class EngineClientError(Exception):
    """Base of every error this client raises; ``code`` is the wire code (or a client-side one below)."""

    code = "client_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class EngineReplyError(EngineClientError):
    """The engine answered ``{"ok": false, "error": {"code", "message"}}``: the wire code and message as sent."""

    def __init__(self, code: str, message: str, reply: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, code)
        self.reply: dict[str, Any] = dict(reply or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class EngineUnavailable(EngineClientError):
    """No reply within the timeout after every retry (the engine is down, wedged or unreachable)."""

    code = EngineUnavailableError.code


class Overloaded(EngineClientError):
    """Too many callers already wait for a socket of the pool, or the wait passed its deadline."""

    code = Busy.code


class BadReply(EngineClientError):
    """The engine's bytes were not a msgpack map: a different program is listening, or a bug."""

    code = BadEngineReply.code
