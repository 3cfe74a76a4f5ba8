"""The model client sends the history, the tools and the options through ``extra_body``,
past the SDK's TypedDict walk (`worker/model/client.py`): the JSON body must be the one the
SDK's own ``chat.completions.create`` sends for the same request, on both transports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from agentstream.worker.model import ModelSettings, OpenAIClient
from agentstream.worker.scripted.recording import RecordingServer

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
async def capture() -> AsyncIterator[RecordingServer]:
    async with RecordingServer() as server:
        yield server


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
@pytest.mark.parametrize(
    ("tools", "options"), [(None, None), (TOOLS, None), (TOOLS, OPTIONS)], ids=["plain", "tools", "options"]
)
async def test_the_body_is_the_one_the_sdks_create_sends(
    capture: RecordingServer, http: str, tools: list[dict[str, Any]] | None, options: dict[str, Any] | None
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


async def test_a_request_does_not_change_the_callers_history_or_options(capture: RecordingServer) -> None:
    settings = ModelSettings(base_url=capture.base_url, model="m", max_retries=0)
    history, options = json.loads(json.dumps(HISTORY)), dict(OPTIONS)
    async with OpenAIClient(settings) as client:
        async for _ in client.stream_chat(history, TOOLS, options=options):
            pass
    assert history == HISTORY and options == OPTIONS
    (body,) = capture.bodies
    assert {k: body[k] for k in OPTIONS} == OPTIONS and body["tools"] == TOOLS and body["model"] == "m"
