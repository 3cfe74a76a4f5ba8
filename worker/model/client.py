"""The model client: the one place that talks to an OpenAI-compatible server.

`OpenAIClient.stream_chat` calls `/chat/completions` with `stream=True`, feeds the body's
lines to a pure :class:`~agentstream.worker.model.stream.ResponseReader` and yields its
deltas, retrying transient failures while nothing has been yielded yet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import openai

from agentstream.worker.errors import ConfigurationError, ModelError, ModelStreamBroken, ModelUnavailable
from agentstream.worker.model.deltas import ModelDelta
from agentstream.worker.model.failures import classify, rejects_request_option
from agentstream.worker.model.settings import NO_API_KEY, ModelSettings
from agentstream.worker.model.stream import ResponseReader

__all__ = ["OpenAIClient"]

logger = logging.getLogger(__name__)

#: Base URLs of servers that answered `stream_options` with a 400 in this process.
_REJECTS_STREAM_OPTIONS: set[str] = set()
_STREAM_OPTIONS = {"include_usage": True}


@dataclass(slots=True)
class _Call:
    """One `stream_chat` call: its request, and what its attempts have done so far."""

    request: dict[str, Any]
    yielded: bool = False
    dropped_stream_options: bool = False


class OpenAIClient:
    """Streams chat completions from an OpenAI-compatible server, with retries.

    Owns an `openai.AsyncOpenAI`; use it as an async context manager or call `aclose()`.
    Without `settings`, they are read from `os.environ` now (for scripts; a worker passes
    the settings it built from its own configuration).
    """

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings if settings is not None else ModelSettings.from_env(os.environ)
        api_key = self.settings.api_key or (NO_API_KEY if self.settings.base_url else None)
        if api_key is None:
            raise ConfigurationError(
                "no model API key: set OPENAI_API_KEY, or point OPENAI_BASE_URL at an "
                "OpenAI-compatible server that needs none"
            )
        timeout = openai.Timeout(self.settings.read_timeout_s, connect=self.settings.connect_timeout_s)
        self._sdk = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self.settings.base_url,
            timeout=timeout,
            max_retries=0,  # we retry ourselves, and only before the first delta
            http_client=_http_client(self.settings, timeout),
        )
        self._server = str(self._sdk.base_url)
        self._closed = False
        self._rng = random.Random()

    async def __aenter__(self) -> Self:
        if self._closed:
            raise ConfigurationError("cannot reopen a closed OpenAIClient; create a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections; further calls raise `ConfigurationError`."""
        if not self._closed:
            self._closed = True
            await self._sdk.close()

    async def stream_chat(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        model: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[ModelDelta]:
        """Stream one model turn as deltas (usage, if any, comes last and once).

        ``options`` are further request fields (``temperature``, ``max_tokens``, ...).

        Transient failures (429, 5xx, timeouts, connection errors, a body cut off) are
        retried with backoff while nothing has been yielded; then `ModelUnavailable` is
        raised. Other 4xx raise `ModelError(retryable=False)` at once. Once a delta has
        been yielded, any failure raises `ModelStreamBroken`: the caller must drop the
        partial turn.
        """
        if self._closed:
            raise ConfigurationError("cannot stream from a closed OpenAIClient")
        call = _Call(self._request(messages, tools, model, options))
        attempt = 0
        while True:
            attempt += 1
            # One request: the SDK sends it (auth, timeouts, status errors as openai
            # exceptions); we read the SSE body ourselves, with orjson (e8c00a3: agent CPU
            # per token 108 -> 19 µs), from its raw bytes (httpx's text decoding and line
            # splitting and the SDK's iter_lines were a third of the body's path per token).
            # Inline rather than in a generator of its own: every layer of async generators
            # costs each token a few µs.
            reader = ResponseReader()
            try:
                async with self._sdk.chat.completions.with_streaming_response.create(
                    **call.request
                ) as response:
                    async for piece in _body(response.http_response):
                        deltas = reader.feed_bytes(piece)
                        if deltas:
                            call.yielded = True
                            for delta in deltas:
                                yield delta
                        if reader.done:
                            break
                deltas = reader.close()
                if deltas:
                    call.yielded = True
                    for delta in deltas:
                        yield delta
                self._remember_options(call)
                return
            except Exception as exc:  # CancelledError is a BaseException: it passes through
                if self._drop_stream_options(call, exc):
                    attempt -= 1  # asking without the option is no retry of a failure
                    continue
                delay = self._delay_or_raise(exc, attempt=attempt, yielded=call.yielded)
            await asyncio.sleep(delay)

    def _request(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        model: str | None,
        options: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        # The history, the tools and the options go in ``extra_body``, which the SDK merges
        # into the JSON body as it is; what ``create`` takes itself it first walks against
        # its TypedDicts (`_transform`), in Python, on every call: 0.6 ms for a two-message
        # prompt, 8-10 ms for 31 messages and 5 tools, all of it blocking the event loop that
        # streams every other task's tokens. For the JSON dicts agents build that walk
        # changes nothing; tests/worker/test_model_body.py checks the body is the one
        # ``create`` sends. ``messages`` stays an argument, empty, as ``create`` requires it.
        body: dict[str, Any] = {"messages": messages}
        if tools:
            body["tools"] = tools
        if options:  # sampling options (temperature, ...), sent as top-level body fields
            body.update(options)
        request: dict[str, Any] = {
            "model": model or self.settings.model,
            "messages": [],
            "stream": True,
            "extra_body": body,
        }
        if self.settings.stream_options and self._server not in _REJECTS_STREAM_OPTIONS:
            request["stream_options"] = _STREAM_OPTIONS
        return request

    def _drop_stream_options(self, call: _Call, exc: Exception) -> bool:
        """Whether to ask again without `stream_options`, which this server may reject.

        Any 400/422 that names no other parameter qualifies (servers word it differently):
        a request bad for another reason costs one more request, and the server is
        remembered only once a request without the option has succeeded."""
        if (
            call.yielded
            or "stream_options" not in call.request
            or not rejects_request_option(exc, "stream_options")
        ):
            return False
        del call.request["stream_options"]
        call.dropped_stream_options = True
        logger.info("%s answered %s; asking again without stream_options", self._server, exc)
        return True

    def _remember_options(self, call: _Call) -> None:
        if call.dropped_stream_options and self._server not in _REJECTS_STREAM_OPTIONS:
            _REJECTS_STREAM_OPTIONS.add(self._server)
            logger.warning(
                "the model server at %s rejects stream_options: no longer sending it "
                "(token usage is not reported); set AGENTSTREAM_MODEL_STREAM_OPTIONS=0 to "
                "skip the first rejected request",
                self._server,
            )

    def _delay_or_raise(self, exc: Exception, *, attempt: int, yielded: bool) -> float:
        """The delay before retrying after `exc`, or the `ModelError` to raise instead."""
        failure = classify(exc)
        if yielded:
            raise ModelStreamBroken(
                f"the model stream broke after output was streamed: {exc}",
                status_code=failure.status_code,
            ) from exc
        if not failure.retryable:
            raise ModelError(
                f"the model request was rejected: {exc}",
                retryable=False,
                error_type=failure.error_type,
                status_code=failure.status_code,
            ) from exc
        if attempt > self.settings.max_retries:
            raise ModelUnavailable(
                f"the model is unavailable after {attempt} attempts: {exc}",
                attempts=attempt,
                error_type=failure.error_type,
                status_code=failure.status_code,
            ) from exc
        delay = self._backoff(attempt, failure.retry_after_s)
        logger.warning(
            "model call failed (%s), retry %d/%d in %.2fs: %s",
            failure.error_type,
            attempt,
            self.settings.max_retries,
            delay,
            exc,
        )
        return delay

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        settings = self.settings
        if retry_after_s is not None:
            return min(settings.backoff_max_s, retry_after_s)
        ceiling = min(settings.backoff_max_s, settings.backoff_base_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)


def _body(response: Any) -> AsyncIterator[bytes]:
    """The pieces of a response's body as they arrive: raw, unless it is compressed."""
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        return response.aiter_bytes()  # type: ignore[no-any-return]
    return response.aiter_raw()  # type: ignore[no-any-return]


def _http_client(settings: ModelSettings, timeout: openai.Timeout) -> Any:
    """The SDK's HTTP client for ``settings.http`` (None: the SDK builds its default)."""
    if settings.http == "httpx":
        return None
    # Per token at a model's pace, httpx's chain (h11, an anyio cancel scope per read,
    # four async iterators) cost the worker 560 µs of CPU per event against 445 through
    # aiohttp's C parser, side by side in bench/worker_pace.py on a busy box.
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    try:
        return aiohttp_client(timeout=timeout) if aiohttp_client is not None else None
    except RuntimeError:  # the SDK without its aiohttp extra: "install openai[aiohttp]"
        logger.warning("aiohttp is not installed: the model client sends through httpx")
        return None
