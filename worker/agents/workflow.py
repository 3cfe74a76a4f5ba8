"""The workflow (dawp) plugin: a chain of prompts an agent runs before its main loop.

A workflow is a markdown document: ``# Title``, then its steps, either as ``## Step name``
sections (the body is the prompt) or as a numbered list (``1. prompt``). Each step is one
model call whose prompt holds the step text, the previous step's output and the task; the
last step's output is handed to the main loop as context.

Every event of a run carries ``loop_scope = {"kind": "dawp", run_id, workflow_id, step_id,
step_index}`` so readers can tell it from the main loop (``scope=main|dawp``).
:class:`DawpStreamConsumer` (in :mod:`.dawp_consumer`) is the reading side.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agentstream.worker.agents.dawp_consumer import DawpRunPanel, DawpStep, DawpStreamConsumer
from agentstream.worker.agents.resume import assistant_message, tool_message
from agentstream.worker.errors import ConfigurationError, ModelError
from agentstream.worker.llm import ReadyToolCall, TurnAccumulator

__all__ = [
    "DawpRunPanel",
    "DawpStep",
    "DawpStreamConsumer",
    "StepTools",
    "Workflow",
    "WorkflowOutcome",
    "WorkflowPlugin",
    "WorkflowStep",
    "parse_workflow",
]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_NUMBERED = re.compile(r"^\s*(\d+)[.)]\s+(.*)$")
_SUMMARY_CHARS = 500
_TOOLS_LINE = re.compile(r"^[ \t]*tools:[ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
#: model turns a step may spend calling tools; the turn after them offers none, to answer
MAX_STEP_TOOL_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class WorkflowStep:
    """One step: its id (a slug of its name), position and prompt."""

    step_id: str
    index: int
    name: str
    prompt: str
    #: tools of the agent this step may call (a ``Tools: a, b`` line of its body)
    tools: tuple[str, ...] = ()


def _split_tools(prompt: str) -> tuple[str, tuple[str, ...]]:
    """A step body without its ``Tools:`` lines, and the tools they name."""
    names = [name.strip() for line in _TOOLS_LINE.findall(prompt) for name in line.split(",")]
    return _TOOLS_LINE.sub("", prompt).strip() or prompt, tuple(dict.fromkeys(n for n in names if n))


@dataclass(frozen=True, slots=True)
class Workflow:
    """A parsed workflow document."""

    workflow_id: str
    title: str
    steps: tuple[WorkflowStep, ...]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48]


def _sections(lines: list[str]) -> list[tuple[str, str]]:
    """``## Step`` sections as (name, body)."""
    steps: list[tuple[str, list[str]]] = []
    for line in lines:
        heading = _HEADING.match(line)
        if heading and len(heading[1]) == 2:
            steps.append((heading[2], []))
        elif steps and not (heading and len(heading[1]) == 1):
            steps[-1][1].append(line)
    return [(name, "\n".join(body).strip() or name) for name, body in steps]


def _numbered(lines: list[str]) -> list[tuple[str, str]]:
    """``1. prompt`` items as (name, prompt); indented lines continue an item."""
    items: list[list[str]] = []
    for line in lines:
        item = _NUMBERED.match(line)
        if item:
            items.append([item[2].strip()])
        elif items and line.strip() and line[:1].isspace():
            items[-1].append(line.strip())
    return [(" ".join(parts)[:60], "\n".join(parts)) for parts in items]


def parse_workflow(markdown: str, workflow_id: str | None = None) -> Workflow:
    """Parse a workflow document; raises ``ConfigurationError`` when it has no steps.

    ``workflow_id`` defaults to a slug of the title (or a hash of the document).
    """
    lines = markdown.splitlines()
    title = next(
        (m[2] for m in map(_HEADING.match, lines) if m and len(m[1]) == 1),
        "workflow",
    )
    found = _sections(lines) or _numbered(lines)
    if not found:
        raise ConfigurationError(
            "a workflow needs steps: '## Step name' sections or a numbered list ('1. prompt')"
        )
    steps: list[WorkflowStep] = []
    seen: set[str] = set()
    for index, (name, prompt) in enumerate(found):
        step_id = _slug(name) or f"step-{index + 1}"
        if step_id in seen:
            step_id = f"{step_id}-{index + 1}"
        seen.add(step_id)
        text, tools = _split_tools(prompt)
        steps.append(WorkflowStep(step_id=step_id, index=index, name=name, prompt=text, tools=tools))
    default_id = _slug(title) or hashlib.sha256(markdown.encode()).hexdigest()[:12]
    return Workflow(workflow_id=workflow_id or default_id, title=title, steps=tuple(steps))


@dataclass(slots=True)
class WorkflowOutcome:
    """Filled by :meth:`WorkflowPlugin.run`: the run's output, success and usage."""

    run_id: str = ""
    success: bool = False
    output: str = ""
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepTools:
    """How steps use their agent's tools: the schemas of some of them (raising
    ``ConfigurationError`` for a tool the agent lacks), and running a batch of calls
    whose events carry the given ``loop_scope``."""

    schemas: Callable[[Sequence[str]], list[dict[str, Any]]]
    run: Callable[[list[ReadyToolCall], Mapping[str, Any]], AsyncGenerator[dict[str, Any], None]]


@dataclass(slots=True)
class _StepOutput:
    text: str = ""
    usage: dict[str, int] = field(default_factory=dict)

    def add(self, turn: TurnAccumulator) -> None:
        self.text = turn.text
        for name, value in turn.usage_fields().items():
            self.usage[name] = self.usage.get(name, 0) + value


class StepModel(Protocol):
    """What the plugin needs from its agent: events and one model call per step."""

    def event(
        self, type_: str, /, *, scope: Mapping[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]: ...

    def model_turn(
        self,
        turn: TurnAccumulator,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        scope: Mapping[str, Any] | None = None,
        cancel_event: asyncio.Event | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]: ...


def _step_prompt(step: WorkflowStep, previous: str | None, task: str) -> str:
    parts = [step.prompt]
    if previous:
        parts.append(f"Output of the previous step:\n{previous}")
    parts.append(f"Task:\n{task}")
    return "\n\n".join(parts)


class WorkflowPlugin:
    """Runs a :class:`Workflow` as a chain before an agent's main loop.

    ``stream_boundary_events`` (off unless asked, as in the seed) adds
    ``dawp_run_started``/``dawp_run_completed`` around the run;
    ``dawp_step_started``/``dawp_step_completed`` are always streamed.
    """

    def __init__(
        self,
        workflow: Workflow,
        stream_boundary_events: bool = False,
        placement: Literal["before_main"] = "before_main",
    ) -> None:
        if placement != "before_main":
            raise ConfigurationError(f"unsupported workflow placement {placement!r}; use 'before_main'")
        self.workflow = workflow
        self.stream_boundary_events = stream_boundary_events
        self.placement = placement

    @property
    def title(self) -> str:
        return self.workflow.title

    async def run(
        self,
        agent: StepModel,
        task: str,
        outcome: WorkflowOutcome,
        *,
        trigger: str = "task",
        cancel_event: asyncio.Event | None = None,
        tools: StepTools | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Stream one run of the workflow for ``task``; the result lands in ``outcome``.

        A model failure in a step ends the run (``success`` false) and is re-raised, so
        the agent reports it as it reports a failure of its main loop. Steps naming tools
        need ``tools`` (their calls' events carry the step's ``loop_scope``).
        """
        offered = self._step_schemas(tools)
        outcome.run_id = f"run_{uuid.uuid4().hex[:16]}"
        run_scope = {"kind": "dawp", "run_id": outcome.run_id, "workflow_id": self.workflow.workflow_id}
        if self.stream_boundary_events:
            yield agent.event(
                "dawp_run_started",
                scope=run_scope,
                run_id=outcome.run_id,
                workflow_id=self.workflow.workflow_id,
                placement=self.placement,
                trigger=trigger,
            )
        summaries: list[dict[str, Any]] = []
        previous: str | None = None
        try:
            for step in self.workflow.steps:
                scope = {**run_scope, "step_id": step.step_id, "step_index": step.index}
                done = _StepOutput()
                prompt = _step_prompt(step, previous, task)
                step_tools = (tools, offered[step.step_id]) if step.step_id in offered and tools else None
                async with aclosing(
                    self._step(agent, step, scope, done, prompt, cancel_event, step_tools)
                ) as stream:
                    async for event in stream:
                        yield event
                previous = done.text
                for name, value in done.usage.items():
                    outcome.usage[name] = outcome.usage.get(name, 0) + value
                summaries.append(_summary(step, True, done.text))
        except ModelError:
            if self.stream_boundary_events:
                yield self._run_completed(agent, run_scope, outcome.run_id, False, summaries)
            raise
        outcome.success, outcome.output = True, previous or ""
        if self.stream_boundary_events:
            yield self._run_completed(agent, run_scope, outcome.run_id, True, summaries)

    def _step_schemas(self, tools: StepTools | None) -> dict[str, list[dict[str, Any]]]:
        """The tools each step offers, checked before the run starts."""
        using = [step for step in self.workflow.steps if step.tools]
        if using and tools is None:
            raise ConfigurationError(f"workflow step {using[0].step_id!r} uses tools, but its agent has none")
        return {step.step_id: tools.schemas(step.tools) for step in using} if tools else {}

    async def _step(
        self,
        agent: StepModel,
        step: WorkflowStep,
        scope: dict[str, Any],
        done: _StepOutput,
        prompt: str,
        cancel_event: asyncio.Event | None,
        tools: tuple[StepTools, list[dict[str, Any]]] | None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        ids = {"run_id": scope["run_id"], "step_id": step.step_id, "step_index": step.index}
        yield agent.event("dawp_step_started", scope=scope, **ids)
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        try:
            for round_ in range(MAX_STEP_TOOL_ROUNDS + 1):
                turn = TurnAccumulator(id_salt=f"dawp:{step.step_id}:{round_}")
                offered = tools[1] if tools is not None and round_ < MAX_STEP_TOOL_ROUNDS else None
                call = agent.model_turn(turn, messages, offered, scope=scope, cancel_event=cancel_event)
                async with aclosing(call) as stream:
                    async for event in stream:
                        yield event
                turn.raise_if_incomplete()
                done.add(turn)
                calls = turn.ready_tool_calls()
                if not calls or tools is None:
                    break
                async with aclosing(_use_tools(tools[0], calls, messages, turn.text, scope)) as stream:
                    async for event in stream:
                        yield event
        except ModelError:
            yield agent.event("dawp_step_completed", scope=scope, **ids, success=False)
            raise
        yield agent.event("dawp_step_completed", scope=scope, **ids, success=True)

    @staticmethod
    def _run_completed(
        agent: StepModel, scope: dict[str, Any], run_id: str, success: bool, summaries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return agent.event(
            "dawp_run_completed", scope=scope, run_id=run_id, success=success, step_summaries=summaries
        )


async def _use_tools(
    tools: StepTools,
    calls: list[ReadyToolCall],
    messages: list[dict[str, Any]],
    text: str,
    scope: Mapping[str, Any],
) -> AsyncGenerator[dict[str, Any], None]:
    """Run one turn's calls; add the turn and its tool messages to the step's messages."""
    outcomes: dict[str, dict[str, Any]] = {}
    async with aclosing(tools.run(calls, scope)) as stream:
        async for event in stream:
            if event["type"] in ("tool_result", "tool_error"):
                outcomes[event["tool_call_id"]] = event  # a failure's tool_error comes last
            yield event
    messages.append(assistant_message(text, calls))
    messages.extend(tool_message(outcomes[call.tool_call_id]) for call in calls)


def _summary(step: WorkflowStep, success: bool, output: str) -> dict[str, Any]:
    return {
        "step_id": step.step_id,
        "step_index": step.index,
        "success": success,
        "output": output[:_SUMMARY_CHARS],
    }
