"""What a tool may know and do about the run that called it: :class:`ToolContext`.

A tool function asks for one by a parameter named ``ctx`` or annotated ``ToolContext``;
that parameter is left out of the tool's JSON schema and filled in at call time::

    @app.tool
    async def lookup_order(order_id: str, ctx: ToolContext) -> dict:
        await ctx.emit("progress", {"step": "querying"})
        ...

``ctx.emit`` does not write anywhere itself: it hands a ``custom`` event to the agent
running the call, which yields it like any other event, so in a worker it is appended by
the attempt's fenced writer, in order, before the call's ``tool_result``.

``await ctx.ask(prompt)`` asks a person and returns the answer. The first time, it stops
the tool (it raises :class:`AskInterrupt`, which the tool must let through): the task
records ``input_required`` (``prompt``, the call's ``tool_call_id``), waits (status
``waiting``, no worker held) and, once answered (``POST /v1/tasks/{id}/input`` with that
``tool_call_id``), runs the tool again *from its start*. There ``ask`` returns the
recorded answers in order, by position: the first ``ask`` of the run gets the first
answer, and so on; the first unanswered one waits again. So what a tool does before an
``ask`` runs once more per answer: it must be idempotent (or be done after the asks).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentstream.worker.errors import ToolError

__all__ = [
    "CUSTOM_EVENT",
    "MAX_ASKS",
    "MAX_CUSTOM_EVENTS",
    "MAX_CUSTOM_EVENT_BYTES",
    "MAX_PROMPT_CHARS",
    "Ask",
    "AskInterrupt",
    "CallerInfo",
    "ToolContext",
    "context_parameter",
]

#: the type of the events tools emit; the tool's own name for it is the ``name`` field
CUSTOM_EVENT = "custom"
#: events one tool call may emit: a chatty tool must not flood the task's stream
MAX_CUSTOM_EVENTS = 1_000
#: the largest ``data`` of one custom event, as JSON
MAX_CUSTOM_EVENT_BYTES = 64 * 1024

#: questions one tool call may ask a person
MAX_ASKS = 50
#: the longest question
MAX_PROMPT_CHARS = 4_000

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")

#: where a context's events go: the agent's tool batch, or nowhere (a direct call)
Sink = Callable[[dict[str, Any]], None]


def _drop(event: dict[str, Any]) -> None:
    """The sink of a context outside an agent run: the event was checked, then dropped."""


@dataclass(frozen=True, slots=True)
class Ask:
    """A question a tool call asked and that has no answer yet; ``announce`` is False when
    an earlier attempt already recorded its ``input_required``."""

    prompt: str
    announce: bool


class AskInterrupt(BaseException):
    """Stops a tool at an unanswered :meth:`ToolContext.ask`; the call waits for input.

    A ``BaseException``, so that a tool's ``except Exception`` does not swallow it; a tool
    that swallows it anyway still waits (its context knows it asked)."""


@dataclass(slots=True)
class ToolContext:
    """The run a tool call belongs to, and a way to stream its own events.

    ``task_id`` and ``tenant`` are ``None`` when the agent runs in-process without a
    worker; ``attempt`` is 1 there. ``loop_scope`` is set for calls made by a workflow
    step, and copied onto the emitted events.
    """

    tool_name: str
    tool_call_id: str
    task_id: str | None = None
    attempt: int = 1
    tenant: str | None = None
    agent_id: str | None = None
    loop_scope: Mapping[str, Any] | None = None
    _sink: Sink = field(default=_drop, repr=False)
    _emitted: int = field(default=0, repr=False)
    _closed: bool = field(default=False, repr=False)
    #: answers recorded for this call's asks, in order, and how many it announced
    _replies: tuple[str, ...] = field(default=(), repr=False)
    _announced: int = field(default=0, repr=False)
    _asks: int = field(default=0, repr=False)
    #: the unanswered question that stopped the call, if any
    asked: Ask | None = field(default=None, repr=False)

    async def ask(self, prompt: str) -> str:
        """Ask a person ``prompt`` and return the answer (see the module docstring: the
        first time, the tool stops and runs again from its start once answered).

        Raises ``ToolError`` for an empty or too long prompt, for more than 50 asks in one
        call, in a workflow step (nothing can wait there) and once the call returned.
        """
        if self._closed:
            raise self._refused(f"tool {self.tool_name!r} asked after its call returned")
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
            raise self._refused(f"ask needs a non-empty prompt of at most {MAX_PROMPT_CHARS} characters")
        if self.loop_scope is not None:
            raise self._refused(f"tool {self.tool_name!r} asks the user: not possible in a workflow step")
        if self._asks >= MAX_ASKS:
            raise self._refused(f"tool {self.tool_name!r} asked more than {MAX_ASKS} questions in one call")
        position = self._asks
        self._asks += 1
        if position < len(self._replies):
            return self._replies[position]
        self.asked = Ask(prompt, announce=position >= self._announced)
        raise AskInterrupt(prompt)

    async def emit(self, type: str, data: Any = None) -> None:
        """Stream a ``custom`` event (``name=type``, ``data``) into the task's events.

        ``type`` is 1-64 of ``[A-Za-z0-9_.:-]`` starting with a letter; ``data`` any JSON
        value up to 64 KiB. Raises ``ToolError`` for bad input, for more than 1000 events
        in one call, and once the call has returned (its events are then in the stream).
        """
        if self._closed:
            raise self._refused(
                f"tool {self.tool_name!r} emitted after its call returned; emit before returning"
            )
        if not isinstance(type, str) or _NAME.fullmatch(type) is None:
            raise self._refused(f"custom event type {type!r} must match ^[A-Za-z][A-Za-z0-9_.:-]{{0,63}}$")
        try:
            size = len(orjson.dumps(data))
        except TypeError as exc:
            raise self._refused(f"custom event data is not JSON: {exc}") from None
        if size > MAX_CUSTOM_EVENT_BYTES:
            raise self._refused(
                f"custom event data is {size} bytes of JSON; the limit is {MAX_CUSTOM_EVENT_BYTES}"
            )
        if self._emitted >= MAX_CUSTOM_EVENTS:
            raise self._refused(
                f"tool {self.tool_name!r} emitted more than {MAX_CUSTOM_EVENTS} events in one call"
            )
        self._emitted += 1
        self._sink(self._event(type, data))

    def _refused(self, message: str) -> ToolError:
        """The error for a misuse of this context by its tool."""
        return ToolError(message, tool_name=self.tool_name)

    def _event(self, name: str, data: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": CUSTOM_EVENT,
            "name": name,
            "data": data,
            "tool_name": self.tool_name,
            "tool_call_id": self.tool_call_id,
        }
        if self.loop_scope is not None:  # the agent's event() sets the same, for its own events
            event["loop_scope"] = dict(self.loop_scope)
        return event

    def close(self) -> None:
        """End the call: later ``emit`` calls raise."""
        self._closed = True


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """The run tool calls belong to: what every :class:`ToolContext` of it tells."""

    task_id: str | None = None
    attempt: int = 1
    tenant: str | None = None
    agent_id: str | None = None
    #: recorded answers to ``ctx.ask`` by tool call id, in order
    replies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: how many questions each call announced (``input_required``)
    questions: Mapping[str, int] = field(default_factory=dict)

    def context(
        self, tool_name: str, tool_call_id: str, sink: Sink, loop_scope: Mapping[str, Any] | None = None
    ) -> ToolContext:
        """The context of one call, whose events go to ``sink``."""
        return ToolContext(
            _replies=tuple(self.replies.get(tool_call_id, ())),
            _announced=self.questions.get(tool_call_id, 0),
            tool_name=tool_name,
            tool_call_id=tool_call_id,
            task_id=self.task_id,
            attempt=self.attempt,
            tenant=self.tenant,
            agent_id=self.agent_id,
            loop_scope=loop_scope,
            _sink=sink,
        )


def context_parameter(fn: Callable[..., Any], hints: Mapping[str, Any]) -> str | None:
    """The name of ``fn``'s context parameter (named ``ctx`` or annotated
    :class:`ToolContext`), or ``None`` when it takes none."""
    for param in inspect.signature(fn).parameters.values():
        hint = hints.get(param.name)
        if hint is ToolContext or (param.name == "ctx" and hint in (None, ToolContext, Any)):
            return param.name
    return None
