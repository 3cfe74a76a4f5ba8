"""The App in-process: tools from functions (schemas, validation, timeouts, failures, the
context and its custom events), named agents with their configuration, resumption, and
loading ``module:attr`` (issue 11 section 1)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import textwrap
import threading
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field

from agentstream.worker.agents import HybridAgent, rebuild_resume_state
from agentstream.worker.app import AgentConfiguration, App, ToolContext, load_app
from agentstream.worker.app.context import MAX_CUSTOM_EVENTS
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.llm import ModelSettings, OpenAIClient
from agentstream.worker.payload import TaskRequest
from agentstream.worker.scripted_llm import ScriptedLLMServer
from agentstream.worker.tools import ToolSettings

Event = dict[str, Any]


class SpyClient(OpenAIClient):
    """The real client, remembering what every model call was sent."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.calls: list[dict[str, Any]] = []

    def stream_chat(self, messages: Any, tools: Any = None, **kwargs: Any) -> Any:
        self.calls.append({"messages": [dict(m) for m in messages], "tools": tools, **kwargs})
        return super().stream_chat(messages, tools, **kwargs)


@pytest.fixture
async def spy(scripted_llm: ScriptedLLMServer) -> Any:
    async with SpyClient(ModelSettings(base_url=scripted_llm.base_url, read_timeout_s=10)) as client:
        yield client


def shop() -> tuple[App, list[str]]:
    """An app like a user's: a sync tool, an async tool with a context, a named agent."""
    app = App(name="shop")
    calls: list[str] = []

    @app.tool
    def add_numbers(a: int, b: int) -> int:
        """Add two integers."""
        calls.append(f"add:{threading.current_thread() is threading.main_thread()}")
        return a + b

    @app.tool(timeout_s=5)
    async def lookup_order(order_id: Annotated[str, Field(description="like A17")], ctx: ToolContext) -> dict:
        """Look up an order."""
        calls.append(f"lookup:{order_id}")
        await ctx.emit("progress", {"step": "querying", "task": ctx.task_id, "attempt": ctx.attempt})
        if order_id == "X":
            raise LookupError("no order X")
        return {"order_id": order_id, "status": "shipped"}

    app.agent(
        "support", tools=["lookup_order"], model="scripted", system_prompt="You are the support agent of ACME.",
        max_iterations=4, model_options={"temperature": 0.2},
    )  # fmt: skip
    return app, calls


async def run(agent: Any, text: str, context: dict[str, Any] | None = None) -> list[Event]:
    return [
        e async for e in agent.execute_task_streaming({"description": text, "task_id": "t1"}, context or {})
    ]


def kinds(events: list[Event]) -> list[str]:
    return [e["type"] for e in events if e["type"] not in ("token", "usage", "tool_call_delta")]


# --------------------------------------------------------------------------- tools


def test_schemas_come_from_the_signature_and_docstring_without_the_context() -> None:
    app, _ = shop()
    registry = app.build_registry(ToolSettings())

    lookup = registry.get("lookup_order")
    assert lookup.description == "Look up an order."
    assert lookup.parameters["properties"] == {"order_id": {"type": "string", "description": "like A17"}}
    assert lookup.parameters["required"] == ["order_id"] and lookup.context_param == "ctx"
    assert lookup.timeout_s == 5
    assert registry.get("add_numbers").parameters["required"] == ["a", "b"]
    assert registry.names() == ["calculator", "current_time", "add_numbers", "lookup_order"]


def test_a_context_is_recognised_by_annotation_under_any_name() -> None:
    app = App(builtin_tools=False)

    @app.tool
    def where(city: str, run_info: ToolContext) -> str:
        """Where."""
        return f"{city}:{run_info.task_id}"

    @app.tool
    async def when(day: int, ctx) -> int:  # type: ignore[no-untyped-def]  # the issue's spelling
        """When."""
        return day

    assert app.build_registry(ToolSettings()).names() == ["where", "when"]
    assert where.context_param == "run_info" and list(where.parameters["properties"]) == ["city"]
    assert when.context_param == "ctx" and list(when.parameters["properties"]) == ["day"]


def test_tools_default_to_the_deployments_timeout_and_names_are_checked() -> None:
    app = App()

    @app.tool
    def slow() -> None:
        """Slow."""

    assert app.build_registry(ToolSettings(default_timeout_s=7)).get("slow").timeout_s == 7
    with pytest.raises(ConfigurationError, match="built-in tool"):
        app.tool(name="calculator")(lambda expression: expression)
    with pytest.raises(ConfigurationError, match="already has a tool"):
        app.tool(name="slow")(lambda: None)
    app.agent("bad", tools=["nope"])
    with pytest.raises(ConfigurationError, match=r"agent 'bad' uses unknown tool.*nope"):
        app.build_registry(ToolSettings())


def test_agent_declarations_are_checked() -> None:
    app = App()
    with pytest.raises(ConfigurationError, match="built-in agent kind"):
        app.agent("hybrid")
    with pytest.raises(ConfigurationError, match="kind must be"):
        app.agent("x", kind="wizard")
    with pytest.raises(ConfigurationError, match="must match"):
        app.agent("no spaces")
    with pytest.raises(ConfigurationError, match="model_options may not set messages"):
        app.agent("y", model_options={"messages": []})
    with pytest.raises(ConfigurationError, match="unknown agent 'z'; this app serves: llm, tool, hybrid"):
        app.spec("z")


async def test_sync_tools_run_off_the_loop_and_failures_are_outcomes() -> None:
    app, calls = shop()
    registry = app.build_registry(ToolSettings())

    assert (await registry.call("add_numbers", {"a": 2, "b": 3})).result == 5
    assert calls == ["add:False"]  # a worker thread, not the event loop's
    bad = await registry.call("add_numbers", {"a": "two", "b": 3})
    assert not bad.success and "invalid parameters for tool 'add_numbers'" in (bad.error or "")
    failed = await registry.call("lookup_order", {"order_id": "X"})
    assert not failed.success and "no order X" in (failed.error or "")

    @app.tool(timeout_s=0.2)
    async def stuck() -> None:
        """Never returns."""
        await asyncio.Event().wait()

    timed_out = await app.build_registry(ToolSettings()).call("stuck", {})
    assert timed_out.error == "tool 'stuck' timed out after 0.2s"


async def test_emit_checks_its_input_and_ends_with_the_call() -> None:
    seen: list[Event] = []
    ctx = ToolContext(tool_name="t", tool_call_id="c1", _sink=seen.append)
    await ctx.emit("partial.output", {"text": "hel"})
    assert seen == [{"type": "custom", "name": "partial.output", "data": {"text": "hel"},
                     "tool_name": "t", "tool_call_id": "c1"}]  # fmt: skip
    for name, data, message in [
        ("no spaces", None, "must match"),
        ("ok", {1, 2}, "not JSON"),
        ("ok", "x" * 70_000, "the limit is 65536"),
    ]:
        with pytest.raises(Exception, match=message):
            await ctx.emit(name, data)
    for _ in range(MAX_CUSTOM_EVENTS - 1):
        await ctx.emit("tick")
    with pytest.raises(Exception, match="more than 1000 events"):
        await ctx.emit("tick")
    ctx.close()
    with pytest.raises(Exception, match="after its call returned"):
        await ctx.emit("late")


# --------------------------------------------------------------------------- named agents


async def test_a_named_agent_calls_its_tool_and_streams_the_tools_own_events(spy: SpyClient) -> None:
    app, calls = shop()
    agent = app.get_agent("support", llm_client=spy)

    events = await run(
        agent, "Where is my order? [call:lookup_order:order_id=A17]", {"attempt": 2, "tenant": "acme"}
    )

    assert kinds(events) == [
        "started", "iteration_start", "tool_calls_ready", "thought", "action", "tool_call", "custom",
        "tool_result", "observation", "iteration_start", "thought", "result", "completed",
    ]  # fmt: skip
    custom = next(e for e in events if e["type"] == "custom")
    call = next(e for e in events if e["type"] == "tool_call")
    assert custom["name"] == "progress" and custom["data"] == {"step": "querying", "task": "t1", "attempt": 2}
    assert (custom["tool_name"], custom["tool_call_id"], custom["agent_id"]) == (
        "lookup_order", call["tool_call_id"], "support",
    )  # fmt: skip
    assert next(e for e in events if e["type"] == "tool_result")["result"]["status"] == "shipped"
    assert calls == ["lookup:A17"] and events[-1]["success"] is True
    first = spy.calls[0]
    assert first["messages"][0] == {"role": "system", "content": "You are the support agent of ACME."}
    assert [t["function"]["name"] for t in first["tools"]] == ["lookup_order"]
    assert first["model"] == "scripted" and first["options"] == {"temperature": 0.2}


async def test_a_failed_call_has_a_failed_tool_result_and_a_tool_error(spy: SpyClient) -> None:
    app, _ = shop()
    events = await run(app.get_agent("support", llm_client=spy), "[call:lookup_order:order_id=X]")

    failed = [e for e in events if e["type"] in ("tool_result", "tool_error")]
    assert [e["type"] for e in failed] == ["tool_result", "tool_error"]
    assert (
        failed[0]["success"] is False and "no order X" in failed[0]["error"] and failed[0]["result"] is None
    )
    assert failed[1]["error"] == failed[0]["error"]
    assert next(e for e in events if e["type"] == "observation")["has_error"] is True
    # the seed's branch
    outcomes = [
        "ok" if e["success"] else f"failed: {e['error']}" for e in events if e["type"] == "tool_result"
    ]
    assert outcomes[0].startswith("failed: tool 'lookup_order' failed")


async def test_a_tool_the_agent_does_not_have_is_refused_to_the_model(spy: SpyClient) -> None:
    app, calls = shop()
    request = TaskRequest(input="x", agent="support", tools=["lookup_order"])
    assert app.spec("support").for_request(request).tools == ("lookup_order",)
    with pytest.raises(ConfigurationError, match=r"agent 'support' has no tool.*add_numbers"):
        app.spec("support").for_request(TaskRequest(input="x", agent="support", tools=["add_numbers"]))
    # the built-in kinds get every tool of the app
    hybrid = app.get_agent("hybrid", llm_client=spy)
    events = await run(hybrid, "[call:add_numbers:a=2,b=40]")
    assert events[-2]["output"] == "The answer is 42." and calls == ["add:False"]


async def test_process_message_streaming_uses_the_agents_prompt(spy: SpyClient) -> None:
    app, _ = shop()
    agent = app.get_agent("support", llm_client=spy)

    first = "".join([t async for t in agent.process_message_streaming("Hello", sender_id="u1")])
    second = "".join([t async for t in agent.process_message_streaming("Again", sender_id="u1")])

    assert (first, second) == ("Turn 1: you said Hello.", "Turn 2: you said Again.")
    assert spy.calls[-1]["messages"][0]["content"] == "You are the support agent of ACME."


async def test_an_app_tool_with_a_recorded_result_is_not_run_again_on_resume(spy: SpyClient) -> None:
    app, calls = shop()
    text = "[call:lookup_order:order_id=B42]"
    recorded: list[Event] = []
    stream = app.get_agent("support", llm_client=spy).execute_task_streaming({"description": text}, {})
    async with contextlib.aclosing(stream):
        async for event in stream:
            recorded.append(event)
            if event["type"] == "tool_result":
                break  # the worker died right after the result was stored
    state = rebuild_resume_state(recorded)
    assert state is not None

    resumed = await run(app.get_agent("support", llm_client=spy), text, {"resume": state})

    assert calls == ["lookup:B42"]
    assert "tool_call" not in kinds(resumed) and resumed[-2]["output"].startswith("The answer is")


# --------------------------------------------------------------------------- AgentConfiguration


async def test_agent_configuration_is_accepted_and_explicit_arguments_win(spy: SpyClient) -> None:
    config = AgentConfiguration(
        system_prompt="You are terse.", goal="Answer in one line.", temperature=0.1, max_tokens=64,
        max_iterations=3, llm_model="scripted",
    )  # fmt: skip
    agent = HybridAgent(agent_id="a1", name="My Agent", llm_client=spy, tools=["calculator"], config=config)
    assert (agent.max_iterations, agent.model) == (3, "scripted")
    assert agent.system_prompt == "You are terse.\n\nGoal: Answer in one line."
    assert HybridAgent(agent_id="a2", llm_client=spy, config=config, max_iterations=5).max_iterations == 5

    events = await run(agent, "What is 6 * 7?")

    assert events[-2]["output"] == "The answer is 42."
    assert spy.calls[0]["options"] == {"temperature": 0.1, "max_tokens": 64}
    assert spy.calls[0]["messages"][0]["content"].startswith("You are terse.")
    with pytest.raises(Exception, match="memory_enabled"):
        AgentConfiguration(memory_enabled=True)  # type: ignore[call-arg]


# --------------------------------------------------------------------------- loading


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "proj_app_mod.py").write_text(
        textwrap.dedent(
            """
            from agentstream.worker.app import App
            app = App(name="proj")
            not_an_app = 3
            class holder:
                inner = app
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    sys.modules.pop("proj_app_mod", None)


@pytest.mark.usefixtures("project")
def test_load_app_imports_from_the_working_directory() -> None:
    assert load_app("proj_app_mod:app").name == "proj"
    assert load_app("proj_app_mod:holder.inner").name == "proj"
    for reference, message in [
        ("proj_app_mod", "expected 'module:attr'"),
        ("no_such_module_xyz:app", "cannot import module 'no_such_module_xyz'"),
        ("proj_app_mod:missing", "module 'proj_app_mod' has no attribute 'missing'"),
        ("proj_app_mod:not_an_app", "'not_an_app' is a int, not an agentstream App"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            load_app(reference)
