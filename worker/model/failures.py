"""Which model-call failures are worth retrying, and how long to wait (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import openai
import orjson

from agentstream.worker.model.stream import IncompleteStream, StreamErrorEvent

__all__ = ["Failure", "classify", "rejects_request_option"]


def _transport_errors() -> tuple[type[Exception], ...]:
    # openai 1.x sends through httpx, openai 3.x through its fork httpx2; a raw response
    # body read by us raises the transport errors of whichever the SDK uses.
    classes: list[type[Exception]] = [httpx.TransportError]
    try:
        import httpx2
    except ImportError:
        pass
    else:
        classes.append(httpx2.TransportError)
    return tuple(classes)


_TRANSPORT_ERRORS = _transport_errors()

try:
    import aiohttp
except ImportError:  # the SDK's default transport (httpx2) is in use
    _AIOHTTP_CONNECTION_ERROR: type[Exception] | None = None
    _AIOHTTP_TIMEOUTS: tuple[type[Exception], ...] = ()
else:
    _AIOHTTP_CONNECTION_ERROR = aiohttp.ClientConnectionError
    _AIOHTTP_TIMEOUTS = (aiohttp.ServerTimeoutError, aiohttp.SocketTimeoutError)


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed call means: retry or not, the `error_type`, the server's delay."""

    retryable: bool
    error_type: str
    status_code: int | None = None
    retry_after_s: float | None = None


def classify(exc: Exception) -> Failure:
    """The failure `exc` stands for (`invalid_response` for anything unexpected)."""
    if isinstance(exc, openai.APITimeoutError) and not _refused(exc):
        return Failure(True, "timeout")
    if isinstance(exc, (openai.APIConnectionError, *_TRANSPORT_ERRORS)):
        return Failure(True, "connection_error")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return Failure(True, "rate_limited", status, _retry_after(exc))
        if status == 408:
            return Failure(True, "timeout", status)
        if status >= 500:
            return Failure(True, "server_error", status, _retry_after(exc))
        return Failure(False, "client_error", status)
    if isinstance(exc, openai.APIError | IncompleteStream | StreamErrorEvent | orjson.JSONDecodeError):
        # An error event inside a 200 stream, or a stream cut short: the server's trouble.
        return Failure(True, "stream_error")
    return Failure(False, "invalid_response")


def _refused(exc: BaseException) -> bool:
    """Whether a "timeout" is a connection that failed at once (refused, reset, DNS): the
    SDK's aiohttp transport maps every `aiohttp.ClientConnectionError` to a connect
    timeout, and a user told "timeout" for a refused port looks in the wrong place."""
    seen: BaseException | None = exc
    while seen is not None:
        if _AIOHTTP_CONNECTION_ERROR is not None and isinstance(seen, _AIOHTTP_CONNECTION_ERROR):
            return not isinstance(seen, _AIOHTTP_TIMEOUTS)
        seen = seen.__cause__ or seen.__context__
    return False


def rejects_request_option(exc: Exception, option: str) -> bool:
    """Whether `exc` is a refusal of the request's shape (400 or 422) that the optional
    field `option` may have caused: the error names no other parameter."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 422):
        return False
    return exc.param in (None, option) or option in str(exc.message)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """The server's requested delay: `retry-after-ms` (OpenAI's) or `retry-after` seconds."""
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw: str | None = headers.get(name)
        if not raw:
            continue
        try:
            return max(0.0, float(raw) * scale)
        except ValueError:  # an HTTP date: rare enough to fall back to our own backoff
            return None
    return None
