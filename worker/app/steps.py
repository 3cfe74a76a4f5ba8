"""Tools in workflow (dawp) steps: what an agent hands its workflow plugin.

A step offers some of its agent's tools (its ``Tools:`` line); its calls run through the
agent's tool batch with the step's ``loop_scope``. When a workflow that had not finished
runs again on a new attempt, a call equal to one recorded (same step, tool and
arguments) gets the recorded outcome, announced under its new id, without running the
tool again (:func:`~agentstream.worker.app.batch.split_recorded`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Protocol

from agentstream.worker.app.batch import split_recorded
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.llm import ReadyToolCall
from agentstream.worker.tools import ToolRegistry

if TYPE_CHECKING:
    from agentstream.worker.agents.base import RunContext

__all__ = ["step_tool_functions"]

Events = AsyncGenerator[dict[str, Any], None]
Schemas = Callable[[Sequence[str]], list[dict[str, Any]]]
RunCalls = Callable[[list[ReadyToolCall], Mapping[str, Any]], Events]


class _Agent(Protocol):
    agent_id: str
    tool_names: list[str]
    registry: ToolRegistry

    def event(
        self, type_: str, /, *, scope: Mapping[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]: ...

    def run_tools(
        self,
        run: RunContext,
        calls: Sequence[ReadyToolCall],
        *,
        iteration: int | None = None,
        scope: Mapping[str, Any] | None = None,
    ) -> Events: ...


def step_tool_functions(agent: _Agent, run: RunContext) -> tuple[Schemas, RunCalls]:
    """The ``(schemas, run)`` of the workflow plugin's ``StepTools`` for one run."""

    def schemas(names: Sequence[str]) -> list[dict[str, Any]]:
        if missing := [name for name in names if name not in agent.tool_names]:
            raise ConfigurationError(
                f"workflow step tool(s) {', '.join(missing)} are not tools of agent {agent.agent_id!r}; "
                f"its tools: {', '.join(agent.tool_names) or 'none'}"
            )
        return agent.registry.openai_schema(list(names))

    async def run_calls(calls: list[ReadyToolCall], scope: Mapping[str, Any]) -> Events:
        recorded = run.resume.dawp_results if run.resume is not None else {}
        replayed, pending = split_recorded(calls, recorded, scope.get("step_id"))
        for call, outcome in replayed:
            ids = {"tool_name": call.tool_name, "tool_call_id": call.tool_call_id}
            yield agent.event("tool_call", scope=scope, **ids, parameters=dict(call.parameters or {}))
            for fields in outcome:
                yield agent.event(fields.pop("type"), scope=scope, **fields)
        async with aclosing(agent.run_tools(run, pending, scope=scope)) as stream:
            async for event in stream:
                yield event

    return schemas, run_calls
