"""Deltas into events, tool calls and the assistant message (pure, synchronous).

`ToolCallAccumulator` assembles interleaved tool-call fragments; `TurnAccumulator`
collects one whole model turn and says why it stopped. Both are fed by the async layer
(the agents' model turn) and are unit-tested without a network.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from agentstream.worker.model.deltas import ToolCallFragment

__all__ = ["INCOMPLETE_STOPS", "ReadyToolCall", "ToolCallAccumulator"]

#: stop reasons of a turn whose answer must not be taken as a success
INCOMPLETE_STOPS = frozenset({"length", "content_filter", "refusal"})


@dataclass(frozen=True, slots=True)
class ReadyToolCall:
    """A complete tool call. `error` is set (and `parameters` is None) when it is unusable:
    the agent reports it as a `tool_error` the model sees, instead of crashing."""

    index: int
    tool_call_id: str
    tool_name: str
    parameters: dict[str, Any] | None
    error: str | None = None
    arguments: str = ""

    def as_event_item(self) -> dict[str, Any]:
        """The item of a `tool_calls_ready` event's `tool_calls` list."""
        return {
            "index": self.index,
            "tool_call_id": self.tool_call_id,
            "tool_name": self.tool_name,
            "parameters": dict(self.parameters) if self.parameters is not None else None,
        }


@dataclass(slots=True)
class _PartialCall:
    index: int
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments: str = ""


class ToolCallAccumulator:
    """Assembles interleaved `ToolCallFragment`s into tool calls.

    Fragments belong to a call by id when they carry one, else by the server's index.
    A fragment with a new id at an index whose call already has another id starts a new
    call: servers that put every parallel call at index 0 (or send no index) still give
    each its own id. Each call gets an `index` of its own for events: the server's, or the
    next free one when the server's is taken. The first id and name seen for a call win
    (some servers repeat them on every fragment). `id_salt` goes into the ids generated for
    calls that arrive without one: give each model turn of a task a distinct salt so ids
    never collide across turns, while the same turn replayed later gets the same ids.
    """

    def __init__(self, *, id_salt: str = "") -> None:
        self._id_salt = id_salt
        self._calls: dict[int, _PartialCall] = {}  # by our own index
        self._by_server_index: dict[int, _PartialCall] = {}
        self._by_id: dict[str, _PartialCall] = {}

    def feed(self, fragment: ToolCallFragment) -> dict[str, Any]:
        """Record a fragment; return the fields of its `tool_call_delta` event."""
        call = self._call_for(fragment)
        if call.tool_call_id is None and fragment.tool_call_id:
            call.tool_call_id = fragment.tool_call_id
            self._by_id[fragment.tool_call_id] = call
        if call.tool_name is None and fragment.tool_name:
            call.tool_name = fragment.tool_name
        call.arguments += fragment.arguments_delta
        payload: dict[str, Any] = {"index": call.index}
        if call.tool_call_id is not None:
            payload["tool_call_id"] = call.tool_call_id
        if call.tool_name is not None:
            payload["tool_name"] = call.tool_name
        payload["arguments_delta"] = fragment.arguments_delta
        payload["arguments"] = call.arguments
        return payload

    def _call_for(self, fragment: ToolCallFragment) -> _PartialCall:
        call_id = fragment.tool_call_id
        if call_id and call_id in self._by_id:
            return self._by_id[call_id]
        call = self._by_server_index.get(fragment.index)
        if call is not None and not (call_id and call.tool_call_id not in (None, call_id)):
            return call
        index = fragment.index if fragment.index not in self._calls else max(self._calls) + 1
        call = self._calls[index] = _PartialCall(index)
        self._by_server_index[fragment.index] = call
        return call

    def __len__(self) -> int:
        return len(self._calls)

    def finish(self) -> list[ReadyToolCall]:
        """The calls seen so far, sorted by index, with arguments parsed."""
        return [self._ready(self._calls[index]) for index in sorted(self._calls)]

    def _ready(self, call: _PartialCall) -> ReadyToolCall:
        tool_call_id = call.tool_call_id or self._generated_id(call)
        parameters, error = _parse_arguments(call.arguments)
        if call.tool_name is None:
            parameters, error = None, f"tool call {call.index} has no function name"
        return ReadyToolCall(
            index=call.index,
            tool_call_id=tool_call_id,
            tool_name=call.tool_name or "",
            parameters=parameters,
            error=error,
            arguments=call.arguments,
        )

    def _generated_id(self, call: _PartialCall) -> str:
        material = "\x00".join((self._id_salt, str(call.index), call.tool_name or "", call.arguments))
        return f"call_{call.index}_{hashlib.sha256(material.encode()).hexdigest()[:12]}"


def _parse_arguments(arguments: str) -> tuple[dict[str, Any] | None, str | None]:
    if not arguments.strip():
        return {}, None
    try:
        parsed = json.loads(arguments)
    except ValueError as exc:
        return None, f"invalid JSON arguments: {exc}"
    if not isinstance(parsed, dict):
        return None, f"invalid JSON arguments: expected an object, got {type(parsed).__name__}"
    return parsed, None
