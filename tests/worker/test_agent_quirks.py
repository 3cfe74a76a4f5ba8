"""What a task's events and result say when the model server behaves as deployed servers
do: the agents, the real client and the scripted server on loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentstream.events import Refusal, parse_event
from agentstream.streams.events import EventFilter
from agentstream.worker.agents import (
    BaseAgent,
    HybridAgent,
    LLMAgent,
    ToolAgent,
    WorkflowPlugin,
    parse_workflow,
    rebuild_resume_state,
)
from agentstream.worker.model import OpenAIClient
from agentstream.worker.scripted import ScriptedLLMServer
from agentstream.worker.scripted.planner import REFUSAL

Event = dict[str, Any]


async def run(agent: BaseAgent, text: str) -> list[Event]:
    return [event async for event in agent.execute_task_streaming({"description": text}, {})]


def of_type(events: list[Event], kind: str) -> list[Event]:
    return [event for event in events if event["type"] == kind]


def result_of(events: list[Event]) -> Event:
    [result] = of_type(events, "result")
    return result


def hybrid(client: OpenAIClient) -> HybridAgent:
    return HybridAgent(agent_id="q1", llm_client=client, tools=["calculator"])


# --------------------------------------------------------------------------- stop reasons


async def test_every_result_says_why_the_model_stopped(llm_client: OpenAIClient) -> None:
    answered = result_of(await run(LLMAgent(agent_id="q1", llm_client=llm_client), "plain"))
    out_of_iterations = result_of(
        await run(
            HybridAgent(agent_id="q1", llm_client=llm_client, tools=["calculator"], max_iterations=1), "2+2"
        )
    )

    assert (answered["success"], answered["stop_reason"]) == (True, "stop")
    assert (out_of_iterations["success"], out_of_iterations["stop_reason"]) == (False, "tool_calls")


async def test_a_length_stop_fails_the_task_with_its_partial_output(llm_client: OpenAIClient) -> None:
    events = await run(LLMAgent(agent_id="q1", llm_client=llm_client), "[length] please write a long essay")

    [error] = of_type(events, "error")
    result = result_of(events)
    assert (error["error_type"], error["retryable"]) == ("model_stopped", False)
    assert "output token limit" in error["error"]
    assert result["success"] is False
    assert result["stop_reason"] == "length"
    assert result["output"] == "".join(e["content"] for e in of_type(events, "token")) == "Turn 1: you said"
    assert result["usage"]["completion_tokens"] == of_type(events, "usage")[0]["completion_tokens"] > 0
    assert [e["type"] for e in events][-3:] == ["usage", "error", "result"]


async def test_a_length_stop_inside_tool_arguments_runs_no_tool(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client), "[length] What is 17 * 23?")

    kinds = {event["type"] for event in events}
    assert not kinds & {"tool_calls_ready", "tool_call", "tool_result", "tool_error", "action"}
    [error] = of_type(events, "error")
    assert "inside the arguments of its tool call(s) to calculator" in error["error"]
    result = result_of(events)
    assert (result["success"], result["stop_reason"], result["reason"]) == (False, "length", "error")
    assert events[-1]["type"] == "completed" and events[-1]["success"] is False


async def test_a_content_filter_stop_fails_the_task(llm_client: OpenAIClient) -> None:
    events = await run(
        ToolAgent(agent_id="q1", llm_client=llm_client, tools=["calculator"]), "[content-filter] hm"
    )

    result = result_of(events)
    assert (result["success"], result["stop_reason"]) == (False, "content_filter")
    assert of_type(events, "error")[0]["error_type"] == "model_stopped"


async def test_a_refusal_reaches_the_stream_and_the_result(llm_client: OpenAIClient) -> None:
    events = await run(LLMAgent(agent_id="q1", llm_client=llm_client), "[refuse] something forbidden")

    refusals = of_type(events, "refusal")
    assert "".join(e["content"] for e in refusals) == REFUSAL
    assert of_type(events, "token") == []
    result = result_of(events)
    assert result["success"] is False
    assert result["stop_reason"] == "refusal"
    assert result["refusal"] == result["output"] == REFUSAL
    # A refusal is a chunk: readers of `chunk`, `chunk_output` and `core` see it.
    assert EventFilter.parse("chunk").matches(refusals[0])
    assert not EventFilter.parse("output").matches(refusals[0])
    assert isinstance(parse_event(refusals[0]), Refusal)


async def test_a_refused_workflow_step_fails_the_step_and_the_task(llm_client: OpenAIClient) -> None:
    plugin = WorkflowPlugin(parse_workflow("# Plan\n\n1. Research\n2. Write\n"), stream_boundary_events=True)
    agent = HybridAgent(agent_id="q1", llm_client=llm_client, tools=["calculator"], workflow=plugin)
    events = await run(agent, "[refuse] something forbidden")

    [step] = of_type(events, "dawp_step_completed")  # the first step refused: no second
    assert step["success"] is False
    assert of_type(events, "dawp_run_completed")[0]["success"] is False
    assert all(e["loop_scope"]["kind"] == "dawp" for e in of_type(events, "refusal"))
    result = result_of(events)
    assert (result["success"], result["stop_reason"], result["refusal"]) == (False, "refusal", REFUSAL)


# --------------------------------------------------------------------------- tool calls


async def test_parallel_calls_sharing_index_zero_all_run(llm_client: OpenAIClient) -> None:
    for quirk in ("same-index", "no-index"):
        events = await run(hybrid(llm_client), f"[{quirk}] What is 17 * 23 and 4 + 5?")

        [ready] = of_type(events, "tool_calls_ready")
        assert [(c["index"], c["parameters"]) for c in ready["tool_calls"]] == [
            (0, {"expression": "17 * 23"}),
            (1, {"expression": "4 + 5"}),
        ]
        assert sorted(e["result"] for e in of_type(events, "tool_result")) == [9, 391]
        assert of_type(events, "tool_error") == []
        assert result_of(events)["output"] == "The answers are 391 and 9."


# --------------------------------------------------------------------------- completeness


async def test_answers_without_finish_reason_succeed(llm_client: OpenAIClient) -> None:
    chat = result_of(await run(LLMAgent(agent_id="q1", llm_client=llm_client), "[no-finish] fine"))
    tools = result_of(await run(hybrid(llm_client), "[no-finish] What is 6 * 7?"))

    assert (chat["success"], chat["output"], chat["stop_reason"]) == (True, "Turn 1: you said fine.", "stop")
    assert (tools["success"], tools["output"], tools["stop_reason"]) == (True, "The answer is 42.", "stop")


async def test_a_stream_cut_without_finish_or_done_is_a_broken_stream(
    make_llm_client: Callable[..., OpenAIClient],
) -> None:
    events = await run(LLMAgent(agent_id="q1", llm_client=make_llm_client()), "[no-finish][no-done] cut")

    [error] = of_type(events, "error")
    assert (error["error_type"], error["retryable"]) == ("stream_broken", True)
    assert result_of(events)["success"] is False


# --------------------------------------------------------------------------- usage and options


async def test_one_usage_event_per_model_call_with_details(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client), "[think] What is 17 * 23?")

    usages = of_type(events, "usage")
    assert len(usages) == len(of_type(events, "iteration_start")) == 2
    assert all(u["reasoning_tokens"] > 0 and "cached_tokens" in u for u in usages)
    assert usages[1]["cached_tokens"] > 0  # the second call repeats the first one's prompt
    total = result_of(events)["usage"]
    for name in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens", "cached_tokens"):
        assert total[name] == sum(u[name] for u in usages)
    # A resumed attempt counts the details it finds in the stream too.
    resumed = rebuild_resume_state(
        [*events[: events.index(usages[0]) + 1], *of_type(events, "tool_calls_ready")]
    )
    assert resumed is not None and resumed.usage["reasoning_tokens"] == usages[0]["reasoning_tokens"]


async def test_a_server_rejecting_stream_options_still_runs_the_task(
    scripted_llm: ScriptedLLMServer, make_llm_client: Callable[..., OpenAIClient]
) -> None:
    client = make_llm_client(base_url=scripted_llm.base_url_with("reject-stream-options"))
    events = await run(hybrid(client), "What is 17 * 23?")

    result = result_of(events)
    assert (result["success"], result["output"]) == (True, "The answer is 391.")
    assert of_type(events, "usage") == []
    assert of_type(events, "error") == []
