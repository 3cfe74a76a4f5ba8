"""The seeds' programs (AIECS style), imports adapted, against the scripted model: an agent
built with ``AgentConfiguration`` and tools resolved from the app, the ``success`` branch
of ``tool_result``, the DAWP consumer's callbacks, and workflow steps that use tools."""

from __future__ import annotations

import contextlib
from typing import Any

from agentstream.worker.agents import (
    DawpStreamConsumer,
    HybridAgent,
    WorkflowPlugin,
    parse_workflow,
    rebuild_resume_state,
)
from agentstream.worker.app import AgentConfiguration, App, ToolContext
from agentstream.worker.llm import OpenAIClient

RESEARCH = """# Research

## Find sources
Tools: search
Find sources for the task.

## Summarise
Summarise what was found.
"""


def research_app() -> tuple[App, list[str]]:
    app = App()
    searched: list[str] = []

    @app.tool
    async def search(query: str, ctx: ToolContext) -> list[dict[str, str]]:
        """Search the web for a query."""
        searched.append(f"{(ctx.loop_scope or {}).get('kind', 'main')}:{query}")
        if query == "forbidden":
            raise PermissionError("this query is not allowed")
        return [{"title": f"About {query}"}]

    return app, searched


async def test_the_aiecs_agent_program(llm_client: OpenAIClient) -> None:
    app, searched = research_app()
    # --- the seed's program, imports adapted (and the app's registry passed in) ---
    config = AgentConfiguration(
        system_prompt="You are a research assistant.", temperature=0.3, max_iterations=5
    )
    agent = HybridAgent(
        agent_id="agent1", name="Research Agent", llm_client=llm_client, tools=["search", "calculator"],
        config=config, registry=app.registry,
    )  # fmt: skip
    await agent.initialize()
    printed: list[str] = []
    task = {"description": "Look this up [call:search:query=agents] [call:search:query=forbidden]"}
    async for event in agent.execute_task_streaming(task, {}):
        if event["type"] == "token":
            printed.append(event["content"])
        elif event["type"] == "tool_call":
            printed.append(f"\n[calling {event['tool_name']}({event['parameters']})]")
        elif event["type"] == "tool_result":
            if event.get("success"):
                printed.append(f"\n[result: {event['result']}]")
            else:
                printed.append(f"\n[tool failed: {event.get('error')}]")
        elif event["type"] == "result":
            printed.append(f"\n[done in {event['iterations']} iterations]")
    # -------------------------------------------------------------------------------
    text = "".join(printed)
    assert "[result: [{'title': 'About agents'}]]" in text
    assert "[tool failed: tool 'search' failed: PermissionError('this query is not allowed')]" in text
    assert text.endswith("[done in 2 iterations]") and sorted(searched) == ["main:agents", "main:forbidden"]
    assert agent.max_iterations == 5 and agent.system_prompt == "You are a research assistant."


async def test_the_dawp_consumer_program(llm_client: OpenAIClient) -> None:
    opened: list[str] = []
    closed: list[tuple[str, bool | None]] = []
    steps: list[str] = []
    consumer = DawpStreamConsumer(
        on_run_started=lambda panel: opened.append(panel.run_id),
        on_run_completed=lambda panel: closed.append((panel.run_id, panel.success)),
        on_step_started=lambda panel, event: steps.append(event["step_id"]),
    )
    plugin = WorkflowPlugin(
        parse_workflow(RESEARCH.replace("Tools: search\n", "")), stream_boundary_events=True
    )
    agent = HybridAgent(
        agent_id="a1", name="Agent", llm_client=llm_client, tools=["calculator"], workflow=plugin
    )
    scopes: list[str] = []
    async for event in agent.execute_task_streaming({"description": "What is 2 + 3?"}, {}):
        consumer.consume(event)
        scopes.append(consumer.effective_scope(event)["kind"])

    assert len(opened) == 1 and closed == [(opened[0], True)] and consumer.open_run_ids == []
    assert steps == ["find-sources", "summarise"]
    panel = consumer.panels[opened[0]]
    assert [s["step_id"] for s in panel.step_summaries] == ["find-sources", "summarise"]
    assert "dawp" in scopes and scopes[-1] == "main" and consumer.main_text == "The answer is 5."


async def test_boundary_events_are_off_unless_asked(llm_client: OpenAIClient) -> None:
    opened: list[str] = []
    consumer = DawpStreamConsumer(on_run_started=lambda panel: opened.append(panel.run_id))
    plugin = WorkflowPlugin(parse_workflow(RESEARCH.replace("Tools: search\n", "")))
    agent = HybridAgent(agent_id="a1", llm_client=llm_client, tools=[], workflow=plugin)
    events = [e async for e in agent.execute_task_streaming({"description": "Hi"}, {})]
    for event in events:
        consumer.consume(event)

    assert opened == [] and not [e for e in events if e["type"].startswith("dawp_run")]
    assert [s.step_id for s in consumer.steps] == ["find-sources", "summarise"]
    assert all(s.success for s in consumer.steps)


def research_agent(app: App, llm_client: OpenAIClient) -> HybridAgent:
    plugin = WorkflowPlugin(parse_workflow(RESEARCH), stream_boundary_events=True)
    return HybridAgent(
        agent_id="a1", llm_client=llm_client, tools=["search"], registry=app.registry, workflow=plugin
    )


async def test_workflow_steps_use_tools_scoped_dawp(llm_client: OpenAIClient) -> None:
    app, searched = research_app()
    task = {"description": "Research [call:search:query=streams]"}
    events = [e async for e in research_agent(app, llm_client).execute_task_streaming(task, {})]

    dawp_results = [e for e in events if e["type"] == "tool_result" and "loop_scope" in e]
    assert len(dawp_results) == 1
    scope = dawp_results[0]["loop_scope"]
    assert (scope["kind"], scope["step_id"], scope["step_index"]) == ("dawp", "find-sources", 0)
    call = next(e for e in events if e["type"] == "tool_call" and "loop_scope" in e)
    assert call["loop_scope"] == scope and call["tool_call_id"] == dawp_results[0]["tool_call_id"]
    step_one = "".join(e["content"] for e in events if e["type"] == "token" and e.get("loop_scope") == scope)
    assert step_one.endswith('The answer is [{"title": "About streams"}].')
    assert searched == ["dawp:streams", "main:streams"]  # the main loop is offered search too
    assert events[-1]["status"] == "succeeded"


async def test_a_rerun_workflow_does_not_call_a_recorded_step_tool_again(llm_client: OpenAIClient) -> None:
    app, searched = research_app()
    task = {"description": "Research [call:search:query=resume]"}
    recorded: list[dict[str, Any]] = []
    stream = research_agent(app, llm_client).execute_task_streaming(task, {})
    async with contextlib.aclosing(stream):
        async for event in stream:
            recorded.append(event)
            if event["type"] == "tool_result":
                break  # the worker died inside the workflow, after the step's tool result
    state = rebuild_resume_state(recorded)
    assert state is not None and state.workflow_output is None and len(state.dawp_results) == 1

    resumed = [
        e async for e in research_agent(app, llm_client).execute_task_streaming(task, {"resume": state})
    ]

    assert searched == ["dawp:resume", "main:resume"]  # the step's call was not made again
    replayed = next(e for e in resumed if e["type"] == "tool_result" and "loop_scope" in e)
    assert replayed["result"] == [{"title": "About resume"}] and replayed["loop_scope"]["kind"] == "dawp"
    assert resumed[-1]["status"] == "succeeded"
