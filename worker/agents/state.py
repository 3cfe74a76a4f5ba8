"""The per-run bookkeeping of an agent: pure and synchronous (no I/O), unit-testable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentstream.worker.agents.resume import ResumeState, assistant_message, tool_message, zero_usage
from agentstream.worker.app.inbox import Inbox
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.llm import ReadyToolCall, TurnAccumulator

__all__ = ["LoopState", "RunContext", "clean_history", "task_text"]


@dataclass(slots=True)
class LoopState:
    """The conversation and counters of one run (pure: no I/O, unit-testable).

    ``conversation`` holds what the run added after the initial prompt: assistant turns
    and tool messages, in the order the model must see them.
    """

    conversation: list[dict[str, Any]] = field(default_factory=list)
    iteration: int = 0
    completed_turns: int = 0
    tool_calls_count: int = 0
    usage: dict[str, int] = field(default_factory=zero_usage)
    last_text: str = ""
    stop_reason: str | None = None
    #: messages sent while the task ran were given to the model since its last turn:
    #: it makes one more turn to answer them, even past its iteration budget
    unanswered: bool = False

    @classmethod
    def from_resume(cls, resume: ResumeState) -> LoopState:
        """Continue from what earlier attempts recorded."""
        return cls(
            conversation=[dict(message) for message in resume.messages],
            iteration=resume.iteration,
            completed_turns=resume.completed_turns,
            tool_calls_count=resume.tool_calls_count,
            usage=dict(resume.usage),
            unanswered=resume.unanswered,
        )

    def add_usage(self, usage: Mapping[str, int]) -> None:
        for name, value in usage.items():
            self.usage[name] = self.usage.get(name, 0) + int(value)

    def record_turn(self, turn: TurnAccumulator) -> list[ReadyToolCall]:
        """Add a finished model turn to the conversation; return its tool calls.

        Raises ``ModelStopped`` (after counting its usage) for a turn that was cut off,
        filtered or refused."""
        if turn.usage is not None:
            self.add_usage(turn.usage_fields())
        turn.raise_if_incomplete()
        calls = turn.ready_tool_calls()
        self.completed_turns += 1
        self.unanswered = False
        self.last_text = turn.text
        self.stop_reason = turn.stop_reason
        if calls:
            self.conversation.append(assistant_message(turn.text, calls))
        else:
            self.conversation.append({"role": "assistant", "content": turn.text})
        return calls

    def record_tool_batch(
        self, calls: Sequence[ReadyToolCall], results: Mapping[str, Mapping[str, Any]], *, new: int
    ) -> None:
        """Append one tool message per call, in call order; ``new`` calls were run now."""
        for call in calls:
            self.conversation.append(tool_message(results[call.tool_call_id]))
        self.tool_calls_count += new


@dataclass(slots=True)
class RunContext:
    """One run of an agent: its input, the caller's options and its state."""

    task_text: str
    sender_id: str | None = None
    #: who runs this (for tools' contexts): the worker's task, attempt and tenant
    task_id: str | None = None
    attempt: int = 1
    tenant: str | None = None
    cancel_event: asyncio.Event | None = None
    resume: ResumeState | None = None
    raise_retryable: bool = False
    #: tools whose calls wait for a person's approval in this run (the request's)
    approve_tools: frozenset[str] = frozenset()
    #: messages sent to the task while it runs (a worker's; none in-process)
    inbox: Inbox = field(default_factory=Inbox)
    trigger: str = "task"
    started_at: float = field(default_factory=time.monotonic)
    prompt: list[dict[str, Any]] = field(default_factory=list)
    state: LoopState = field(default_factory=LoopState)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """What the model sees next: the initial prompt, then the run's conversation."""
        return [*self.prompt, *self.state.conversation]

    @property
    def elapsed(self) -> float:
        return round(time.monotonic() - self.started_at, 6)

    def check_cancel(self) -> None:
        """Stop at a safe point once the caller asked for it."""
        if self.cancel_event is not None and self.cancel_event.is_set():
            raise asyncio.CancelledError("the task was cancelled")


def task_text(task: Mapping[str, Any]) -> str:
    """The text of a task: ``description``, else ``input``."""
    text = task.get("description") if task.get("description") is not None else task.get("input")
    if not isinstance(text, str) or not text:
        raise ConfigurationError("a task needs a non-empty 'description' (or 'input') string")
    return text


def clean_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Trimming may cut a conversation between a tool call and its result; the model
    # rejects an orphan tool message, so history starts at its first user message.
    for position, message in enumerate(messages):
        if message.get("role") == "user":
            return messages[position:]
    return []
