"""The agents against the scripted model, through the real OpenAI client: event orders,
terminal guarantees, tool batches, memory and cancellation (PROTOCOL sections 3 and 4)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from agentstream.worker.agents import BaseAgent, HybridAgent, LLMAgent, ToolAgent, build_agent
from agentstream.worker.errors import ConfigurationError, ModelError, ModelStreamBroken
from agentstream.worker.llm import OpenAIClient
from agentstream.worker.memory import InMemoryMemory
from agentstream.worker.payload import TaskRequest
from agentstream.worker.tools import default_registry

Event = dict[str, Any]
CHUNKS = {"token", "thinking_token", "tool_call_delta"}


async def run(agent: BaseAgent, text: str, context: dict[str, Any] | None = None) -> list[Event]:
    return [event async for event in agent.execute_task_streaming({"description": text}, context or {})]


def order(events: list[Event]) -> list[str]:
    """Event types with runs of the same chunk type collapsed to one `type*`."""
    collapsed = []
    for kind, _ in itertools.groupby(event["type"] for event in events):
        collapsed.append(f"{kind}*" if kind in CHUNKS else kind)
    return collapsed


def of_type(events: list[Event], kind: str) -> list[Event]:
    return [event for event in events if event["type"] == kind]


def text_of(events: list[Event], kind: str = "token") -> str:
    return "".join(event["content"] for event in of_type(events, kind))


def hybrid(client: OpenAIClient, **options: Any) -> HybridAgent:
    return HybridAgent(agent_id="a1", name="My Agent", llm_client=client, tools=["calculator"], **options)


def assert_envelope(events: list[Event]) -> None:
    for event in events:
        assert event["agent_id"] == "a1"
        assert event["timestamp"].endswith("+00:00")
        assert "loop_scope" not in event  # main-loop events carry none
        assert not {"id", "seq", "attempt", "task_id"} & event.keys()


# --------------------------------------------------------------------------- LLMAgent


async def test_llm_agent_streams_status_tokens_usage_result(llm_client: OpenAIClient) -> None:
    agent = LLMAgent(agent_id="a1", name="Chat", llm_client=llm_client)
    await agent.initialize()
    events = await run(agent, "Hello there")

    assert order(events) == ["status", "token*", "usage", "result"]
    assert events[0]["status"] == "started"
    result = events[-1]
    assert result["output"] == text_of(events) == "Turn 1: you said Hello there."
    assert result["success"] is True
    assert result["usage"] == {k: v for k, v in events[-2].items() if k.endswith("tokens")}
    assert result["execution_time"] >= 0
    assert_envelope(events)


async def test_llm_agent_streams_reasoning_as_thinking_tokens(llm_client: OpenAIClient) -> None:
    agent = LLMAgent(agent_id="a1", llm_client=llm_client)
    events = await run(agent, "[think] Ponder this")

    assert order(events) == ["status", "thinking_token*", "token*", "usage", "result"]
    assert text_of(events, "thinking_token") == "Let me think about this step by step."


async def test_execute_task_returns_the_result_fields(llm_client: OpenAIClient) -> None:
    agent = LLMAgent(agent_id="a1", llm_client=llm_client)
    result = await agent.execute_task({"description": "Hi"}, {})

    assert result["output"] == "Turn 1: you said Hi."
    assert result["success"] is True
    assert set(result) == {"output", "success", "execution_time", "stop_reason", "usage"}


# --------------------------------------------------------------------------- ToolAgent


async def test_tool_agent_calls_the_calculator_then_answers(llm_client: OpenAIClient) -> None:
    agent = ToolAgent(agent_id="a1", name="Tools", llm_client=llm_client, tools=["calculator"])
    events = await run(agent, "What is 17 * 23?")

    assert order(events) == [
        "started", "tool_call_delta*", "usage", "tool_calls_ready", "tool_call", "tool_result",
        "token*", "usage", "result",
    ]  # fmt: skip
    assert events[0]["agent"] == "Tools"
    (ready,) = of_type(events, "tool_calls_ready")
    (call,) = ready["tool_calls"]
    assert call["tool_name"] == "calculator" and call["parameters"] == {"expression": "17 * 23"}
    (result,) = of_type(events, "tool_result")
    assert result["result"] == 391 and result["success"] is True
    assert result["tool_call_id"] == call["tool_call_id"]
    assert events[-1]["output"] == "The answer is 391."
    assert events[-1]["tool_calls_count"] == 1
    assert_envelope(events)


async def test_tool_agent_without_tool_calls_answers_at_once(llm_client: OpenAIClient) -> None:
    agent = ToolAgent(agent_id="a1", llm_client=llm_client, tools=["calculator"])
    events = await run(agent, "Just chat")

    assert order(events) == ["started", "token*", "usage", "result"]
    assert events[-1]["output"] == "Turn 1: you said Just chat."


# --------------------------------------------------------------------------- HybridAgent


async def test_hybrid_agent_react_order_for_one_tool_call(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client), "What is 17 * 23?")

    assert order(events) == [
        "started",
        "iteration_start", "tool_call_delta*", "usage", "tool_calls_ready", "thought",
        "action", "tool_call", "tool_result", "observation",
        "iteration_start", "token*", "usage", "thought",
        "result", "completed",
    ]  # fmt: skip
    starts = of_type(events, "iteration_start")
    assert [(s["iteration"], s["max_iterations"], s["remaining"]) for s in starts] == [(1, 8, 7), (2, 8, 6)]
    assert of_type(events, "observation")[0] == {
        **of_type(events, "observation")[0],
        "content": "calculator: 391",
        "iteration": 1,
        "has_error": False,
    }
    result = events[-2]
    assert result["output"] == "The answer is 391."
    assert (result["success"], result["reason"], result["iterations"], result["tool_calls_count"]) == (
        True,
        "completed",
        2,
        1,
    )
    assert result["usage"]["total_tokens"] == sum(e["total_tokens"] for e in of_type(events, "usage"))
    assert events[-1]["status"] == "succeeded" and events[-1]["success"] is True
    assert_envelope(events)


async def test_parallel_calls_keep_their_ids_and_all_results(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client), "What is 17 * 23 and 2 ** 10?")

    (ready,) = of_type(events, "tool_calls_ready")
    ids = [call["tool_call_id"] for call in ready["tool_calls"]]
    assert len(set(ids)) == 2
    calls, results = of_type(events, "tool_call"), of_type(events, "tool_result")
    assert [c["tool_call_id"] for c in calls] == ids
    assert {r["tool_call_id"]: r["result"] for r in results} == {ids[0]: 391, ids[1]: 1024}
    # every tool_call is announced before the first result
    positions = [e["type"] for e in events]
    assert max(i for i, t in enumerate(positions) if t == "tool_call") < positions.index("tool_result")
    assert events[-2]["output"] == "The answers are 391 and 1024."
    assert events[-2]["tool_calls_count"] == 2


async def test_generated_ids_are_distinct_without_server_ids(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client), "[no-id] What is 1 + 2 and 3 + 4?")

    ids = [c["tool_call_id"] for c in of_type(events, "tool_call")]
    assert len(set(ids)) == 2
    assert {r["tool_call_id"] for r in of_type(events, "tool_result")} == set(ids)
    assert events[-2]["output"] == "The answers are 3 and 7."


async def test_invalid_arguments_become_a_tool_error_and_the_loop_goes_on(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client), "[bad-args] What is 17 * 23?")

    (error,) = of_type(events, "tool_error")
    assert "invalid JSON" in error["error"]
    assert error["tool_call_id"] == of_type(events, "tool_call")[0]["tool_call_id"]
    assert of_type(events, "observation")[0]["has_error"] is True
    assert [s["iteration"] for s in of_type(events, "iteration_start")] == [1, 2]
    assert events[-2]["success"] is True
    assert events[-1]["type"] == "completed"


async def test_a_failing_tool_is_shown_to_the_model(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client), "What is 1 / 0 ?")

    (error,) = of_type(events, "tool_error")
    assert error["error"] == "division by zero"
    assert events[-2]["success"] is True and "division by zero" in events[-2]["output"]


async def test_reasoning_turns_stream_thinking_and_think_in_the_thought(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client), "[think] What is 17 * 23?")

    assert order(events)[:4] == ["started", "iteration_start", "thinking_token*", "tool_call_delta*"]
    thinking = "Let me think about this step by step."
    first_thought = of_type(events, "thought")[0]
    assert first_thought == {**first_thought, "content": thinking, "iteration": 1}  # no text: the thinking
    assert of_type(events, "thought")[1]["content"] == "The answer is 391."


async def test_max_iterations_ends_with_a_failed_result(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client, max_iterations=1), "What is 17 * 23?")

    assert order(events)[-3:] == ["observation", "result", "completed"]
    result, completed = events[-2], events[-1]
    assert (result["success"], result["reason"], result["iterations"]) == (False, "max_iterations", 1)
    assert (completed["success"], completed["status"]) == (False, "failed")


async def test_model_failure_still_completes_exactly_once(
    make_llm_client: Callable[..., OpenAIClient],
) -> None:
    agent = hybrid(make_llm_client(max_retries=0))
    events = await run(agent, "[fail:500] What is 17 * 23?")

    assert order(events) == ["started", "iteration_start", "error", "result", "completed"]
    error = of_type(events, "error")[0]
    assert error["retryable"] is True and error["error_type"] == "server_error"
    assert events[-2]["success"] is False and events[-2]["reason"] == "error"
    assert events[-1]["status"] == "failed"
    assert [e["type"] for e in events].count("completed") == 1


async def test_raise_retryable_raises_after_the_error_event(llm_client: OpenAIClient) -> None:
    agent = hybrid(llm_client, raise_retryable=True)
    seen: list[Event] = []
    with pytest.raises(ModelStreamBroken):
        async for event in agent.execute_task_streaming({"description": "[fail-after:3] Tell me more"}, {}):
            seen.append(event)

    assert order(seen) == ["started", "iteration_start", "token*", "error"]
    assert seen[-1]["retryable"] is True and seen[-1]["error_type"] == "stream_broken"


async def test_raise_retryable_from_the_context(llm_client: OpenAIClient) -> None:
    agent = hybrid(llm_client)
    with pytest.raises(ModelStreamBroken):
        await run(agent, "[fail-after:2] Context flag", {"raise_retryable": True})


async def test_non_retryable_failure_completes_even_when_raising_is_asked(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client, raise_retryable=True), "[fail:400] Bad request")

    assert order(events) == ["started", "iteration_start", "error", "result", "completed"]
    assert events[2]["retryable"] is False and events[2]["error_type"] == "client_error"


async def test_tool_agent_failure_ends_with_a_failed_result_and_no_completed(
    make_llm_client: Callable[..., OpenAIClient],
) -> None:
    agent = ToolAgent(agent_id="a1", llm_client=make_llm_client(max_retries=0), tools=["calculator"])
    events = await run(agent, "[fail:503] What is 2 + 2?")

    assert order(events) == ["started", "error", "result"]
    assert events[-1]["success"] is False


async def test_cancel_event_stops_at_the_next_safe_point(llm_client: OpenAIClient) -> None:
    cancel = asyncio.Event()
    agent = hybrid(llm_client)
    seen: list[str] = []
    with pytest.raises(asyncio.CancelledError):
        async for event in agent.execute_task_streaming(
            {"description": "[slow:5] [tokens:50] Go on"}, {"cancel_event": cancel}
        ):
            seen.append(event["type"])
            if seen.count("token") == 3:
                cancel.set()

    assert seen.count("token") == 3 and "completed" not in seen


async def test_an_agent_without_tools_offers_the_model_none(llm_client: OpenAIClient) -> None:
    agent = HybridAgent(agent_id="a1", llm_client=llm_client, tools=[])
    events = await run(agent, "What is 1 + 1?")  # no calculator offered: the model just chats

    assert order(events) == [
        "started",
        "iteration_start",
        "token*",
        "usage",
        "thought",
        "result",
        "completed",
    ]
    assert events[-2]["output"] == "Turn 1: you said What is 1 + 1?."


# --------------------------------------------------------------------------- memory, build


async def test_process_message_streaming_remembers_each_sender(llm_client: OpenAIClient) -> None:
    agent = LLMAgent(agent_id="a1", llm_client=llm_client, memory=InMemoryMemory())

    first = "".join([t async for t in agent.process_message_streaming("Hello", sender_id="user-123")])
    second = "".join([t async for t in agent.process_message_streaming("Again", sender_id="user-123")])
    other = "".join([t async for t in agent.process_message_streaming("Hi", sender_id="user-456")])

    assert first == "Turn 1: you said Hello."
    assert second == "Turn 2: you said Again."
    assert other == "Turn 1: you said Hi."


async def test_hybrid_chat_keeps_tool_turns_in_memory(llm_client: OpenAIClient) -> None:
    memory = InMemoryMemory()
    agent = hybrid(llm_client, memory=memory)

    answer = "".join([t async for t in agent.process_message_streaming("What is 6 * 7?", sender_id="u1")])
    follow_up = "".join([t async for t in agent.process_message_streaming("Thanks", sender_id="u1")])

    assert answer == "The answer is 42."
    assert follow_up == "Turn 2: you said Thanks."
    roles = [m["role"] for m in await memory.load("u1")]
    assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant"]


async def test_process_message_streaming_raises_model_failures(
    make_llm_client: Callable[..., OpenAIClient],
) -> None:
    agent = LLMAgent(agent_id="a1", llm_client=make_llm_client(max_retries=0))
    with pytest.raises(ModelError):
        async for _ in agent.process_message_streaming("[fail:500] hi", sender_id="u"):
            pass


async def test_sender_id_in_the_context_continues_the_conversation(llm_client: OpenAIClient) -> None:
    agent = hybrid(llm_client, memory=InMemoryMemory())
    await run(agent, "First", {"sender_id": "s1"})
    events = await run(agent, "Second", {"sender_id": "s1"})
    assert events[-2]["output"] == "Turn 2: you said Second."


@pytest.mark.parametrize(("kind", "cls"), [("llm", LLMAgent), ("tool", ToolAgent), ("hybrid", HybridAgent)])
async def test_build_agent_makes_the_requested_agent(
    llm_client: OpenAIClient, kind: str, cls: type[BaseAgent]
) -> None:
    request = TaskRequest(input="What is 17 * 23?", agent=kind, max_iterations=3)  # type: ignore[arg-type]
    agent = build_agent(request, llm_client=llm_client, registry=default_registry(), agent_id="a1")

    assert type(agent) is cls and agent.max_iterations == 3
    result = await agent.execute_task({"description": request.input}, {})
    expected = "Turn 1: you said What is 17 * 23?." if kind == "llm" else "The answer is 391."
    assert result["output"] == expected


async def test_unknown_tools_are_refused_at_initialize(llm_client: OpenAIClient) -> None:
    request = TaskRequest(input="x", agent="hybrid", tools=["nope"])
    agent = build_agent(request, llm_client=llm_client, registry=default_registry())
    with pytest.raises(ConfigurationError, match="nope"):
        await agent.initialize()

    events = await run(agent, "x")  # streamed, the hybrid agent still completes its stream
    assert order(events) == ["error", "result", "completed"]
    assert events[0]["error_type"] == "configuration_error" and "nope" in events[0]["error"]


async def test_a_malformed_task_is_a_usage_error(llm_client: OpenAIClient) -> None:
    with pytest.raises(ConfigurationError, match="description"):
        await hybrid(llm_client).execute_task({"text": "no description"}, {})


async def test_transient_failures_are_retried_invisibly(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client), "[fail:429x2] Retry me please")

    assert "error" not in order(events)
    assert events[-2]["output"] == "Turn 1: you said Retry me please."


async def test_timestamps_travel_as_microseconds_and_leave_as_iso(llm_client: OpenAIClient) -> None:
    """The worker's path (``stream_task``) carries integer microseconds all the way to the
    codec; the in-process API (``execute_task_streaming``) shows PROTOCOL's ISO 8601."""
    from datetime import datetime

    from agentstream.streams.codec import decode, encode, format_us

    agent = HybridAgent(agent_id="a1", llm_client=llm_client, tools=["calculator"])
    raw = [event async for event in agent.stream_task({"description": "What is 6 * 7?"}, {})]
    assert raw and all(type(event["timestamp"]) is int for event in raw)
    stamps = [event["timestamp"] for event in raw]
    assert stamps == sorted(stamps)
    shown = await run(
        HybridAgent(agent_id="a1", llm_client=llm_client, tools=["calculator"]), "What is 6 * 7?"
    )
    assert [e["type"] for e in shown] == [e["type"] for e in raw]
    for event in shown:
        parsed = datetime.fromisoformat(event["timestamp"])
        assert parsed.utcoffset() is not None and len(event["timestamp"].split(".")[1]) == len("123456+00:00")
    first = raw[0]
    encoded = encode(first)
    assert encoded.ts_us == first["timestamp"]
    fields = {
        "t": encoded.type,
        "s": "1",
        "a": "1",
        "m": str(encoded.ts_us),
        "g": encoded.agent_id,
        "d": encoded.payload,
    }
    assert decode("1-0", fields, "t1")["timestamp"] == format_us(first["timestamp"])
