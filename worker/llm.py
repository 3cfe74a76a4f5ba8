"""The model client and the pure accumulators that turn its deltas into events.

Two layers, kept apart on purpose:

- `OpenAIClient.stream_chat` is the only I/O: it calls an OpenAI-compatible
  `/chat/completions` endpoint with `stream=True`, maps every chunk to typed deltas
  (`TextDelta`, `ThinkingDelta`, `ToolCallFragment`, `Usage`, `Finish`) and retries
  transient failures, but only while nothing has been yielded yet.
- `ToolCallAccumulator` and `TurnAccumulator` are synchronous and pure: they assemble
  fragments into `tool_call_delta` payloads, ready tool calls and the assistant message,
  and are unit-tested without a network.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeAlias

import httpx
import openai
import orjson
from agentstream.streams.settings import env_number
from agentstream.worker.errors import (
    ConfigurationError,
    ModelError,
    ModelStreamBroken,
    ModelUnavailable,
)
from openai.types.chat import ChatCompletionChunk

__all__ = [
    "Finish",
    "ModelDelta",
    "ModelSettings",
    "OpenAIClient",
    "ReadyToolCall",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallAccumulator",
    "ToolCallFragment",
    "TurnAccumulator",
    "Usage",
    "chunk_to_deltas",
]

logger = logging.getLogger(__name__)

#: API key sent to OpenAI-compatible servers that need none (the SDK insists on one).
NO_API_KEY = "sk-no-key"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Everything the model client needs, read once from the environment.

    `read_timeout_s` bounds every wait for the next bytes of a response (so a stalled
    stream fails instead of hanging); `connect_timeout_s` bounds opening a connection.
    `max_retries` counts retries after the first attempt; the delay before retry N is
    `min(backoff_max_s, backoff_base_s * 2**(N-1))`, half of it randomised (jitter).
    """

    base_url: str | None = None
    api_key: str | None = None
    model: str = "gpt-4o-mini"
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ConfigurationError("model timeouts must be positive numbers of seconds")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ConfigurationError(
                "model backoff must satisfy 0 <= backoff_base_s <= backoff_max_s, got "
                f"{self.backoff_base_s} and {self.backoff_max_s}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ModelSettings:
        """Read `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `AGENTSTREAM_MODEL`,
        `AGENTSTREAM_MODEL_TIMEOUT_S` (read), `AGENTSTREAM_MODEL_CONNECT_TIMEOUT_S`,
        `AGENTSTREAM_MODEL_RETRIES`, `AGENTSTREAM_MODEL_BACKOFF_S` and
        `AGENTSTREAM_MODEL_BACKOFF_MAX_S`; empty values count as unset."""
        env = os.environ if environ is None else environ
        default = cls()
        base_url = env.get("OPENAI_BASE_URL") or None
        return cls(
            base_url=base_url,
            api_key=env.get("OPENAI_API_KEY") or (NO_API_KEY if base_url else None),
            model=env.get("AGENTSTREAM_MODEL") or default.model,
            connect_timeout_s=env_number(
                env,
                "AGENTSTREAM_MODEL_CONNECT_TIMEOUT_S",
                default.connect_timeout_s,
                error=ConfigurationError,
            ),
            read_timeout_s=env_number(
                env, "AGENTSTREAM_MODEL_TIMEOUT_S", default.read_timeout_s, error=ConfigurationError
            ),
            max_retries=int(
                env_number(env, "AGENTSTREAM_MODEL_RETRIES", default.max_retries, error=ConfigurationError)
            ),
            backoff_base_s=env_number(
                env, "AGENTSTREAM_MODEL_BACKOFF_S", default.backoff_base_s, error=ConfigurationError
            ),
            backoff_max_s=env_number(
                env, "AGENTSTREAM_MODEL_BACKOFF_MAX_S", default.backoff_max_s, error=ConfigurationError
            ),
        )


# --------------------------------------------------------------------------- deltas


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the visible answer."""

    content: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """A piece of reasoning (`reasoning_content` / `reasoning` of reasoning models)."""

    content: str


@dataclass(frozen=True, slots=True)
class ToolCallFragment:
    """A piece of tool call `index`; the id and name arrive once, or late, or never."""

    index: int
    tool_call_id: str | None
    tool_name: str | None
    arguments_delta: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one model call."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class Finish:
    """The model finished its turn (`stop`, `tool_calls`, `length`, ...)."""

    reason: str


ModelDelta: TypeAlias = TextDelta | ThinkingDelta | ToolCallFragment | Usage | Finish


def parse_chunk(chunk: Mapping[str, Any]) -> list[ModelDelta]:
    """Map one streamed chunk, as decoded JSON, to deltas (the hot path of every token).

    Same mapping as :func:`chunk_to_deltas`, without building the SDK's pydantic models,
    which cost ~70 µs a chunk: most of a worker's CPU per token.
    """
    deltas: list[ModelDelta] = []
    choices = chunk.get("choices") or ()
    for choice in choices[:1]:  # we never ask for n > 1
        delta = choice.get("delta") or {}
        thinking = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(thinking, str) and thinking:
            deltas.append(ThinkingDelta(thinking))
        content = delta.get("content")
        if content:
            deltas.append(TextDelta(content))
        for position, call in enumerate(delta.get("tool_calls") or ()):
            function = call.get("function") or {}
            index = call.get("index")
            deltas.append(
                ToolCallFragment(
                    index=index if isinstance(index, int) else position,
                    tool_call_id=call.get("id") or None,
                    tool_name=function.get("name") or None,
                    arguments_delta=function.get("arguments") or "",
                )
            )
        if choice.get("finish_reason"):
            deltas.append(Finish(choice["finish_reason"]))
    usage = chunk.get("usage")
    if usage:
        deltas.append(
            Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                total_tokens=int(usage.get("total_tokens") or 0),
            )
        )
    return deltas


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


class _StreamErrorEvent(Exception):
    """An ``error`` object inside a 200 stream."""


def chunk_to_deltas(chunk: ChatCompletionChunk) -> list[ModelDelta]:
    """Map one streamed chunk to deltas, in the order a reader expects them."""
    deltas: list[ModelDelta] = []
    for choice in chunk.choices[:1]:  # we never ask for n > 1
        delta = choice.delta
        extra = delta.model_extra or {}
        thinking = extra.get("reasoning_content") or extra.get("reasoning")
        if isinstance(thinking, str) and thinking:
            deltas.append(ThinkingDelta(thinking))
        if delta.content:
            deltas.append(TextDelta(delta.content))
        for position, call in enumerate(delta.tool_calls or ()):
            function = call.function
            # Some compatible servers omit `index`; the position is the best stand-in.
            index = call.index if isinstance(call.index, int) else position
            deltas.append(
                ToolCallFragment(
                    index=index,
                    tool_call_id=call.id or None,
                    tool_name=(function.name or None) if function else None,
                    arguments_delta=(function.arguments or "") if function else "",
                )
            )
        if choice.finish_reason:
            deltas.append(Finish(choice.finish_reason))
    if chunk.usage is not None:
        deltas.append(
            Usage(
                prompt_tokens=chunk.usage.prompt_tokens,
                completion_tokens=chunk.usage.completion_tokens,
                total_tokens=chunk.usage.total_tokens,
            )
        )
    return deltas


# --------------------------------------------------------------------------- client


@dataclass(frozen=True, slots=True)
class _Failure:
    retryable: bool
    error_type: str
    status_code: int | None = None
    retry_after_s: float | None = None


class _IncompleteStream(Exception):
    """The server closed the stream without a finish reason."""


def _classify(exc: Exception) -> _Failure:
    if isinstance(exc, openai.APITimeoutError):
        return _Failure(True, "timeout")
    if isinstance(exc, (openai.APIConnectionError, *_TRANSPORT_ERRORS)):
        return _Failure(True, "connection_error")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return _Failure(True, "rate_limited", status, _retry_after(exc))
        if status == 408:
            return _Failure(True, "timeout", status)
        if status >= 500:
            return _Failure(True, "server_error", status, _retry_after(exc))
        return _Failure(False, "client_error", status)
    if isinstance(exc, openai.APIError | _IncompleteStream | _StreamErrorEvent | orjson.JSONDecodeError):
        # An error event inside a 200 stream, or a stream cut short: the server's trouble.
        return _Failure(True, "stream_error")
    return _Failure(False, "invalid_response")


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


async def _sse_chunks(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of an OpenAI SSE body, until ``[DONE]``."""
    async for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments, ``event:`` lines
        data = line[5:].strip()
        if data == "[DONE]":
            return
        chunk = orjson.loads(data)
        if isinstance(chunk, dict) and chunk.get("error"):
            raise _StreamErrorEvent(f"the model stream reported an error: {chunk['error']}")
        if isinstance(chunk, dict):
            yield chunk


class OpenAIClient:
    """Streams chat completions from an OpenAI-compatible server, with retries.

    Owns an `openai.AsyncOpenAI`; use it as an async context manager or call `aclose()`.
    """

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings if settings is not None else ModelSettings.from_env()
        api_key = self.settings.api_key or (NO_API_KEY if self.settings.base_url else None)
        if api_key is None:
            raise ConfigurationError(
                "no model API key: set OPENAI_API_KEY, or point OPENAI_BASE_URL at an "
                "OpenAI-compatible server that needs none"
            )
        self._sdk = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self.settings.base_url,
            timeout=openai.Timeout(self.settings.read_timeout_s, connect=self.settings.connect_timeout_s),
            max_retries=0,  # we retry ourselves, and only before the first delta
        )
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
        """Stream one model turn as deltas.

        Transient failures (429, 5xx, timeouts, connection errors) are retried with
        backoff while nothing has been yielded; then `ModelUnavailable` is raised. Other
        4xx raise `ModelError(retryable=False)` at once. Once a delta has been yielded,
        any failure raises `ModelStreamBroken`: the caller must drop the partial turn.
        `options` are further request fields (`temperature`, `max_tokens`, ...).
        """
        if self._closed:
            raise ConfigurationError("cannot stream from a closed OpenAIClient")
        request: dict[str, Any] = {
            "model": model or self.settings.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            request["tools"] = tools
        if options:  # sampling options (temperature, ...), sent as top-level body fields
            request["extra_body"] = dict(options)
        attempt = 0
        while True:
            attempt += 1
            yielded = False
            try:
                # The SDK sends the request (auth, timeouts, status errors as openai
                # exceptions); we read the SSE body ourselves with orjson.
                async with self._sdk.chat.completions.with_streaming_response.create(**request) as response:
                    finished = False
                    async for chunk in _sse_chunks(response.iter_lines()):
                        for delta in parse_chunk(chunk):
                            finished = finished or isinstance(delta, Finish)
                            yielded = True
                            yield delta
                if not finished:
                    raise _IncompleteStream("the stream ended without a finish reason")
                return
            except Exception as exc:  # CancelledError is a BaseException: it passes through
                delay = self._delay_or_raise(exc, attempt=attempt, yielded=yielded)
            await asyncio.sleep(delay)

    def _delay_or_raise(self, exc: Exception, *, attempt: int, yielded: bool) -> float:
        """The delay before retrying after `exc`, or the `ModelError` to raise instead."""
        failure = _classify(exc)
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


# --------------------------------------------------------------------------- accumulators


@dataclass(frozen=True, slots=True)
class ReadyToolCall:
    """A complete tool call. `error` is set (and `parameters` is None) when it is unusable:
    the agent reports it as a `tool_error` the model sees, instead of crashing."""

    index: int
    tool_call_id: str
    tool_name: str
    parameters: dict[str, Any] | None
    error: str | None = None
    arguments: str = ""

    def as_event_item(self) -> dict[str, Any]:
        """The item of a `tool_calls_ready` event's `tool_calls` list."""
        return {
            "index": self.index,
            "tool_call_id": self.tool_call_id,
            "tool_name": self.tool_name,
            "parameters": dict(self.parameters) if self.parameters is not None else None,
        }


@dataclass(slots=True)
class _PartialCall:
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments: str = ""


class ToolCallAccumulator:
    """Assembles interleaved `ToolCallFragment`s into tool calls, keyed by index.

    The first id and name seen for an index win (some servers repeat them on every
    fragment). `id_salt` goes into the ids generated for calls that arrive without one:
    give each model turn of a task a distinct salt so ids never collide across turns,
    while the same turn replayed in a later attempt gets the same ids.
    """

    def __init__(self, *, id_salt: str = "") -> None:
        self._id_salt = id_salt
        self._calls: dict[int, _PartialCall] = {}

    def feed(self, fragment: ToolCallFragment) -> dict[str, Any]:
        """Record a fragment; return the fields of its `tool_call_delta` event."""
        call = self._calls.setdefault(fragment.index, _PartialCall())
        if call.tool_call_id is None and fragment.tool_call_id:
            call.tool_call_id = fragment.tool_call_id
        if call.tool_name is None and fragment.tool_name:
            call.tool_name = fragment.tool_name
        call.arguments += fragment.arguments_delta
        payload: dict[str, Any] = {"index": fragment.index}
        if call.tool_call_id is not None:
            payload["tool_call_id"] = call.tool_call_id
        if call.tool_name is not None:
            payload["tool_name"] = call.tool_name
        payload["arguments_delta"] = fragment.arguments_delta
        payload["arguments"] = call.arguments
        return payload

    def __len__(self) -> int:
        return len(self._calls)

    def finish(self) -> list[ReadyToolCall]:
        """The calls seen so far, sorted by index, with arguments parsed."""
        return [self._ready(index, self._calls[index]) for index in sorted(self._calls)]

    def _ready(self, index: int, call: _PartialCall) -> ReadyToolCall:
        tool_call_id = call.tool_call_id or self._generated_id(index, call)
        parameters, error = _parse_arguments(call.arguments)
        if call.tool_name is None:
            parameters, error = None, f"tool call {index} has no function name"
        return ReadyToolCall(
            index=index,
            tool_call_id=tool_call_id,
            tool_name=call.tool_name or "",
            parameters=parameters,
            error=error,
            arguments=call.arguments,
        )

    def _generated_id(self, index: int, call: _PartialCall) -> str:
        material = "\x00".join((self._id_salt, str(index), call.tool_name or "", call.arguments))
        return f"call_{index}_{hashlib.sha256(material.encode()).hexdigest()[:12]}"


def _parse_arguments(arguments: str) -> tuple[dict[str, Any] | None, str | None]:
    if not arguments.strip():
        return {}, None
    try:
        parsed = json.loads(arguments)
    except ValueError as exc:
        return None, f"invalid JSON arguments: {exc}"
    if not isinstance(parsed, dict):
        return None, f"invalid JSON arguments: expected an object, got {type(parsed).__name__}"
    return parsed, None


class TurnAccumulator:
    """Collects one model turn: text, thinking, tool calls, usage and finish reason.

    `feed` returns the payload of the event to write for each delta (or None), so the
    async layer that drives the model only has to forward them.
    """

    def __init__(self, *, id_salt: str = "") -> None:
        self._text: list[str] = []
        self._thinking: list[str] = []
        self.tool_calls = ToolCallAccumulator(id_salt=id_salt)
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    def feed(self, delta: ModelDelta) -> dict[str, Any] | None:
        """Record a delta; return `{"type": ..., fields...}` for its event, if it has one."""
        match delta:
            case TextDelta(content=content):
                self._text.append(content)
                return {"type": "token", "content": content}
            case ThinkingDelta(content=content):
                self._thinking.append(content)
                return {"type": "thinking_token", "content": content}
            case ToolCallFragment():
                return {"type": "tool_call_delta", **self.tool_calls.feed(delta)}
            case Usage():
                self.usage = delta
                return {"type": "usage", **self.usage_fields()}
            case Finish(reason=reason):
                self.finish_reason = reason
                return None

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def thinking(self) -> str:
        return "".join(self._thinking)

    def usage_fields(self) -> dict[str, int]:
        """The `usage` event fields (zeros when the server sent no usage)."""
        usage = self.usage or Usage(0, 0, 0)
        return {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }

    def ready_tool_calls(self) -> list[ReadyToolCall]:
        return self.tool_calls.finish()

    def assistant_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation for this turn.

        Unusable calls keep their id (every call needs a matching tool message) but send
        `{}` as arguments, since some servers reject a history with invalid JSON.
        """
        calls = self.tool_calls.finish()
        text = self.text
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if not calls:
            message["content"] = text
            return message
        message["tool_calls"] = [
            {
                "id": call.tool_call_id,
                "type": "function",
                "function": {
                    "name": call.tool_name,
                    "arguments": _message_arguments(call),
                },
            }
            for call in calls
        ]
        return message


def _message_arguments(call: ReadyToolCall) -> str:
    usable = call.error is None and call.arguments.strip()
    return call.arguments if usable else "{}"
