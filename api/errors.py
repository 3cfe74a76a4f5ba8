"""HTTP errors: every error response is ``{"error": {"code", "message"}}``.

=====  ====================  ==================================================
 400   ``bad_request``       a bad cursor, mode, scope, group name or query value
 401   ``unauthorized``      missing or unknown bearer key
 403   ``forbidden``         the viewer's read-only session cookie asked to change state
 404   ``not_found``         no such task *for this tenant* (never 403)
 409   ``conflict``          the task's state forbids the operation (group limit, no
                             such dead letter)
 413   ``payload_too_large`` input above ``MAX_INPUT_CHARS`` or body above the limit
 422   ``invalid_body``      a request body that does not validate
 429   ``rate_limited``      the tenant's submit budget or live-stream share is spent
                             (``Retry-After``)
 503   ``unavailable``       Redis or the queue unreachable, or too many streams
=====  ====================  ==================================================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from agentstream.errors import StackError
from agentstream.streams import StreamsError, StreamStateError, TaskNotFound, UsageError
from agentstream.streams.errors import TRANSIENT_REDIS_ERRORS

__all__ = [
    "ApiError",
    "bad_request",
    "error_body",
    "install_error_handlers",
    "not_found",
    "unavailable",
]

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_body",
    429: "rate_limited",
    503: "unavailable",
}


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class ApiError(StarletteHTTPException, StackError):
    """An error answered as ``{"error": {"code", "message"}}`` with ``status``: the API's
    subtree of :class:`agentstream.errors.StackError`.

    A subclass of Starlette's ``HTTPException`` so that it passes through FastAPI's body
    reading untouched (the body-size limit raises it from inside ``receive``).
    """

    def __init__(
        self, status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code or _CODES.get(status, "error")
        self.message = message


def not_found(task_id: str) -> ApiError:
    # The same message whether the task never existed or belongs to another tenant.
    return ApiError(404, f"no task {task_id!r}")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def unavailable(message: str, retry_after_s: int = 1) -> ApiError:
    return ApiError(503, message, headers={"Retry-After": str(retry_after_s)})


def _respond(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = exc.code if isinstance(exc, ApiError) else _CODES.get(exc.status_code, "error")
    return _respond(exc.status_code, code, str(exc.detail), exc.headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc[1:]) or str(loc[0]) if loc else "request"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    summary = "; ".join(f"{_location(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:5])
    if errors and all(e.get("loc", ("",))[0] == "body" for e in errors):
        return _respond(422, "invalid_body", summary or "invalid request body")
    return _respond(400, "bad_request", summary or "invalid request")


async def _streams_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, TaskNotFound):
        return _respond(404, "not_found", f"no task {exc.task_id!r}")
    if isinstance(exc, UsageError):
        return _respond(400, "bad_request", str(exc))
    if isinstance(exc, StreamStateError):
        return _respond(409, "conflict", str(exc))
    logger.error("unexpected streams error on %s %s: %r", request.method, request.url.path, exc)
    return _respond(503, "unavailable", "the task store refused the operation; try again")


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("redis unreachable on %s %s: %r", request.method, request.url.path, exc)
    return _respond(503, "unavailable", "Redis is unreachable; try again", {"Retry-After": "1"})


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of the API in the one error shape."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StreamsError, _streams_error)
    for transient in TRANSIENT_REDIS_ERRORS:
        app.add_exception_handler(transient, _redis_down)
