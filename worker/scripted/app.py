"""The scripted model's HTTP layer: a Starlette app speaking OpenAI's chat completions."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from agentstream.worker.scripted.directives import (
    Directives,
    UnknownDirective,
    merge_directives,
    parse_directives,
    parse_route_directives,
)
from agentstream.worker.scripted.planner import last_user_text, plan_reply
from agentstream.worker.scripted.wire import Envelope, Script, build_script, sse, usage_of

__all__ = ["MODEL_ID", "ScriptState", "build_app", "create_app"]

MODEL_ID = "scripted"
# Tells the openai SDK (and anyone who honours it) to retry a scripted failure almost at
# once, so retry paths are exercised without the SDK's default half-second backoff.
_RETRY_AFTER_MS = "10"


class _BadRequest(Exception):
    """The request is not a chat-completions request this server can answer."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class _StreamBroken(Exception):
    """Raised by a body iterator to drop the connection in the middle of the body."""


class _BreakableStreamingResponse(StreamingResponse):
    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except _StreamBroken:
            # Returning without the final body message makes uvicorn close the connection
            # mid-body: what a client sees when a provider dies in the middle of a stream.
            return


@dataclass(frozen=True, slots=True)
class _ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    tools: list[Any]
    stream: bool
    include_usage: bool
    has_stream_options: bool
    max_tokens: int | None


def _parse_request(raw: bytes) -> _ChatRequest:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise _BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequest("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty list of messages", "messages")
    if not all(isinstance(message, dict) for message in messages):
        raise _BadRequest("every item of 'messages' must be an object", "messages")
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise _BadRequest("'tools' must be a list", "tools")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise _BadRequest("'max_tokens' must be a positive integer", "max_tokens")
    options = body.get("stream_options")
    return _ChatRequest(
        model=str(body.get("model") or MODEL_ID),
        messages=messages,
        tools=tools,
        stream=bool(body.get("stream")),
        include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
        has_stream_options=options is not None,
        max_tokens=limit,
    )


def _error_response(
    status: int, message: str, *, scripted: bool = False, param: str | None = None
) -> Response:
    if status == 429:
        kind, code = "rate_limit_error", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", "internal_error"
    else:
        kind, code = "invalid_request_error", "invalid_request"
    headers = {"retry-after-ms": _RETRY_AFTER_MS} if scripted else None
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class ScriptState:
    """What one server remembers between requests."""

    token_delay_s: float
    requests: int = 0
    _seen: Counter[tuple[str, str]] = field(default_factory=Counter)

    def triggers(self, kind: str, prompt: str, times: int | None) -> bool:
        """Whether a directive fires for this request: always, or the first ``times``."""
        if times is None:
            return True
        self._seen[kind, prompt] += 1
        return self._seen[kind, prompt] <= times


@dataclass(frozen=True, slots=True)
class _Delivery:
    """How to send one planned reply: framing, pacing, usage and where to break it."""

    envelope: Envelope
    script: Script
    usage: dict[str, Any]
    include_usage: bool
    delay_s: float
    break_after: int | None
    no_done: bool

    def running_usage(self, sent: int) -> dict[str, Any] | None:
        """The usage so far, which this server puts on every chunk (as vLLM's continuous
        usage stats do), so clients must keep one per call."""
        if not self.include_usage:
            return None
        prompt = self.usage["prompt_tokens"]
        return self.usage | {
            "completion_tokens": sent,
            "total_tokens": prompt + sent,
            "completion_tokens_details": {"reasoning_tokens": min(sent, self.script.reasoning_tokens)},
        }


async def _stream(delivery: _Delivery) -> AsyncIterator[bytes]:
    envelope, script = delivery.envelope, delivery.script
    yield sse(envelope.chunk({"role": "assistant", "content": ""}, usage=delivery.running_usage(0)))
    for sent, delta in enumerate(script.deltas):
        if sent == delivery.break_after:
            raise _StreamBroken
        if delivery.delay_s:
            await asyncio.sleep(delivery.delay_s)
        yield sse(envelope.chunk(delta, usage=delivery.running_usage(sent + 1)))
    if delivery.break_after is not None:  # asked to break later than the reply ends
        raise _StreamBroken
    if script.finish_reason is not None:
        usage = delivery.running_usage(len(script.deltas))
        yield sse(envelope.chunk({}, script.finish_reason, usage=usage))
    if delivery.include_usage:
        yield sse(envelope.usage_chunk(delivery.usage))
    if not delivery.no_done:
        yield sse("[DONE]")


async def _complete(delivery: _Delivery) -> Response:
    if delivery.delay_s:
        # A non-streamed call takes as long as the streamed one would, for fair benchmarks.
        await asyncio.sleep(delivery.delay_s * len(delivery.script.deltas))
    body = json.dumps(delivery.envelope.completion(delivery.script, delivery.usage)).encode()
    if delivery.break_after is None:
        return Response(body, media_type="application/json")

    async def truncated() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        raise _StreamBroken

    # The announced length is the whole body, so the client knows it was cut short.
    headers = {"content-length": str(len(body))}
    return _BreakableStreamingResponse(truncated(), media_type="application/json", headers=headers)


def _directives(request: Request, chat: _ChatRequest) -> Directives:
    """The route's directives, then the model name's, then the message's (which win)."""
    route = parse_route_directives(request.path_params.get("directives", ""))
    model = parse_directives(chat.model)[0]
    return merge_directives(route, model, parse_directives(last_user_text(chat.messages))[0])


def _delivery(state: ScriptState, chat: _ChatRequest, directives: Directives) -> _Delivery:
    prompt = last_user_text(chat.messages)
    script = build_script(plan_reply(chat.messages, chat.tools, directives), directives, chat.max_tokens)
    breaks = directives.fail_after is not None and state.triggers(
        "fail-after", prompt, directives.fail_after_times
    )
    slow_s = None if directives.slow_ms is None else directives.slow_ms / 1000
    return _Delivery(
        envelope=Envelope(
            id=f"chatcmpl-scripted-{state.requests}", created=int(time.time()), model=chat.model
        ),
        script=script,
        usage=usage_of(chat.messages, len(script.deltas), script.reasoning_tokens),
        include_usage=chat.include_usage,
        delay_s=state.token_delay_s if slow_s is None else slow_s,
        break_after=directives.fail_after if breaks else None,
        no_done=directives.no_done,
    )


async def _chat_completions(state: ScriptState, request: Request) -> Response:
    state.requests += 1
    try:
        chat = _parse_request(await request.body())
        directives = _directives(request, chat)
    except _BadRequest as exc:
        return _error_response(400, str(exc), param=exc.param)
    except UnknownDirective as exc:
        return _error_response(404, str(exc))
    if directives.reject_stream_options and chat.has_stream_options:
        message = "Unrecognized request argument supplied: stream_options"
        return _error_response(400, message, param="stream_options")
    status = directives.fail_status
    if status is not None and state.triggers("fail", last_user_text(chat.messages), directives.fail_times):
        return _error_response(status, f"scripted failure: HTTP {status}", scripted=True)
    delivery = _delivery(state, chat, directives)
    if not chat.stream:
        return await _complete(delivery)
    return _BreakableStreamingResponse(
        _stream(delivery), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


async def _models(request: Request) -> Response:
    model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "agentstream"}
    return JSONResponse({"object": "list", "data": [model]})


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def build_app(state: ScriptState) -> Starlette:
    """The app over ``state``: ``/v1/...``, and ``/with/<directives>/v1/...`` whose
    directives apply to every request of that route."""

    async def chat_completions(request: Request) -> Response:
        return await _chat_completions(state, request)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/with/{directives}/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", _models, methods=["GET"]),
            Route("/with/{directives}/v1/models", _models, methods=["GET"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ]
    )


def create_app(*, token_delay_s: float = 0.0) -> Starlette:
    """The scripted model as an ASGI app, waiting ``token_delay_s`` between chunks."""
    if token_delay_s < 0:
        raise ValueError(f"token_delay_s must be >= 0, got {token_delay_s}")
    return build_app(ScriptState(token_delay_s=token_delay_s))
