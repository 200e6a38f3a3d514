"""One Starlette exception handler per error type; every one answers ``{"error": {"code", "message"}}``.

Routes never build an error response: they raise. What they raise, and how it is answered:

- ``engine.errors.EngineError`` (any subclass: BadRequest, ImageTooLarge, NoFaceDetected, BodyTimeout, ...):
  status ``HTTP_STATUS[code]``, its ``code``;
- ``Abort(error)``: the same, then the connection is closed (a body too large to drain, a body too slow);
- ``engine.client.EngineClientError``: Overloaded (503 busy), EngineUnavailable (503 engine_unavailable),
  EngineReplyError (the engine's own code and its ``HTTP_STATUS``), BadReply (502 bad_reply);
- Starlette's ``HTTPException`` (unknown path, wrong method): its status, not_found / method_not_allowed;
- anything else, a bug: 500 internal (uvicorn logs the traceback).

Every 503 carries ``Retry-After``. Each answer is logged once with its code (bridge.http.log_error).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bridge.http import error_body, log_error
from engine.client import EngineClientError
from engine.errors import HTTP_STATUS, BadRequest, EngineError, Internal, MethodNotAllowed, NotFound

RETRY_AFTER_S = "1"


class Abort(Exception):
    """An engine error answered as usual, after which the connection is closed (``Connection: close``)."""

    def __init__(self, error: EngineError) -> None:
        super().__init__(error.message)
        self.error = error


def error_response(request: Request, status: int, code: str, message: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    log_error(request.method, request.url.path, status, code, message)
    extra = dict(headers or {})
    if status == 503:
        extra.setdefault("Retry-After", RETRY_AFTER_S)
    return Response(error_body(code, message), status_code=status, media_type="application/json", headers=extra)


async def engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngineError)
    return error_response(request, HTTP_STATUS.get(exc.code, 500), exc.code, exc.message)


async def abort(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Abort)
    err = exc.error
    return error_response(request, HTTP_STATUS.get(err.code, 500), err.code, err.message, {"Connection": "close"})


async def client_error(request: Request, exc: Exception) -> Response:
    """The engine client's errors: busy/unavailable are 503; the engine's own refusals keep their code and status;
    a reply that is not the protocol is 502."""
    assert isinstance(exc, EngineClientError)
    return error_response(request, HTTP_STATUS.get(exc.code, 502), exc.code, exc.message)


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (and any HTTPException) as the bridge's JSON error."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    code = {404: NotFound.code, 405: MethodNotAllowed.code}.get(status, BadRequest.code if status < 500
                                                                else Internal.code)
    message = exc.detail
    if status == 404 and request.url.path.endswith("/") and request.url.path != "/":
        message += f"; did you mean {request.url.path.rstrip('/')}?"
    return error_response(request, status, code, message, exc.headers)


async def internal(request: Request, exc: Exception) -> Response:
    """A bug: answered 500 JSON. Starlette's ServerErrorMiddleware calls this, then re-raises the exception so that
    uvicorn logs its traceback (once); the process goes on."""
    return error_response(request, 500, Internal.code, "internal error")


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]
EXCEPTION_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    EngineError: engine_error,
    Abort: abort,
    EngineClientError: client_error,
    HTTPException: http_exception,
    Exception: internal,
}
