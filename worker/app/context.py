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
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentstream.worker.errors import ToolError

__all__ = [
    "CUSTOM_EVENT",
    "MAX_CUSTOM_EVENTS",
    "MAX_CUSTOM_EVENT_BYTES",
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

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")

#: where a context's events go: the agent's tool batch, or nowhere (a direct call)
Sink = Callable[[dict[str, Any]], None]


def _drop(event: dict[str, Any]) -> None:
    """The sink of a context outside an agent run: the event was checked, then dropped."""


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

    async def emit(self, type: str, data: Any = None) -> None:
        """Stream a ``custom`` event (``name=type``, ``data``) into the task's events.

        ``type`` is 1-64 of ``[A-Za-z0-9_.:-]`` starting with a letter; ``data`` any JSON
        value up to 64 KiB. Raises ``ToolError`` for bad input, for more than 1000 events
        in one call, and once the call has returned (its events are then in the stream).
        """
        if self._closed:
            raise ToolError(
                f"tool {self.tool_name!r} emitted after its call returned; emit before returning",
                tool_name=self.tool_name,
            )
        if not isinstance(type, str) or _NAME.fullmatch(type) is None:
            raise ToolError(
                f"custom event type {type!r} must match ^[A-Za-z][A-Za-z0-9_.:-]{{0,63}}$",
                tool_name=self.tool_name,
            )
        try:
            size = len(orjson.dumps(data))
        except TypeError as exc:
            raise ToolError(f"custom event data is not JSON: {exc}", tool_name=self.tool_name) from None
        if size > MAX_CUSTOM_EVENT_BYTES:
            raise ToolError(
                f"custom event data is {size} bytes of JSON; the limit is {MAX_CUSTOM_EVENT_BYTES}",
                tool_name=self.tool_name,
            )
        if self._emitted >= MAX_CUSTOM_EVENTS:
            raise ToolError(
                f"tool {self.tool_name!r} emitted more than {MAX_CUSTOM_EVENTS} events in one call",
                tool_name=self.tool_name,
            )
        self._emitted += 1
        self._sink(self._event(type, data))

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

    def context(
        self, tool_name: str, tool_call_id: str, sink: Sink, loop_scope: Mapping[str, Any] | None = None
    ) -> ToolContext:
        """The context of one call, whose events go to ``sink``."""
        return ToolContext(
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
