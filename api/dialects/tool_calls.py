"""What every dialect reads from a model turn's tool calls: the calls as their deltas
stream in (``tool_call_delta``, by index), and the entries of ``tool_calls_ready``.

A streamed call may learn its id late (servers that send none get one when the turn ends)
and its arguments may start before its id: a dialect announces it once ``ready``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["ReadyCall", "StreamedCall", "TurnCalls", "json_text", "ready_calls"]


def json_text(value: Any) -> str:
    """Tool arguments and results as text: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


@dataclass(slots=True)
class StreamedCall:
    """One call of the current turn, as its deltas arrive."""

    call_id: str | None = None
    name: str | None = None
    #: every argument delta so far
    arguments: str = ""
    #: the dialect has announced the call
    started: bool = False

    @property
    def ready(self) -> bool:
        """Id and name are known: the call can be announced."""
        return self.call_id is not None and self.name is not None


class TurnCalls:
    """The streamed calls of the current model turn, by their index in the turn."""

    def __init__(self) -> None:
        self._calls: dict[int, StreamedCall] = {}

    def absorb(self, event: Mapping[str, Any]) -> tuple[StreamedCall, str]:
        """Take a ``tool_call_delta``: the call it belongs to, and its arguments delta."""
        index = event.get("index")
        call = self._calls.setdefault(index if isinstance(index, int) else 0, StreamedCall())
        call.call_id = call.call_id or event.get("tool_call_id") or None
        call.name = call.name or event.get("tool_name") or None
        delta = str(event.get("arguments_delta") or "")
        call.arguments += delta
        return call, delta

    def pop(self, index: int | None) -> StreamedCall | None:
        return self._calls.pop(index, None) if index is not None else None

    def clear(self) -> list[StreamedCall]:
        """Forget the turn; the calls it still held."""
        calls, self._calls = list(self._calls.values()), {}
        return calls


@dataclass(frozen=True, slots=True)
class ReadyCall:
    """One entry of ``tool_calls_ready``."""

    index: int | None
    call_id: str
    name: str
    parameters: Any


def ready_calls(event: Mapping[str, Any]) -> list[ReadyCall]:
    """The well-formed entries of a ``tool_calls_ready`` event, in order."""
    items = event.get("tool_calls")
    calls = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping):
            index = item.get("index")
            calls.append(
                ReadyCall(
                    index=index if isinstance(index, int) else None,
                    call_id=str(item.get("tool_call_id") or ""),
                    name=str(item.get("tool_name") or ""),
                    parameters=item.get("parameters"),
                )
            )
    return calls
