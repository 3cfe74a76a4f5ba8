"""The model client sends the history, the tools and the options through ``extra_body``,
past the SDK's TypedDict walk (`worker/model/client.py`): the JSON body must be the one the
SDK's own ``chat.completions.create`` sends for the same request, on both transports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from agentstream.worker.model import ModelSettings, OpenAIClient

SSE = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


class CaptureServer:
    """An HTTP/1.1 server on loopback that keeps each request's JSON body and answers
    every request with a one-token SSE stream."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def __aenter__(self) -> CaptureServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.bodies.append(json.loads(await reader.readexactly(length)))
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    + f"content-length: {len(SSE)}\r\n\r\n".encode()
                    + SSE
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the web.",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "n": {"type": "integer", "default": 3}},
                "required": ["q"],
            },
        },
    }
]
HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
            },
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"q": "cat"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "a cat, é ✓ \u2028"},
    {"role": "assistant", "content": "A cat.", "name": "helper"},
    {"role": "user", "content": "And the colour?"},
]
OPTIONS: dict[str, Any] = {
    "temperature": 0.2,
    "max_tokens": 64,
    "response_format": {"type": "json_object"},
    "metadata": {"run": "r1"},
    "tool_choice": "auto",
}


@pytest.fixture
async def capture() -> AsyncIterator[CaptureServer]:
    async with CaptureServer() as server:
        yield server


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
@pytest.mark.parametrize(
    ("tools", "options"), [(None, None), (TOOLS, None), (TOOLS, OPTIONS)], ids=["plain", "tools", "options"]
)
async def test_the_body_is_the_one_the_sdks_create_sends(
    capture: CaptureServer, http: str, tools: list[dict[str, Any]] | None, options: dict[str, Any] | None
) -> None:
    settings = ModelSettings(base_url=capture.base_url, model="m", http=http, max_retries=0)
    async with OpenAIClient(settings) as client:
        deltas = [d async for d in client.stream_chat(HISTORY, tools, options=options)]
    assert deltas  # the stream was read through
    sdk = openai.AsyncOpenAI(api_key="x", base_url=capture.base_url, max_retries=0)
    try:
        kwargs: dict[str, Any] = {"model": "m", "messages": HISTORY, "stream": True}
        kwargs["stream_options"] = {"include_usage": True}
        if tools:
            kwargs["tools"] = tools
        stream = await sdk.chat.completions.create(**kwargs, **(options or {}))
        async for _ in stream:
            pass
    finally:
        await sdk.close()
    ours, theirs = capture.bodies
    assert ours == theirs
    assert ours["messages"] == HISTORY  # and both are what the agent built


async def test_a_request_does_not_change_the_callers_history_or_options(capture: CaptureServer) -> None:
    settings = ModelSettings(base_url=capture.base_url, model="m", max_retries=0)
    history, options = json.loads(json.dumps(HISTORY)), dict(OPTIONS)
    async with OpenAIClient(settings) as client:
        async for _ in client.stream_chat(history, TOOLS, options=options):
            pass
    assert history == HISTORY and options == OPTIONS
    (body,) = capture.bodies
    assert {k: body[k] for k in OPTIONS} == OPTIONS and body["tools"] == TOOLS and body["model"] == "m"
