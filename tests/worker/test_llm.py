"""The model client, through the real openai SDK, against the scripted server on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentstream.worker.errors import ConfigurationError, ModelError, ModelStreamBroken, ModelUnavailable
from agentstream.worker.model import (
    Finish,
    ModelDelta,
    ModelSettings,
    OpenAIClient,
    TextDelta,
    ThinkingDelta,
    ToolCallFragment,
    TurnAccumulator,
    Usage,
)
from agentstream.worker.scripted import ScriptedLLMServer
from agentstream.worker.tools import calculator

CALCULATOR_TOOLS = [calculator.openai_schema()]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def settings_for(base_url: str, **overrides: Any) -> ModelSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
        "connect_timeout_s": 2.0,
        "read_timeout_s": 5.0,
    }
    return ModelSettings(**(values | overrides))


#: both HTTP transports the client can send through (`AGENTSTREAM_MODEL_HTTP`)
TRANSPORTS = pytest.mark.parametrize("http", ["aiohttp", "httpx"])


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(llm: ScriptedLLMServer, request: pytest.FixtureRequest) -> AsyncIterator[OpenAIClient]:
    async with OpenAIClient(settings_for(llm.base_url, http=request.param)) as model_client:
        yield model_client


async def collect(stream: AsyncIterator[ModelDelta]) -> list[ModelDelta]:
    return [delta async for delta in stream]


# --------------------------------------------------------------------------- settings


def test_settings_defaults_from_an_empty_environment() -> None:
    settings = ModelSettings.from_env({})

    assert settings == ModelSettings()
    assert settings.api_key is None
    assert settings.model == "gpt-4o-mini"
    assert settings.max_retries == 3


def test_settings_from_environment() -> None:
    settings = ModelSettings.from_env(
        {
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "AGENTSTREAM_MODEL": "scripted",
            "AGENTSTREAM_MODEL_TIMEOUT_S": "7.5",
            "AGENTSTREAM_MODEL_CONNECT_TIMEOUT_S": "2",
            "AGENTSTREAM_MODEL_RETRIES": "5",
            "AGENTSTREAM_MODEL_BACKOFF_S": "0.1",
            "AGENTSTREAM_MODEL_BACKOFF_MAX_S": "1",
            "AGENTSTREAM_MODEL_STREAM_OPTIONS": "0",
            "AGENTSTREAM_MODEL_HTTP": " HTTPX",
        }
    )

    assert settings == ModelSettings(
        base_url="http://127.0.0.1:9/v1",
        api_key="sk-no-key",  # a local server needs no key, the SDK insists on one
        model="scripted",
        read_timeout_s=7.5,
        connect_timeout_s=2.0,
        max_retries=5,
        backoff_base_s=0.1,
        backoff_max_s=1.0,
        stream_options=False,
        http="httpx",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AGENTSTREAM_MODEL_TIMEOUT_S": "soon"}, "AGENTSTREAM_MODEL_TIMEOUT_S must be a number"),
        ({"AGENTSTREAM_MODEL_RETRIES": "-1"}, "max_retries must be >= 0"),
        ({"AGENTSTREAM_MODEL_TIMEOUT_S": "0"}, "timeouts must be positive"),
        ({"AGENTSTREAM_MODEL_BACKOFF_S": "5", "AGENTSTREAM_MODEL_BACKOFF_MAX_S": "1"}, "backoff"),
        (
            {"AGENTSTREAM_MODEL_STREAM_OPTIONS": "sometimes"},
            "AGENTSTREAM_MODEL_STREAM_OPTIONS must be true or false",
        ),
        ({"AGENTSTREAM_MODEL_RETRIES": "2.5"}, "AGENTSTREAM_MODEL_RETRIES must be an integer"),
        ({"AGENTSTREAM_MODEL_HTTP": "requests"}, "transport must be one of aiohttp, httpx, got 'requests'"),
    ],
)
def test_bad_settings_say_what_is_wrong(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ModelSettings.from_env(env)


def test_a_client_without_key_or_base_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIClient(ModelSettings())


async def test_a_closed_client_refuses_to_stream() -> None:
    client = OpenAIClient(ModelSettings(base_url="http://127.0.0.1:9/v1"))
    await client.aclose()
    await client.aclose()  # idempotent

    with pytest.raises(ConfigurationError, match="closed OpenAIClient"):
        await collect(client.stream_chat(user("hi")))
    with pytest.raises(ConfigurationError, match="reopen"):
        async with client:
            pass


# --------------------------------------------------------------------------- streaming


async def test_text_streams_as_deltas_then_finish_then_usage(client: OpenAIClient) -> None:
    deltas = await collect(client.stream_chat(user("hello world")))

    texts = [d.content for d in deltas if isinstance(d, TextDelta)]
    assert "".join(texts) == "Turn 1: you said hello world."
    assert len(texts) > 1
    assert isinstance(deltas[-2], Finish) and deltas[-2].reason == "stop"
    usage = deltas[-1]
    assert isinstance(usage, Usage)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0


async def test_the_conversation_history_reaches_the_model(client: OpenAIClient) -> None:
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Turn 1: you said one."},
        {"role": "user", "content": "two"},
    ]
    turn = TurnAccumulator()
    async for delta in client.stream_chat(messages):
        turn.feed(delta)

    assert turn.text == "Turn 2: you said two."


async def test_reasoning_streams_as_thinking_before_the_answer(client: OpenAIClient) -> None:
    deltas = await collect(client.stream_chat(user("[think] why?")))

    kinds = [type(d) for d in deltas if isinstance(d, TextDelta | ThinkingDelta)]
    assert kinds[0] is ThinkingDelta
    assert ThinkingDelta not in kinds[kinds.index(TextDelta) :]
    assert "".join(d.content for d in deltas if isinstance(d, TextDelta)) == "Turn 1: you said why?."


async def test_tool_calls_stream_as_fragments_that_assemble(client: OpenAIClient) -> None:
    turn = TurnAccumulator(id_salt="t1")
    fragments = []
    async for delta in client.stream_chat(user("What is 17 * 23 and 4 + 5?"), CALCULATOR_TOOLS):
        turn.feed(delta)
        if isinstance(delta, ToolCallFragment):
            fragments.append(delta)

    assert turn.finish_reason == "tool_calls"
    calls = turn.ready_tool_calls()
    assert [(c.index, c.tool_name, c.parameters) for c in calls] == [
        (0, "calculator", {"expression": "17 * 23"}),
        (1, "calculator", {"expression": "4 + 5"}),
    ]
    assert all(call.tool_call_id for call in calls)
    for index in (0, 1):
        assert sum(f.index == index for f in fragments) >= 3
    # Parallel calls arrive interleaved, not one after the other.
    order = [f.index for f in fragments]
    assert order != sorted(order)


async def test_tool_calls_without_ids_get_generated_ones(client: OpenAIClient) -> None:
    turn = TurnAccumulator()
    async for delta in client.stream_chat(user("[no-id] 6 * 7"), CALCULATOR_TOOLS):
        turn.feed(delta)

    [call] = turn.ready_tool_calls()
    assert call.tool_call_id.startswith("call_0_")
    assert call.parameters == {"expression": "6 * 7"}


async def test_bad_tool_arguments_become_an_error_item(client: OpenAIClient) -> None:
    turn = TurnAccumulator()
    async for delta in client.stream_chat(user("[bad-args] 6 * 7"), CALCULATOR_TOOLS):
        turn.feed(delta)

    [call] = turn.ready_tool_calls()
    assert call.parameters is None
    assert call.error is not None and call.error.startswith("invalid JSON arguments")


async def test_a_tool_result_leads_to_a_final_answer(client: OpenAIClient) -> None:
    messages = [
        *user("What is 17 * 23?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": '{"expression": "17 * 23"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": '{"result": 391}'},
    ]
    turn = TurnAccumulator()
    async for delta in client.stream_chat(messages, CALCULATOR_TOOLS):
        turn.feed(delta)

    assert turn.text == "The answer is 391."


# --------------------------------------------------------------------------- failures


async def test_rate_limits_are_retried_before_the_first_delta(
    llm: ScriptedLLMServer, client: OpenAIClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentstream.worker.model.client"):
        deltas = await collect(client.stream_chat(user("[fail:429x2] hi")))

    assert "".join(d.content for d in deltas if isinstance(d, TextDelta)) == "Turn 1: you said hi."
    assert llm.requests == 3
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2
    assert "rate_limited" in retries[0].getMessage()


async def test_retries_are_bounded_then_model_unavailable(llm: ScriptedLLMServer) -> None:
    async with OpenAIClient(settings_for(llm.base_url, max_retries=2)) as client:
        with pytest.raises(ModelUnavailable) as caught:
            await collect(client.stream_chat(user("[fail:503] hi")))

    assert caught.value.attempts == 3
    assert caught.value.retryable is True
    assert caught.value.error_type == "server_error"
    assert caught.value.status_code == 503
    assert llm.requests == 3


async def test_a_client_error_is_not_retried(llm: ScriptedLLMServer, client: OpenAIClient) -> None:
    with pytest.raises(ModelError) as caught:
        await collect(client.stream_chat(user("[fail:400] hi")))

    assert not isinstance(caught.value, ModelUnavailable)
    assert caught.value.retryable is False
    assert caught.value.error_type == "client_error"
    assert caught.value.status_code == 400
    # A 400 that names no parameter may be the server refusing stream_options: asked once
    # more without it, then given up.
    assert llm.requests == 2


async def test_a_client_error_about_another_parameter_is_asked_once(
    llm: ScriptedLLMServer, client: OpenAIClient
) -> None:
    with pytest.raises(ModelError, match="messages") as caught:
        await collect(client.stream_chat([]))

    assert caught.value.status_code == 400
    assert llm.requests == 1


async def test_a_stream_broken_after_output_is_not_retried(
    llm: ScriptedLLMServer, client: OpenAIClient
) -> None:
    received: list[ModelDelta] = []
    with pytest.raises(ModelStreamBroken) as caught:
        async for delta in client.stream_chat(user("[fail-after:3] one two three four five")):
            received.append(delta)

    assert len(received) == 3
    assert all(isinstance(d, TextDelta) for d in received)
    assert caught.value.retryable is True
    assert caught.value.error_type == "stream_broken"
    assert llm.requests == 1


@TRANSPORTS
async def test_an_unreachable_server_is_model_unavailable(http: str) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = settings_for(f"http://127.0.0.1:{port}/v1", max_retries=1, http=http)
    async with OpenAIClient(settings) as client:
        with pytest.raises(ModelUnavailable) as caught:
            await collect(client.stream_chat(user("hi")))

    assert caught.value.error_type == "connection_error"
    assert caught.value.attempts == 2


@TRANSPORTS
async def test_a_stalled_stream_times_out(llm: ScriptedLLMServer, http: str) -> None:
    settings = settings_for(llm.base_url, read_timeout_s=0.05, max_retries=0, http=http)
    async with OpenAIClient(settings) as client:
        with pytest.raises(ModelError) as caught:
            await collect(client.stream_chat(user("[slow:1000] hi")))

    # Whether the stall hits before or after the first delta, it surfaces as a timeout
    # failure, never as a hang.
    assert isinstance(caught.value, ModelUnavailable | ModelStreamBroken)
    assert caught.value.retryable is True


async def test_cancellation_propagates_and_leaves_the_client_usable(
    llm: ScriptedLLMServer, client: OpenAIClient
) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in client.stream_chat(user("[slow:200] a b c d e f")):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()

    deltas = await collect(client.stream_chat(user("again")))
    assert "".join(d.content for d in deltas if isinstance(d, TextDelta)) == "Turn 1: you said again."


async def test_a_consumer_may_stop_early(client: OpenAIClient) -> None:
    stream = client.stream_chat(user("one two three four"))
    async for delta in stream:
        assert isinstance(delta, TextDelta)
        break
    await stream.aclose()  # type: ignore[attr-defined]

    deltas = await collect(client.stream_chat(user("after")))
    assert isinstance(deltas[-1], Usage)
