"""The workflow (dawp) plugin: a chain of prompts an agent runs before its main loop.

A workflow is a markdown document: ``# Title``, then its steps, either as ``## Step name``
sections (the body is the prompt) or as a numbered list (``1. prompt``). Each step is one
model call whose prompt holds the step text, the previous step's output and the task; the
last step's output is handed to the main loop as context.

Every event of a run carries ``loop_scope = {"kind": "dawp", run_id, workflow_id, step_id,
step_index}`` so readers can tell it from the main loop (``scope=main|dawp``).
:class:`DawpStreamConsumer` is the reading side: feed it events, read steps and main text.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agentstream.streams.events import effective_loop_scope
from agentstream.worker.errors import ConfigurationError, ModelError
from agentstream.worker.llm import TurnAccumulator

__all__ = [
    "DawpStep",
    "DawpStreamConsumer",
    "Workflow",
    "WorkflowOutcome",
    "WorkflowPlugin",
    "WorkflowStep",
    "parse_workflow",
]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_NUMBERED = re.compile(r"^\s*(\d+)[.)]\s+(.*)$")
_SUMMARY_CHARS = 500


@dataclass(frozen=True, slots=True)
class WorkflowStep:
    """One step: its id (a slug of its name), position and prompt."""

    step_id: str
    index: int
    name: str
    prompt: str


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
        steps.append(WorkflowStep(step_id=step_id, index=index, name=name, prompt=prompt))
    default_id = _slug(title) or hashlib.sha256(markdown.encode()).hexdigest()[:12]
    return Workflow(workflow_id=workflow_id or default_id, title=title, steps=tuple(steps))


@dataclass(slots=True)
class WorkflowOutcome:
    """Filled by :meth:`WorkflowPlugin.run`: the run's output, success and usage."""

    run_id: str = ""
    success: bool = False
    output: str = ""
    usage: dict[str, int] = field(default_factory=dict)


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

    ``stream_boundary_events`` adds ``dawp_run_started``/``dawp_run_completed`` around the
    run; ``dawp_step_started``/``dawp_step_completed`` are always streamed.
    """

    def __init__(
        self,
        workflow: Workflow,
        stream_boundary_events: bool = True,
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
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Stream one run of the workflow for ``task``; the result lands in ``outcome``.

        A model failure in a step ends the run (``success`` false) and is re-raised, so
        the agent reports it as it reports a failure of its main loop.
        """
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
                turn = TurnAccumulator(id_salt=f"dawp:{step.step_id}")
                async with aclosing(
                    self._step(agent, step, scope, turn, _step_prompt(step, previous, task), cancel_event)
                ) as stream:
                    async for event in stream:
                        yield event
                previous = turn.text
                for name, value in turn.usage_fields().items():
                    outcome.usage[name] = outcome.usage.get(name, 0) + value
                summaries.append(_summary(step, True, turn.text))
        except ModelError:
            if self.stream_boundary_events:
                yield self._run_completed(agent, run_scope, outcome.run_id, False, summaries)
            raise
        outcome.success, outcome.output = True, previous or ""
        if self.stream_boundary_events:
            yield self._run_completed(agent, run_scope, outcome.run_id, True, summaries)

    async def _step(
        self,
        agent: StepModel,
        step: WorkflowStep,
        scope: dict[str, Any],
        turn: TurnAccumulator,
        prompt: str,
        cancel_event: asyncio.Event | None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        ids = {"run_id": scope["run_id"], "step_id": step.step_id, "step_index": step.index}
        yield agent.event("dawp_step_started", scope=scope, **ids)
        messages = [{"role": "user", "content": prompt}]
        try:
            call = agent.model_turn(turn, messages, None, scope=scope, cancel_event=cancel_event)
            async with aclosing(call) as stream:
                async for event in stream:
                    yield event
            turn.raise_if_incomplete()
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


def _summary(step: WorkflowStep, success: bool, output: str) -> dict[str, Any]:
    return {
        "step_id": step.step_id,
        "step_index": step.index,
        "success": success,
        "output": output[:_SUMMARY_CHARS],
    }


# --------------------------------------------------------------------------- reading side


@dataclass(slots=True)
class DawpStep:
    """A workflow step as seen in a stream: its text so far and whether it succeeded."""

    run_id: str
    step_id: str
    index: int
    text: str = ""
    success: bool | None = None


class DawpStreamConsumer:
    """Groups a task's events per workflow run and step, apart from the main loop's text.

    Feed it events in stream order (:meth:`feed`); a ``retry`` resets the main text, as
    the protocol asks of a consumer that renders output.
    """

    def __init__(self) -> None:
        self._steps: dict[tuple[str, str], DawpStep] = {}
        self._main: list[str] = []
        self.runs: dict[str, dict[str, Any]] = {}

    def feed(self, event: Mapping[str, Any]) -> None:
        """Take one event into account."""
        scope = effective_loop_scope(event)
        kind = event.get("type")
        if scope.get("kind") != "dawp":
            if kind == "token":
                self._main.append(str(event.get("content", "")))
            elif kind == "retry":
                self._main.clear()
            return
        run_id = str(scope.get("run_id") or event.get("run_id") or "")
        if kind in ("dawp_run_started", "dawp_run_completed"):
            self.runs.setdefault(run_id, {}).update({k: v for k, v in event.items() if k != "loop_scope"})
            return
        if scope.get("step_id") is None:
            return
        step = self._step(run_id, str(scope["step_id"]), int(scope.get("step_index") or 0))
        if kind == "token":
            step.text += str(event.get("content", ""))
        elif kind == "dawp_step_completed":
            step.success = bool(event.get("success"))

    def _step(self, run_id: str, step_id: str, index: int) -> DawpStep:
        key = (run_id, step_id)
        if key not in self._steps:
            self._steps[key] = DawpStep(run_id=run_id, step_id=step_id, index=index)
        return self._steps[key]

    @property
    def steps(self) -> list[DawpStep]:
        """Every step seen, in the order it first appeared."""
        return list(self._steps.values())

    @property
    def main_text(self) -> str:
        """The main loop's tokens since the last ``retry``."""
        return "".join(self._main)
