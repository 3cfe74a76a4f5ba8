"""The scripted model, seen through the real openai client, as every other test will see it."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, Omit, omit
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)

from agentstream.worker.scripted import ScriptedLLMServer
from tests.worker.helpers import client as client  # the fixture
from tests.worker.helpers import user

ROOT = Path(__file__).resolve().parents[2]
MODEL = "scripted-test"
CALCULATOR_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
}


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[ScriptedLLMServer]:
    async with ScriptedLLMServer() as server:
        yield server


async def stream_chunks(
    client: AsyncOpenAI,
    messages: Sequence[ChatCompletionMessageParam],
    *,
    tools: list[ChatCompletionFunctionToolParam] | Omit = omit,
    include_usage: bool = False,
) -> list[ChatCompletionChunk]:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=messages,
        stream=True,
        tools=tools,
        stream_options={"include_usage": True} if include_usage else omit,
    )
    async with stream:
        return [chunk async for chunk in stream]


def content_tokens(chunks: list[ChatCompletionChunk]) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


def tool_call_deltas(chunks: list[ChatCompletionChunk]) -> list[Any]:
    return [delta for chunk in chunks if chunk.choices for delta in chunk.choices[0].delta.tool_calls or []]


def assemble_tool_calls(chunks: list[ChatCompletionChunk]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for delta in tool_call_deltas(chunks):
        call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
        if delta.id:
            call["id"] = delta.id
        if delta.function and delta.function.name:
            call["name"] = delta.function.name
        if delta.function and delta.function.arguments:
            call["arguments"] += delta.function.arguments
    return calls


# --------------------------------------------------------------------------- plain answers


async def test_answer_streams_word_by_word(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client, [user("hello   world")])

    assert content_tokens(chunks) == ["Turn", " 1:", " you", " said", " hello", " world."]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {MODEL}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}


async def test_turn_number_counts_user_messages(client: AsyncOpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        user("first"),
        {"role": "assistant", "content": "Turn 1: you said first."},
        user("second"),
    ]
    chunks = await stream_chunks(client, messages)

    assert "".join(content_tokens(chunks)) == "Turn 2: you said second."


async def test_usage_chunk_closes_the_stream_when_asked(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client, [user("count these four")], include_usage=True)

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == 3
    assert last.usage.completion_tokens == len(content_tokens(chunks)) == 7
    assert last.usage.total_tokens == 10
    # As vLLM's continuous usage stats: every chunk carries the running total.
    running = [c.usage.completion_tokens for c in chunks[:-1] if c.usage is not None]
    assert running == [0, 1, 2, 3, 4, 5, 6, 7, 7]


async def test_no_usage_chunk_unless_asked(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client, [user("no usage please")])

    assert all(c.choices and c.usage is None for c in chunks)


async def test_non_streaming_returns_the_same_answer(client: AsyncOpenAI) -> None:
    messages = [user("same either way [think]")]
    chunks = await stream_chunks(client, messages, include_usage=True)

    completion = await client.chat.completions.create(model=MODEL, messages=messages)

    message = completion.choices[0].message
    assert completion.object == "chat.completion"
    assert message.content == "".join(content_tokens(chunks))
    assert message.content == "Turn 1: you said same either way."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage == chunks[-1].usage
    assert getattr(message, "reasoning_content", None) == "Let me think about this step by step."


async def test_think_streams_reasoning_before_content(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client, [user("[think] why")])

    kinds = []
    for chunk in chunks[1:-1]:
        delta = chunk.choices[0].delta
        kinds.append("reasoning" if getattr(delta, "reasoning_content", None) else "content")
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks)
    assert reasoning == "Let me think about this step by step."
    assert kinds == sorted(kinds, key=lambda kind: kind != "reasoning")
    assert "".join(content_tokens(chunks)) == "Turn 1: you said why."


async def test_tokens_directive_gives_exactly_n_tokens(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client, [user("[tokens:50] go")], include_usage=True)

    tokens = content_tokens(chunks)
    assert len(tokens) == 50
    assert "".join(tokens) == " ".join(f"w{i}" for i in range(1, 51))
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 50


async def test_slow_directive_spaces_the_chunks(client: AsyncOpenAI) -> None:
    started = time.monotonic()
    chunks = await stream_chunks(client, [user("[slow:50] [tokens:4]")])

    assert len(content_tokens(chunks)) == 4
    assert time.monotonic() - started >= 0.2


async def test_token_delay_paces_every_answer() -> None:
    async with (
        ScriptedLLMServer(token_delay_s=0.03) as slow_llm,
        AsyncOpenAI(base_url=slow_llm.base_url, api_key="x", max_retries=0) as slow_client,
    ):
        started = time.monotonic()
        chunks = await stream_chunks(slow_client, [user("[tokens:5]")])

    assert len(content_tokens(chunks)) == 5
    assert time.monotonic() - started >= 0.15


# --------------------------------------------------------------------------- tool calls


async def test_single_tool_call_arguments_arrive_in_fragments(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client, [user("What is 17 * 23?")], tools=[CALCULATOR_TOOL])

    deltas = tool_call_deltas(chunks)
    head, fragments = deltas[0], deltas[1:]
    assert head.id is not None and head.id.startswith("call_")
    assert head.type == "function"
    assert head.function is not None and head.function.name == "calculator"
    assert len(fragments) >= 3
    assert all(d.id == head.id and d.function.name is None for d in fragments)  # ids repeated
    calls = assemble_tool_calls(chunks)
    assert json.loads(calls[0]["arguments"]) == {"expression": "17 * 23"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert content_tokens(chunks) == []


async def test_parallel_tool_calls_interleave(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(
        client, [user("Compute (2+3)*4 and also 2 ** 10 please")], tools=[CALCULATOR_TOOL]
    )

    indexes = [delta.index for delta in tool_call_deltas(chunks)]
    first_of_1, last_of_0 = indexes.index(1), len(indexes) - 1 - indexes[::-1].index(0)
    assert first_of_1 < last_of_0, "the two calls' fragments should interleave"
    calls = assemble_tool_calls(chunks)
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [
        {"expression": "(2+3)*4"},
        {"expression": "2 ** 10"},
    ]
    assert calls[0]["id"] != calls[1]["id"]
    assert {call["name"] for call in calls.values()} == {"calculator"}


async def test_non_streaming_tool_calls(client: AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model=MODEL, messages=[user("10 / 4 and 3 - 1")], tools=[CALCULATOR_TOOL]
    )

    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None
    calls = [call for call in message.tool_calls if isinstance(call, ChatCompletionMessageFunctionToolCall)]
    assert [json.loads(call.function.arguments) for call in calls] == [
        {"expression": "10 / 4"},
        {"expression": "3 - 1"},
    ]


async def test_arithmetic_without_calculator_is_just_echoed(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client, [user("17 * 23")])

    assert "".join(content_tokens(chunks)) == "Turn 1: you said 17 * 23."


async def test_narrate_speaks_before_calling(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client, [user("[narrate] 6 * 7")], tools=[CALCULATOR_TOOL])

    assert "".join(content_tokens(chunks)) == "Let me calculate that."
    assert json.loads(assemble_tool_calls(chunks)[0]["arguments"]) == {"expression": "6 * 7"}


async def test_bad_args_are_not_json(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client, [user("[bad-args] 1+2")], tools=[CALCULATOR_TOOL])

    arguments = assemble_tool_calls(chunks)[0]["arguments"]
    assert arguments.startswith('{"expression": "1')
    with pytest.raises(json.JSONDecodeError):
        json.loads(arguments)


async def test_no_id_omits_tool_call_ids(client: AsyncOpenAI) -> None:
    chunks = await stream_chunks(client, [user("[no-id] 1+2")], tools=[CALCULATOR_TOOL])

    deltas = tool_call_deltas(chunks)
    assert deltas and all(delta.id is None for delta in deltas)
    assert deltas[0].function.name == "calculator"


async def test_tool_result_turn_answers_with_the_result(client: AsyncOpenAI) -> None:
    first = await client.chat.completions.create(
        model=MODEL, messages=[user("What is 17 * 23?")], tools=[CALCULATOR_TOOL]
    )
    assert first.choices[0].message.tool_calls is not None
    call = first.choices[0].message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    messages: list[ChatCompletionMessageParam] = [
        user("What is 17 * 23?"),
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "calculator", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"result": 391})},
    ]

    chunks = await stream_chunks(client, messages, tools=[CALCULATOR_TOOL])

    assert "".join(content_tokens(chunks)) == "The answer is 391."
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_several_tool_results_are_all_used(client: AsyncOpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        user("17 * 23 and 3 * 4"),
        {"role": "tool", "tool_call_id": "call_a", "content": '{"result": 391}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "12"},
    ]

    chunks = await stream_chunks(client, messages, tools=[CALCULATOR_TOOL])

    assert "".join(content_tokens(chunks)) == "The answers are 391 and 12."


# --------------------------------------------------------------------------- failures


async def test_fail_429_raises_rate_limit_error(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await stream_chunks(client, [user("[fail:429] hi")])

    assert caught.value.status_code == 429
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.type == "rate_limit_error"


async def test_fail_500x2_fails_twice_then_succeeds(client: AsyncOpenAI) -> None:
    messages = [user("[fail:500x2] flaky")]
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await stream_chunks(client, messages)

    chunks = await stream_chunks(client, messages)

    assert "".join(content_tokens(chunks)) == "Turn 1: you said flaky."


async def test_sdk_retries_recover_from_counted_failures(llm: ScriptedLLMServer) -> None:
    before = llm.requests
    async with AsyncOpenAI(base_url=llm.base_url, api_key="x", max_retries=2) as retrying:
        completion = await retrying.chat.completions.create(
            model=MODEL, messages=[user("[fail:429x2] patient")]
        )

    assert completion.choices[0].message.content == "Turn 1: you said patient."
    assert llm.requests - before == 3


async def test_fail_after_breaks_the_stream(client: AsyncOpenAI) -> None:
    received: list[str] = []
    stream = await client.chat.completions.create(
        model=MODEL, messages=[user("[fail-after:3] one two three four")], stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        async with stream:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)

    assert received == ["Turn", " 1:", " you"]


async def test_fail_after_with_count_breaks_only_the_first(client: AsyncOpenAI) -> None:
    messages = [user("[fail-after:2x1] once")]
    with pytest.raises(openai.APIConnectionError):
        await stream_chunks(client, messages)

    chunks = await stream_chunks(client, messages)

    assert "".join(content_tokens(chunks)) == "Turn 1: you said once."


async def test_fail_after_breaks_a_non_streamed_body(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model=MODEL, messages=[user("[fail-after:1] x")])


async def test_bad_requests_get_openai_shaped_400s(client: AsyncOpenAI, llm: ScriptedLLMServer) -> None:
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model=MODEL, messages=[])
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.post(f"{llm.base_url}/chat/completions", content=b"{not json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    assert error["type"] == "invalid_request_error"
