"""The protocol's small vocabulary, shared by the SDK and the server without either
importing the other: event categories, streaming modes and the order of cursors.

A leaf module: it imports nothing of the project and no third-party package, so the light
SDK (:mod:`agentstream.sdk`) and the streams core (:mod:`agentstream.streams`) both build on
it. The typed event models are :mod:`agentstream.events`; the read-time filters are the
core's (:mod:`agentstream.streams.events`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "ALWAYS_PASS",
    "CATEGORIES",
    "MODE_CATEGORIES",
    "StreamingMode",
    "category_of",
    "cursor_key",
    "is_failure_twin",
    "types_in",
]

CATEGORIES: Mapping[str, str] = {
    "queued": "task", "status": "task", "started": "task", "retry": "task",
    "error": "task", "cancelled": "task", "completed": "task", "gap": "task", "reset": "task",
    "approval_required": "task", "input_required": "task", "input": "task", "input_delivered": "task",
    "iteration_start": "agent", "thought": "agent", "observation": "agent",
    "token": "chunk", "thinking_token": "chunk", "refusal": "chunk", "tool_call_delta": "chunk",
    "tool_calls_ready": "tool", "action": "tool", "tool_call": "tool",
    "tool_result": "tool", "tool_error": "tool",
    "dawp_run_started": "group", "dawp_step_started": "group",
    "dawp_step_completed": "group", "dawp_run_completed": "group",
    "usage": "debug", "result": "output", "custom": "custom",
}  # fmt: skip
"""Category of every known type (PROTOCOL section 3); unknown types have none and pass
only ``all``."""

#: types that pass every mode and every ``types=`` list: a reader must always learn of
#: failure, of the end, and of lost history (``gap``: trimmed; ``reset``: rewound).
ALWAYS_PASS: frozenset[str] = frozenset({"error", "completed", "gap", "reset"})


def category_of(event_type: str) -> str | None:
    """The category of a type, ``None`` for a type this version does not know."""
    return CATEGORIES.get(event_type)


def types_in(categories: Iterable[str]) -> frozenset[str]:
    """Every known type whose category is one of ``categories``."""
    wanted = frozenset(categories)
    return frozenset(kind for kind, category in CATEGORIES.items() if category in wanted)


class StreamingMode(enum.StrEnum):
    """AWorld's streaming modes: which categories a reader receives."""

    CORE = "core"
    CHUNK = "chunk"
    OUTPUT = "output"
    CHUNK_OUTPUT = "chunk_output"
    ALL = "all"

    @property
    def categories(self) -> frozenset[str] | None:
        """The categories passed; ``None`` means everything, unknown types included."""
        return MODE_CATEGORIES[self]


MODE_CATEGORIES: dict[StreamingMode, frozenset[str] | None] = {
    StreamingMode.CORE: frozenset({"agent", "tool", "chunk", "task", "group"}),
    StreamingMode.CHUNK: frozenset({"chunk"}),
    StreamingMode.OUTPUT: frozenset({"output"}),
    StreamingMode.CHUNK_OUTPUT: frozenset({"chunk", "output"}),
    StreamingMode.ALL: None,
}


def is_failure_twin(event: Mapping[str, Any]) -> bool:
    """A failed tool call is recorded twice: ``tool_result`` with ``success: false`` (for
    readers that branch on ``success``, as AIECS's do) and then ``tool_error``. Readers
    that render one line, item or message per outcome skip this twin."""
    return event.get("type") == "tool_result" and event.get("success") is False


def cursor_key(cursor: str) -> tuple[int, int]:
    """A cursor ``<ms>-<n>`` as a tuple that sorts the way Redis orders entries
    (``<ms>`` alone means ``<ms>-0``). Raises ``ValueError`` for anything else."""
    ms, _, n = cursor.partition("-")
    return int(ms), int(n or 0)
