"""``streaming_run``'s typed messages: AWorld's names and fields, from real runs (the real
API, an arq worker and the scripted model) and, for the rarer events, from the
translator alone."""

from __future__ import annotations

from typing import Any

import pytest

from agentstream import AgentStreamClient, StreamingMode
from agentstream.events import Thought, UnknownEvent, UsageEvent
from agentstream.sdk import (
    AgentMessage,
    ChunkMessage,
    Constants,
    Message,
    Observation,
    OutputMessage,
    TaskMessage,
    TaskResponse,
    ToolMessage,
    TopicType,
)
from agentstream.sdk.translate import MessageTranslator
from tests.sdk.conftest import FAST

# arq's Worker.close() calls redis-py's deprecated close() when the real stack stops.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


async def run(stack: tuple[str, str], text: str, **kwargs: Any) -> list[Message[Any]]:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        return [message async for message in client.streaming_run(text, **kwargs)]


async def test_the_aworld_loop_runs_as_written(
    stack: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """AWorld's documented example, with only its imports and runner changed."""
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        async for msg in client.streaming_run(input="[think] What is 17 * 23?", agent="hybrid"):
            # 1. Handle Real-time Tokens (Typewriter effect)
            if isinstance(msg, ChunkMessage):
                content = msg.payload.content
                if content:
                    print(content, end="", flush=True)
            # 2. Handle Tool Calls (Show "Executing..." status)
            elif isinstance(msg, ToolMessage):
                actions = msg.payload
                for action in actions:
                    print(f"\n[Tool Call]: {action.tool_name} (params: {action.params})")
            # 3. Handle Task Completion
            elif msg.topic == TopicType.TASK_RESPONSE:
                result = msg.payload
                if result.success:
                    print(f"\n[Finished]: {result.answer}")
                else:
                    print(f"\n[Failed]: {result.msg}")
    assert capsys.readouterr().out == (
        "\n[Tool Call]: calculator (params: {'expression': '17 * 23'})\n"
        "The answer is 391.\n"
        "[Finished]: The answer is 391.\n"
    )


async def test_core_is_the_core_mode_plus_the_task_response(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        messages = [m async for m in client.streaming_run("What is 17 * 23?", agent="hybrid")]
        task_id = messages[0].task_id
        assert task_id is not None
        core = [e async for e in client.events(task_id, mode=StreamingMode.CORE)]
    assert [m.id for m in messages] == [e["id"] for e in core]  # the same events, one message each
    assert not any(isinstance(m, OutputMessage) for m in messages)
    last = messages[-1]
    assert (
        isinstance(last, TaskMessage) and last.topic == TopicType.TASK_RESPONSE and last.type == "completed"
    )
    response = last.payload
    assert isinstance(response, TaskResponse)
    assert (response.id, response.success, response.answer, response.msg) == (
        task_id,
        True,
        "The answer is 391.",
        None,
    )
    assert response.status == "succeeded" and response.time_cost is not None and response.usage


async def test_each_kind_of_message_carries_aworld_fields(stack: tuple[str, str]) -> None:
    messages = await run(stack, "What is 17 * 23?", agent="hybrid", session_id="user-7")
    assert {m.session_id for m in messages} == {"user-7"}
    by_type = {m.type: m for m in messages}
    tools = by_type["tool_calls_ready"]
    assert isinstance(tools, ToolMessage) and tools.category == Constants.TOOL
    assert [(a.tool_name, a.params) for a in tools.payload] == [("calculator", {"expression": "17 * 23"})]
    result = by_type["tool_result"]
    assert isinstance(result, AgentMessage) and result.topic == TopicType.TOOL_RESULT
    assert isinstance(result.payload, Observation) and result.payload.is_tool_result
    outcome = result.payload.action_result[0]
    assert (outcome.tool_name, outcome.success, outcome.content) == ("calculator", True, 391)
    thought = by_type["thought"]
    assert isinstance(thought, AgentMessage) and isinstance(thought.payload, Thought)
    assert isinstance(by_type["observation"].payload, Observation)
    started = by_type["queued"]
    assert isinstance(started, TaskMessage) and started.topic == TopicType.START
    assert all(m.sender == "hybrid-agent" for m in messages if m.type not in ("queued", "completed"))
    assert all(m.timestamp and m.id and m.seq for m in messages)


async def test_the_typewriter_prints_answer_tokens_only(stack: tuple[str, str]) -> None:
    messages = await run(stack, "[think] Hello there", agent="llm", streaming_mode=StreamingMode.CHUNK)
    chunks = [m for m in messages if isinstance(m, ChunkMessage)]
    assert {m.source_type for m in chunks} == {"thinking_token", "token"}
    assert "".join(m.payload.content for m in chunks) == "Turn 1: you said Hello there."
    assert "".join(m.payload.reasoning_content for m in chunks) == "Let me think about this step by step."
    assert [type(m) for m in messages[len(chunks) :]] == [TaskMessage]


async def test_all_adds_usage_and_the_output(stack: tuple[str, str]) -> None:
    messages = await run(stack, "Hello", agent="llm", streaming_mode="all")
    usage = [m for m in messages if m.type == "usage"]
    assert usage and all(m.category == "debug" and isinstance(m.payload, UsageEvent) for m in usage)
    output = next(m for m in messages if isinstance(m, OutputMessage))
    assert output.topic == TopicType.OUTPUT and output.payload.output == "Turn 1: you said Hello."
    assert messages[-1].topic == TopicType.TASK_RESPONSE


async def test_a_failed_task_says_why(stack: tuple[str, str]) -> None:
    messages = await run(stack, "[fail:400] Hello", agent="llm")
    errors = [m for m in messages if m.is_error()]
    response = messages[-1].payload
    assert len(errors) == 1 and isinstance(response, TaskResponse)
    assert (response.success, response.status) == (False, "failed")
    assert response.msg is not None and "400" in response.msg


async def test_raw_yields_the_same_events_as_dicts(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        events = [e async for e in client.streaming_run("Hello", agent="llm", raw=True)]
    assert all(isinstance(e, dict) for e in events)
    assert [e["type"] for e in events][-2:] == ["result", "completed"]
    assert "usage" not in {e["type"] for e in events}


# ------------------------------------------------------------------ the translator alone


def feed(mode: StreamingMode, events: list[dict[str, Any]]) -> list[Message[Any]]:
    translator = MessageTranslator(mode, "t1")
    messages = [translator.feed({**event, "task_id": "t1", "seq": i + 1}) for i, event in enumerate(events)]
    return [m for m in messages if m is not None]


COMPLETED = {"type": "completed", "success": True, "status": "succeeded", "execution_time": 1.0}


def test_a_retry_forgets_the_failure_of_the_attempt_before() -> None:
    error = {"type": "error", "error": "worker lost", "error_type": "WorkerLost", "retryable": True}
    result = {"type": "result", "output": "42", "success": True, "execution_time": 0.5}
    messages = feed(
        StreamingMode.CORE, [error, {"type": "retry", "reason": "worker lost"}, result, COMPLETED]
    )
    assert [m.topic for m in messages] == [TopicType.ERROR, TopicType.RERUN, TopicType.TASK_RESPONSE]
    assert (messages[-1].payload.answer, messages[-1].payload.msg) == ("42", None)


def test_a_cancelled_task_and_a_failed_tool() -> None:
    tool_error = {"type": "tool_error", "tool_name": "http_get", "tool_call_id": "c1", "error": "timeout"}
    cancelled = {"type": "cancelled", "reason": "user asked"}
    end = {**COMPLETED, "success": False, "status": "cancelled"}
    tool, cancel, last = feed(StreamingMode.CORE, [tool_error, cancelled, end])
    outcome = tool.payload.action_result[0]
    assert (outcome.success, outcome.error, tool.payload.content) == (False, "timeout", "timeout")
    assert cancel.topic == TopicType.CANCEL
    assert (last.payload.success, last.payload.msg, last.payload.answer) == (False, "user asked", None)


def test_unknown_types_round_trip_as_plain_messages() -> None:
    custom = {"type": "x_progress", "step": "querying", "id": "5-0"}
    (message, _) = feed(StreamingMode.ALL, [custom, COMPLETED])
    assert type(message) is Message and message.type == "x_progress" and message.id == "5-0"
    assert isinstance(message.payload, UnknownEvent) and message.payload.model_dump()["step"] == "querying"


def test_a_failed_tool_result_of_v1_1_is_a_failed_action_result() -> None:
    failed = {
        "type": "tool_result",
        "tool_name": "search",
        "tool_call_id": "c2",
        "success": False,
        "error": "no index",
    }
    error = {"type": "tool_error", "tool_name": "search", "tool_call_id": "c2", "error": "no index"}
    # the twin gives no message of its own: the tool_error is the call's one result
    (message, _) = feed(StreamingMode.CORE, [failed, error, COMPLETED])
    outcome = message.payload.action_result[0]
    assert (outcome.tool_name, outcome.success, outcome.error, outcome.content) == (
        "search",
        False,
        "no index",
        None,
    )
    assert message.event.error == "no index"
