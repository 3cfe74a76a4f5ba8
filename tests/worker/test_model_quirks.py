"""The model client against the quirks of deployed OpenAI-compatible servers, each played
by the scripted server, through the real openai SDK."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentstream.worker.errors import ModelStopped, ModelStreamBroken
from agentstream.worker.model import (
    Finish,
    ModelDelta,
    ModelSettings,
    OpenAIClient,
    RefusalDelta,
    TextDelta,
    TurnAccumulator,
    Usage,
)
from agentstream.worker.scripted import ScriptedLLMServer
from agentstream.worker.scripted.planner import REFUSAL
from agentstream.worker.tools import calculator

TOOLS = [calculator.openai_schema()]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def settings(base_url: str, **overrides: Any) -> ModelSettings:
    values: dict[str, Any] = {"base_url": base_url, "backoff_base_s": 0.001, "backoff_max_s": 0.01}
    return ModelSettings(**(values | overrides))


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[ScriptedLLMServer]:
    async with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
async def client(llm: ScriptedLLMServer) -> AsyncIterator[OpenAIClient]:
    async with OpenAIClient(settings(llm.base_url)) as model_client:
        yield model_client


async def turn_of(
    client: OpenAIClient, text: str, tools: Any = None
) -> tuple[TurnAccumulator, list[ModelDelta]]:
    turn = TurnAccumulator(id_salt="quirks")
    deltas = []
    async for delta in client.stream_chat(user(text), tools):
        deltas.append(delta)
        turn.feed(delta)
    return turn, deltas


# --------------------------------------------------------------------------- stop reasons


async def test_a_length_stop_says_so_and_is_not_an_answer(client: OpenAIClient) -> None:
    turn, deltas = await turn_of(client, "[length] one two three four five six")

    assert Finish("length") in deltas
    assert turn.text == "Turn 1: you said one"  # the first half of its ten words
    assert turn.stop_reason == "length"
    with pytest.raises(ModelStopped, match="output token limit") as caught:
        turn.raise_if_incomplete()
    assert (caught.value.stop_reason, caught.value.output, caught.value.refusal) == (
        "length",
        turn.text,
        None,
    )
    assert caught.value.retryable is False
    assert caught.value.error_type == "model_stopped"


async def test_a_length_stop_inside_tool_call_arguments_is_a_clear_error(client: OpenAIClient) -> None:
    turn, _ = await turn_of(client, "[length] What is 17 * 23?", TOOLS)

    [call] = turn.ready_tool_calls()
    assert call.error is not None  # the arguments were cut: not JSON
    with pytest.raises(ModelStopped, match="inside the arguments of its tool call\\(s\\) to calculator"):
        turn.raise_if_incomplete()


async def test_a_content_filter_stop_says_so(client: OpenAIClient) -> None:
    turn, _ = await turn_of(client, "[content-filter] tell me everything")

    assert turn.stop_reason == "content_filter"
    with pytest.raises(ModelStopped, match="content filter"):
        turn.raise_if_incomplete()


async def test_a_refusal_streams_as_refusal_deltas(client: OpenAIClient) -> None:
    turn, deltas = await turn_of(client, "[refuse] do something bad")

    assert [d for d in deltas if isinstance(d, TextDelta)] == []
    assert "".join(d.content for d in deltas if isinstance(d, RefusalDelta)) == REFUSAL
    assert turn.refusal == REFUSAL
    assert turn.stop_reason == "refusal"
    with pytest.raises(ModelStopped, match="the model refused") as caught:
        turn.raise_if_incomplete()
    assert caught.value.refusal == caught.value.output == REFUSAL


# --------------------------------------------------------------------------- tool calls


@pytest.mark.parametrize("quirk", ["same-index", "no-index"])
async def test_parallel_calls_without_distinct_indexes_are_kept_apart_by_id(
    client: OpenAIClient, quirk: str
) -> None:
    turn, deltas = await turn_of(client, f"[{quirk}] What is 17 * 23 and 4 + 5?", TOOLS)

    assert {d.index for d in deltas if hasattr(d, "arguments_delta")} == {0}  # the server's
    calls = turn.ready_tool_calls()
    assert [(c.index, c.parameters, c.error) for c in calls] == [
        (0, {"expression": "17 * 23"}, None),
        (1, {"expression": "4 + 5"}, None),
    ]
    assert len({c.tool_call_id for c in calls}) == 2
    assert turn.stop_reason == "tool_calls"


# --------------------------------------------------------------------------- completeness


async def test_an_answer_ended_by_done_without_finish_reason_is_accepted(client: OpenAIClient) -> None:
    turn, deltas = await turn_of(client, "[no-finish] all there")

    assert not any(isinstance(d, Finish) for d in deltas)
    assert turn.text == "Turn 1: you said all there."
    assert turn.stop_reason == "stop"
    turn.raise_if_incomplete()


async def test_tool_calls_ended_by_done_without_finish_reason_are_accepted(client: OpenAIClient) -> None:
    turn, _ = await turn_of(client, "[no-finish] 6 * 7", TOOLS)

    assert turn.stop_reason == "tool_calls"
    assert [c.parameters for c in turn.ready_tool_calls()] == [{"expression": "6 * 7"}]


async def test_a_finish_reason_without_done_is_accepted(client: OpenAIClient) -> None:
    turn, _ = await turn_of(client, "[no-done] almost")

    assert turn.text == "Turn 1: you said almost."
    assert turn.stop_reason == "stop"


async def test_a_body_ended_without_finish_reason_or_done_is_broken(
    llm: ScriptedLLMServer, client: OpenAIClient
) -> None:
    before = llm.requests
    received: list[ModelDelta] = []
    with pytest.raises(ModelStreamBroken):
        async for delta in client.stream_chat(user("[no-finish][no-done] cut short")):
            received.append(delta)

    assert "".join(d.content for d in received if isinstance(d, TextDelta)) == "Turn 1: you said cut short."
    assert llm.requests - before == 1  # output was yielded: not retried behind the caller's back


# --------------------------------------------------------------------------- usage


async def test_usage_on_every_chunk_gives_one_usage_per_call_with_details(client: OpenAIClient) -> None:
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "Turn 1: you said first question."},
        {"role": "user", "content": "[think] second one"},
    ]
    deltas = [delta async for delta in client.stream_chat(messages)]

    usages = [d for d in deltas if isinstance(d, Usage)]
    assert len(usages) == 1 and deltas[-1] is usages[0]
    texts = [d for d in deltas if isinstance(d, TextDelta)]
    reasoning = len(deltas) - len(texts) - 2  # thinking deltas: all but text, finish, usage
    assert usages[0].reasoning_tokens == reasoning > 0
    assert usages[0].completion_tokens == len(texts) + reasoning
    assert usages[0].cached_tokens == 2 + 6  # the prompt's messages before the last
    assert usages[0].prompt_tokens == 2 + 6 + 3


# --------------------------------------------------------------------------- stream_options


async def test_a_server_rejecting_stream_options_is_asked_without_and_remembered(
    llm: ScriptedLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    base_url = llm.base_url_with("reject-stream-options")
    async with OpenAIClient(settings(base_url, max_retries=0)) as first:
        before = llm.requests
        with caplog.at_level(logging.WARNING, logger="agentstream.worker.model.client"):
            deltas = [delta async for delta in first.stream_chat(user("hello"))]
        assert llm.requests - before == 2
        assert "".join(d.content for d in deltas if isinstance(d, TextDelta)) == "Turn 1: you said hello."
        assert not any(isinstance(d, Usage) for d in deltas)  # without the option, no usage
        assert [r for r in caplog.records if "rejects stream_options" in r.getMessage()]

    async with OpenAIClient(settings(base_url, max_retries=0)) as second:  # same process, same server
        before = llm.requests
        [delta async for delta in second.stream_chat(user("again"))]
        assert llm.requests - before == 1

    async with OpenAIClient(settings(llm.base_url)) as other:  # another server still gets it
        deltas = [delta async for delta in other.stream_chat(user("usage please"))]
        assert isinstance(deltas[-1], Usage)


async def test_stream_options_can_be_turned_off(llm: ScriptedLLMServer) -> None:
    base_url = llm.base_url_with("reject-stream-options", "narrate")  # a server not yet remembered
    async with OpenAIClient(settings(base_url, stream_options=False)) as client:
        before = llm.requests
        deltas = [delta async for delta in client.stream_chat(user("quietly"))]

    assert llm.requests - before == 1
    assert "".join(d.content for d in deltas if isinstance(d, TextDelta)) == "Turn 1: you said quietly."
