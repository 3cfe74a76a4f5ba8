"""A deterministic, OpenAI-compatible chat-completions server for tests and the offline demo.

It is a real HTTP server on loopback, spoken to through the real ``openai`` client, so the
code under test takes the same path it takes against a paid API: SSE parsing, tool-call
fragments, HTTP errors and broken connections included. The reply is decided from the
request alone, in this order:

1. Directives anywhere in the last user message, removed from the echoed text:

   ``[fail:429]``, ``[fail:500]`` (any 4xx/5xx)
       answer with that HTTP status and an OpenAI-shaped error body, before any token.
   ``[fail:429x2]``
       the same, but only for the first 2 requests with this exact last user message.
   ``[fail-after:3]``, ``[fail-after:3x2]``
       stream 3 token chunks, then drop the connection without ``[DONE]`` (every time, or
       only for the first 2 such requests).
   ``[slow:50]``
       50 ms between chunks, overriding the server's ``token_delay_s``.
   ``[think]``
       stream a few ``delta.reasoning_content`` chunks first, as reasoning models do.
   ``[tokens:N]``
       the final answer is exactly N word tokens, ``w1 w2 ... wN`` (for benchmarks).
   ``[narrate]``
       say a few words before calling tools.
   ``[bad-args]``
       tool-call arguments are truncated, invalid JSON.
   ``[no-id]``
       tool-call chunks carry no ``id``.
   ``[call:lookup_order:order_id=A17,count=2]``
       call that tool (if the request offers it) with those arguments (values that parse
       as JSON are JSON, others strings); several ``call`` directives make parallel calls.

2. The last message has role ``tool``: a final answer built from the trailing tool results
   ("The answer is 391." / "The answers are 391 and 12."); a JSON result with a
   ``"result"`` key contributes that value.
3. The request offers a function named ``calculator`` and the last user message holds
   arithmetic (``17 * 23``, ``(2+3)*4``, ``2 ** 10``): one tool call per expression, their
   argument fragments interleaved across chunks, ``finish_reason="tool_calls"``.
4. Otherwise: ``"Turn {n}: you said {echo}."``, where n counts the user messages, so a test
   can tell whether the conversation history reached the model.

Content streams one word per chunk, each after the first with its leading space.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import hashlib
import ipaddress
import json
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

__all__ = [
    "Directives",
    "Reply",
    "ScriptedLLMServer",
    "ScriptedToolCall",
    "create_app",
    "main",
    "parse_directives",
    "plan_reply",
]

MODEL_ID = "scripted"
CALCULATOR = "calculator"
# Tells the openai SDK (and anyone who honours it) to retry a scripted failure almost at
# once, so retry paths are exercised without the SDK's default half-second backoff.
_RETRY_AFTER_MS = "10"
_THINKING = "Let me think about this step by step."
_NARRATION = "Let me calculate that."

# --------------------------------------------------------------------------- directives

_DIRECTIVE = re.compile(
    r"\[(?:(?P<counted>fail-after|fail|slow|tokens):(?P<value>\d+)(?:x(?P<times>\d+))?"
    r"|(?P<flag>think|narrate|bad-args|no-id)"
    r"|call:(?P<call>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<call_args>[^\]]*))?)\]"
)


@dataclass(frozen=True, slots=True)
class Directives:
    """What the bracketed directives of one user message ask for (see the module docstring).

    A ``*_times`` of ``None`` means "every time"; a number means "only for the first that
    many requests with this same last user message".
    """

    fail_status: int | None = None
    fail_times: int | None = None
    fail_after: int | None = None
    fail_after_times: int | None = None
    slow_ms: int | None = None
    tokens: int | None = None
    think: bool = False
    narrate: bool = False
    bad_args: bool = False
    no_id: bool = False
    #: ``[call:...]`` directives: (tool name, arguments)
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()


def parse_directives(text: str) -> tuple[Directives, str]:
    """Split a user message into its directives and the text left once they are removed.

    The remaining text has its whitespace collapsed, so that word tokens reassemble to it.
    """
    found: dict[str, Any] = {}
    for match in _DIRECTIVE.finditer(text):
        if match["call"]:
            found["calls"] = (*found.get("calls", ()), (match["call"], _call_arguments(match["call_args"])))
            continue
        if flag := match["flag"]:
            found[flag.replace("-", "_")] = True
            continue
        value = int(match["value"])
        times = int(match["times"]) if match["times"] else None
        match match["counted"]:
            case "fail" if 400 <= value <= 599:
                found.update(fail_status=value, fail_times=times)
            case "fail-after":
                found.update(fail_after=value, fail_after_times=times)
            case "slow":
                found["slow_ms"] = value
            case "tokens":
                found["tokens"] = value
    return Directives(**found), " ".join(_DIRECTIVE.sub(" ", text).split())


def _call_arguments(text: str | None) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for pair in filter(None, (text or "").split(",")):
        name, _, raw = pair.partition("=")
        try:
            arguments[name.strip()] = json.loads(raw)
        except ValueError:
            arguments[name.strip()] = raw.strip()
    return arguments


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    """One tool call of a scripted reply; ``arguments`` is the full JSON text (or not JSON)."""

    id: str | None
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Reply:
    """What the scripted model says, as the tokens it streams, before any wire framing."""

    content: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = ()
    tool_calls: tuple[ScriptedToolCall, ...] = ()

    @property
    def finish_reason(self) -> str:
        """``"tool_calls"`` when the reply calls tools, else ``"stop"``."""
        return "tool_calls" if self.tool_calls else "stop"


def plan_reply(messages: Sequence[Mapping[str, Any]], tools: Sequence[Any] = ()) -> Reply:
    """Decide the reply to a chat-completions request (rules 2-4 of the module docstring)."""
    directives, echo = parse_directives(_last_user_text(messages))
    reasoning = _words(_THINKING) if directives.think else ()
    if messages and messages[-1].get("role") == "tool":
        answer = _answer_from_results(_trailing_tool_results(messages))
        return Reply(content=_answer_words(answer, directives), reasoning=reasoning)
    offered = {
        tool["function"].get("name") for tool in tools if isinstance(tool, Mapping) and "function" in tool
    }
    named = [(name, args) for name, args in directives.calls if name in offered]
    if named:
        calls = tuple(
            ScriptedToolCall(id=f"call_{len(messages)}_{index}_{name}", name=name, arguments=json.dumps(args))
            for index, (name, args) in enumerate(named)
        )
        return Reply(reasoning=reasoning, tool_calls=calls)
    expressions = _expressions(echo) if _offers_calculator(tools) else []
    if expressions:
        return Reply(
            content=_words(_NARRATION) if directives.narrate else (),
            reasoning=reasoning,
            tool_calls=_calculator_calls(expressions, len(messages), directives),
        )
    turn = sum(1 for message in messages if message.get("role") == "user")
    answer = f"Turn {turn}: you said {echo or 'nothing'}."
    return Reply(content=_answer_words(answer, directives), reasoning=reasoning)


def _words(text: str) -> tuple[str, ...]:
    words = text.split()
    return tuple(word if i == 0 else f" {word}" for i, word in enumerate(words))


def _answer_words(answer: str, directives: Directives) -> tuple[str, ...]:
    if directives.tokens is not None:
        return _words(" ".join(f"w{i}" for i in range(1, directives.tokens + 1)))
    return _words(answer)


def _text(content: Any) -> str:
    """The text of a message ``content``: a string, or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _trailing_tool_results(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The results of the last batch of tool calls: the tool messages ending the list."""
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(_tool_result(_text(message.get("content"))))
    return results[::-1]


def _tool_result(content: str) -> str:
    try:
        parsed = json.loads(content)
    except ValueError:
        return content.strip()
    if isinstance(parsed, dict) and "result" in parsed:
        parsed = parsed["result"]
    return parsed if isinstance(parsed, str) else json.dumps(parsed)


def _answer_from_results(results: Sequence[str]) -> str:
    if len(results) == 1:
        return f"The answer is {results[0]}."
    return f"The answers are {', '.join(results[:-1])} and {results[-1]}."


def _offers_calculator(tools: Sequence[Any]) -> bool:
    return any(
        isinstance(tool, Mapping)
        and isinstance(tool.get("function"), Mapping)
        and tool["function"].get("name") == CALCULATOR
        for tool in tools
    )


_OPERAND = r"\(*\s*-?\d+(?:\.\d+)?\s*\)*"
_EXPRESSION = re.compile(rf"{_OPERAND}(?:\s*(?:\*\*|//|[-+*/%])\s*{_OPERAND})+")


def _expressions(text: str) -> list[str]:
    return [_balanced(match.group()) for match in _EXPRESSION.finditer(text)]


def _balanced(expression: str) -> str:
    """Drop parentheses the regex took from the surrounding prose, e.g. ``(try 2+3)``."""
    expression = expression.strip()
    while expression.count("(") > expression.count(")") and expression.startswith("("):
        expression = expression[1:].strip()
    while expression.count(")") > expression.count("(") and expression.endswith(")"):
        expression = expression[:-1].strip()
    return expression


def _calculator_calls(
    expressions: Sequence[str], turn: int, directives: Directives
) -> tuple[ScriptedToolCall, ...]:
    calls = []
    for index, expression in enumerate(expressions):
        arguments = json.dumps({"expression": expression})
        if directives.bad_args:
            arguments = arguments[:-2]  # cut inside the string: `{"expression": "17 * 23`
        # Derived from the turn too, so the ids of a later turn differ from earlier ones.
        digest = hashlib.sha256(f"{turn}:{index}:{expression}".encode()).hexdigest()
        call_id = None if directives.no_id else f"call_{digest[:24]}"
        calls.append(ScriptedToolCall(id=call_id, name=CALCULATOR, arguments=arguments))
    return tuple(calls)


# --------------------------------------------------------------------------- wire format


def _deltas(reply: Reply) -> list[dict[str, Any]]:
    """The ``delta`` of every token chunk, in stream order (the role chunk excluded)."""
    deltas: list[dict[str, Any]] = [{"reasoning_content": token} for token in reply.reasoning]
    deltas += [{"content": token} for token in reply.content]
    per_call = [list(_tool_call_deltas(index, call)) for index, call in enumerate(reply.tool_calls)]
    deltas += [{"tool_calls": [delta]} for delta in _round_robin(per_call)]
    return deltas


def _tool_call_deltas(index: int, call: ScriptedToolCall) -> Iterator[dict[str, Any]]:
    head: dict[str, Any] = {"index": index, "type": "function"}
    if call.id is not None:
        head["id"] = call.id
    head["function"] = {"name": call.name, "arguments": ""}
    yield head
    for fragment in _fragments(call.arguments):
        yield {"index": index, "function": {"arguments": fragment}}


def _fragments(text: str) -> list[str]:
    """Cut ``text`` into at least three pieces of at most eight characters, as models do."""
    size = max(1, min(8, len(text) // 3))
    return [text[start : start + size] for start in range(0, len(text), size)]


def _round_robin(lists: Sequence[Sequence[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Interleave parallel tool calls, the way a model streams them."""
    for position in range(max((len(items) for items in lists), default=0)):
        for items in lists:
            if position < len(items):
                yield items[position]


def _message(reply: Reply) -> dict[str, Any]:
    content = "".join(reply.content)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content or (None if reply.tool_calls else ""),
    }
    if reply.reasoning:
        message["reasoning_content"] = "".join(reply.reasoning)
    if reply.tool_calls:
        message["tool_calls"] = [_full_tool_call(call) for call in reply.tool_calls]
    return message


def _full_tool_call(call: ScriptedToolCall) -> dict[str, Any]:
    full: dict[str, Any] = {"type": "function"}
    if call.id is not None:
        full["id"] = call.id
    full["function"] = {"name": call.name, "arguments": call.arguments}
    return full


def _usage(messages: Sequence[Mapping[str, Any]], completion_tokens: int) -> dict[str, int]:
    prompt_tokens = sum(len(_text(message.get("content")).split()) for message in messages)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


@dataclass(frozen=True, slots=True)
class _Envelope:
    """The fields every chunk or completion of one response repeats."""

    id: str
    created: int
    model: str
    include_usage: bool

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        chunk = self._head("chat.completion.chunk") | {"choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does: only the final chunk carries usage
        return chunk

    def usage_chunk(self, usage: dict[str, int]) -> dict[str, Any]:
        return self._head("chat.completion.chunk") | {"choices": [], "usage": usage}

    def completion(self, reply: Reply, usage: dict[str, int]) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": _message(reply),
            "logprobs": None,
            "finish_reason": reply.finish_reason,
        }
        return self._head("chat.completion") | {"choices": [choice], "usage": usage}

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


# --------------------------------------------------------------------------- HTTP layer


class _BadRequest(Exception):
    """The request is not a chat-completions request this server can answer."""


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


def _parse_request(raw: bytes) -> _ChatRequest:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise _BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequest("the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty list of messages")
    if not all(isinstance(message, dict) for message in messages):
        raise _BadRequest("every item of 'messages' must be an object")
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise _BadRequest("'tools' must be a list")
    options = body.get("stream_options")
    return _ChatRequest(
        model=str(body.get("model") or MODEL_ID),
        messages=messages,
        tools=tools,
        stream=bool(body.get("stream")),
        include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
    )


def _error_response(status: int, message: str, *, scripted: bool = False) -> JSONResponse:
    if status == 429:
        kind, code = "rate_limit_error", "rate_limit_exceeded"
    elif status >= 500:
        kind, code = "server_error", "internal_error"
    else:
        kind, code = "invalid_request_error", "invalid_request"
    headers = {"retry-after-ms": _RETRY_AFTER_MS} if scripted else None
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class _ScriptState:
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
    """How to send one planned reply: framing, pacing and where to break it."""

    envelope: _Envelope
    reply: Reply
    deltas: list[dict[str, Any]]
    usage: dict[str, int]
    delay_s: float
    break_after: int | None


async def _stream(delivery: _Delivery) -> AsyncIterator[bytes]:
    envelope = delivery.envelope
    yield _sse(envelope.chunk({"role": "assistant", "content": ""}))
    for sent, delta in enumerate(delivery.deltas):
        if sent == delivery.break_after:
            raise _StreamBroken
        if delivery.delay_s:
            await asyncio.sleep(delivery.delay_s)
        yield _sse(envelope.chunk(delta))
    if delivery.break_after is not None:  # asked to break later than the reply ends
        raise _StreamBroken
    yield _sse(envelope.chunk({}, delivery.reply.finish_reason))
    if envelope.include_usage:
        yield _sse(envelope.usage_chunk(delivery.usage))
    yield _sse("[DONE]")


async def _complete(delivery: _Delivery) -> Response:
    if delivery.delay_s:
        # A non-streamed call takes as long as the streamed one would, for fair benchmarks.
        await asyncio.sleep(delivery.delay_s * len(delivery.deltas))
    body = json.dumps(delivery.envelope.completion(delivery.reply, delivery.usage)).encode()
    if delivery.break_after is None:
        return Response(body, media_type="application/json")

    async def truncated() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        raise _StreamBroken

    # The announced length is the whole body, so the client knows it was cut short.
    headers = {"content-length": str(len(body))}
    return _BreakableStreamingResponse(truncated(), media_type="application/json", headers=headers)


async def _chat_completions(state: _ScriptState, request: Request) -> Response:
    state.requests += 1
    try:
        chat = _parse_request(await request.body())
    except _BadRequest as exc:
        return _error_response(400, str(exc))
    prompt = _last_user_text(chat.messages)
    directives, _ = parse_directives(prompt)
    status = directives.fail_status
    if status is not None and state.triggers("fail", prompt, directives.fail_times):
        return _error_response(status, f"scripted failure: HTTP {status}", scripted=True)
    reply = plan_reply(chat.messages, chat.tools)
    deltas = _deltas(reply)
    breaks = directives.fail_after is not None and state.triggers(
        "fail-after", prompt, directives.fail_after_times
    )
    slow_s = None if directives.slow_ms is None else directives.slow_ms / 1000
    delivery = _Delivery(
        envelope=_Envelope(
            id=f"chatcmpl-scripted-{state.requests}",
            created=int(time.time()),
            model=chat.model,
            include_usage=chat.include_usage,
        ),
        reply=reply,
        deltas=deltas,
        usage=_usage(chat.messages, len(deltas)),
        delay_s=state.token_delay_s if slow_s is None else slow_s,
        break_after=directives.fail_after if breaks else None,
    )
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


def _build_app(state: _ScriptState) -> Starlette:
    async def chat_completions(request: Request) -> Response:
        return await _chat_completions(state, request)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", _models, methods=["GET"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ]
    )


def create_app(*, token_delay_s: float = 0.0) -> Starlette:
    """The scripted model as an ASGI app, waiting ``token_delay_s`` between chunks."""
    if token_delay_s < 0:
        raise ValueError(f"token_delay_s must be >= 0, got {token_delay_s}")
    return _build_app(_ScriptState(token_delay_s=token_delay_s))


# --------------------------------------------------------------------------- serving


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts, so a port of 0 is resolved and bind errors raise here."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The host process (pytest, the demo) owns SIGINT/SIGTERM; an embedded server that
        # took them would swallow Ctrl-C meant for its host.
        yield


class _Lifecycle(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class ScriptedLLMServer:
    """Serve the scripted model on loopback, in the running event loop, for one block.

    ::

        async with ScriptedLLMServer() as llm:
            client = AsyncOpenAI(base_url=llm.base_url, api_key="x")

    ``port=0`` (the default) takes a free port; read it back from ``.port``.
    """

    def __init__(
        self,
        *,
        token_delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 10.0,
        shutdown_timeout_s: float = 10.0,
    ) -> None:
        if token_delay_s < 0:
            raise ValueError(f"token_delay_s must be >= 0, got {token_delay_s}")
        self._script = _ScriptState(token_delay_s=token_delay_s)
        self._host = host
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._lifecycle = _Lifecycle.UNOPENED
        self._port: int | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None or self._lifecycle is not _Lifecycle.OPEN:
            raise RuntimeError("the scripted LLM server is not running; use `async with ScriptedLLMServer()`")
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url`` of this server, ``http://127.0.0.1:PORT/v1``."""
        return f"http://{_url_host(self._host)}:{self.port}/v1"

    @property
    def requests(self) -> int:
        """How many chat-completion requests the server has received, failed ones included."""
        return self._script.requests

    async def __aenter__(self) -> ScriptedLLMServer:
        if self._lifecycle is not _Lifecycle.UNOPENED:
            raise RuntimeError("a ScriptedLLMServer runs only once; create a new one")
        self._lifecycle = _Lifecycle.OPEN
        sock = _bind(self._host, self._requested_port)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            _build_app(self._script),
            lifespan="off",
            access_log=False,
            log_config=None,  # the host process owns logging configuration
            # Nothing a test double serves is worth waiting long for at shutdown.
            timeout_graceful_shutdown=1,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[sock]), name=f"scripted-llm:{self._port}"
        )
        try:
            await self._wait_started()
        except BaseException:
            await self._stop()
            sock.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _wait_started(self) -> None:
        assert self._server is not None and self._task is not None
        async with asyncio.timeout(self._startup_timeout_s):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises what stopped the server
                    raise RuntimeError("the scripted LLM server stopped while starting")
                await asyncio.sleep(0.005)

    async def _stop(self) -> None:
        self._lifecycle = _Lifecycle.CLOSED
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        # uvicorn cancels lingering responses after timeout_graceful_shutdown; this bound
        # is the backstop should that ever hang.
        await asyncio.wait_for(self._task, timeout=self._shutdown_timeout_s)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m worker.scripted_llm",
        description="Run the deterministic, OpenAI-compatible scripted model in the foreground.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="TCP port, 0 for a free one")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between chunks (default: 0)")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    parser.add_argument("--allow-remote", action="store_true", help="allow listening on a non-loopback host")
    args = parser.parse_args(argv)
    if not (args.allow_remote or _is_loopback(args.host)):
        parser.error(
            f"refusing to listen on non-loopback host {args.host!r}: this is a test double; "
            "pass --allow-remote to do it anyway"
        )
    if args.token_delay < 0:
        parser.error("--token-delay must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m worker.scripted_llm --host 127.0.0.1 --port 8900``."""
    args = _parse_args(argv)
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    # Printed first and flushed, so a parent started with --port 0 learns the port.
    print(f"scripted LLM listening on http://{_url_host(args.host)}:{port}/v1", flush=True)
    config = uvicorn.Config(
        create_app(token_delay_s=args.token_delay), lifespan="off", log_level=args.log_level
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
