"""The workflow (dawp) plugin: parsing, scoped events with and without boundary events,
its output reaching the main loop, failures and resumption."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from agentstream.worker.agents import (
    DawpStreamConsumer,
    HybridAgent,
    LLMAgent,
    WorkflowPlugin,
    effective_loop_scope,
    parse_workflow,
    rebuild_resume_state,
)
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.llm import ModelSettings, OpenAIClient
from agentstream.worker.scripted_llm import ScriptedLLMServer

Event = dict[str, Any]

DOC = """# Research plan

## Gather facts
List the facts you need.

## Summarise
Write a short summary.
"""
DAWP_TYPES = {"dawp_run_started", "dawp_step_started", "dawp_step_completed", "dawp_run_completed"}


async def run(agent: Any, text: str, context: dict[str, Any] | None = None) -> list[Event]:
    return [e async for e in agent.execute_task_streaming({"description": text}, context or {})]


def hybrid(client: OpenAIClient, boundary: bool = True) -> HybridAgent:
    plugin = WorkflowPlugin(parse_workflow(DOC), stream_boundary_events=boundary)
    return HybridAgent(agent_id="a1", llm_client=client, tools=["calculator"], workflow=plugin)


def test_parse_sections() -> None:
    workflow = parse_workflow(DOC)

    assert (workflow.workflow_id, workflow.title) == ("research-plan", "Research plan")
    assert [(s.step_id, s.index, s.prompt) for s in workflow.steps] == [
        ("gather-facts", 0, "List the facts you need."),
        ("summarise", 1, "Write a short summary."),
    ]


def test_parse_a_numbered_list_with_continuations_and_an_explicit_id() -> None:
    workflow = parse_workflow("# Plan\n\nIntro.\n\n1. First thing\n2) Second\n   continued\n", "wf-1")

    assert workflow.workflow_id == "wf-1"
    assert [s.prompt for s in workflow.steps] == ["First thing", "Second\ncontinued"]
    assert [s.step_id for s in workflow.steps] == ["first-thing", "second-continued"]


def test_a_document_without_steps_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="steps"):
        parse_workflow("# Only a title\n\nSome prose.")


async def test_workflow_events_are_scoped_and_bounded(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client), "What is 17 * 23?")

    dawp = [e for e in events if effective_loop_scope(e)["kind"] == "dawp"]
    kinds = [e["type"] for e in dawp]
    assert kinds[0] == "dawp_run_started" and kinds[-1] == "dawp_run_completed"
    assert [e["type"] for e in dawp if e["type"] in DAWP_TYPES] == [
        "dawp_run_started",
        "dawp_step_started", "dawp_step_completed",
        "dawp_step_started", "dawp_step_completed",
        "dawp_run_completed",
    ]  # fmt: skip
    start = dawp[0]
    run_id = start["run_id"]
    assert (start["workflow_id"], start["placement"], start["trigger"]) == (
        "research-plan",
        "before_main",
        "task",
    )
    for event in dawp:
        scope = event["loop_scope"]
        assert (scope["kind"], scope["run_id"], scope["workflow_id"]) == ("dawp", run_id, "research-plan")
        if event["type"] in ("token", "usage", "dawp_step_started", "dawp_step_completed"):
            assert scope["step_id"] in ("gather-facts", "summarise")
            assert scope["step_index"] == ["gather-facts", "summarise"].index(scope["step_id"])
    assert all(e["success"] for e in dawp if e["type"] == "dawp_step_completed")
    summaries = dawp[-1]["step_summaries"]
    assert dawp[-1]["success"] is True and [s["step_id"] for s in summaries] == ["gather-facts", "summarise"]
    # the workflow runs before the main loop, whose events carry no loop_scope
    main = [e for e in events if "loop_scope" not in e]
    assert [e["type"] for e in main][:2] == ["started", "iteration_start"]
    assert events.index(dawp[-1]) < events.index(main[1])
    assert events[-2]["output"] == "The answer is 391." and events[-1]["type"] == "completed"

    consumer = DawpStreamConsumer()
    for event in events:
        consumer.feed(event)
    assert [(s.step_id, s.index, s.success) for s in consumer.steps] == [
        ("gather-facts", 0, True),
        ("summarise", 1, True),
    ]
    assert consumer.steps[0].text.startswith("Turn 1: you said List the facts you need.")
    assert "Output of the previous step" in consumer.steps[1].text
    assert consumer.main_text == "The answer is 391."
    assert consumer.runs[run_id]["success"] is True


async def test_boundary_events_can_be_turned_off(llm_client: OpenAIClient) -> None:
    events = await run(hybrid(llm_client, boundary=False), "Hello")

    kinds = [e["type"] for e in events if e["type"] in DAWP_TYPES]
    assert kinds == ["dawp_step_started", "dawp_step_completed"] * 2
    assert all(e["loop_scope"]["kind"] == "dawp" for e in events if e["type"] in DAWP_TYPES)


class SpyClient(OpenAIClient):
    """The real client, remembering the messages of every model call."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.calls: list[list[dict[str, Any]]] = []

    def stream_chat(self, messages: list[dict[str, Any]], tools: Any = None, *, model: Any = None) -> Any:
        self.calls.append([dict(m) for m in messages])
        return super().stream_chat(messages, tools, model=model)


async def test_the_workflow_output_reaches_the_main_loop(scripted_llm: ScriptedLLMServer) -> None:
    async with SpyClient(ModelSettings(base_url=scripted_llm.base_url)) as client:
        plugin = WorkflowPlugin(parse_workflow(DOC))
        agent = LLMAgent(agent_id="a1", llm_client=client, workflow=plugin, system_prompt="Be brief.")
        events = await run(agent, "Tell me")

    step_two = "".join(e["content"] for e in events if e["type"] == "token" and "loop_scope" in e)
    main_call = client.calls[-1]
    assert [m["role"] for m in main_call] == ["system", "system", "user"]
    assert main_call[1]["content"].endswith(step_two.split("Turn 1: ")[-1])
    assert "Research plan" in main_call[1]["content"]
    assert events[-1]["output"] == "Turn 1: you said Tell me."


async def test_a_failing_step_ends_the_run_and_the_task(make_llm_client: Callable[..., OpenAIClient]) -> None:
    events = await run(hybrid(make_llm_client(max_retries=0)), "[fail:500] anything")

    kinds = [e["type"] for e in events]
    assert kinds == [
        "started", "dawp_run_started", "dawp_step_started", "dawp_step_completed", "dawp_run_completed",
        "error", "result", "completed",
    ]  # fmt: skip
    assert events[3]["success"] is False and events[4]["success"] is False
    assert events[-1]["status"] == "failed"


async def test_a_resumed_run_does_not_repeat_a_finished_workflow(llm_client: OpenAIClient) -> None:
    recorded: list[Event] = []
    stream = hybrid(llm_client).execute_task_streaming({"description": "What is 6 * 7?"}, {})
    async with contextlib.aclosing(stream):
        async for event in stream:
            recorded.append(event)
            if event["type"] == "tool_calls_ready" and "loop_scope" not in event:
                break
    state = rebuild_resume_state(recorded)
    assert state is not None and state.workflow_output

    resumed = await run(hybrid(llm_client), "What is 6 * 7?", {"resume": state})
    assert not [e for e in resumed if "loop_scope" in e]
    assert [e["type"] for e in resumed][:3] == ["started", "action", "tool_call"]
    assert resumed[-2]["output"] == "The answer is 42."
