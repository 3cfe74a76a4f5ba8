"""The objects of the Responses dialect: the ``Response`` a task is, and its output items.

Plain dicts shaped as OpenAI's ``openai.types.responses`` models (the test suite validates
them with the SDK's own classes), built from a task's meta and its stored events.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentstream.api.dialects.tool_calls import json_text
from agentstream.streams import TaskMeta
from agentstream.streams.keys import public_task_id

__all__ = ["ResponseState", "epoch_s"]


def epoch_s(timestamp: Any) -> int | None:
    """An ISO 8601 timestamp as Unix seconds, the Responses API's habit."""
    if not isinstance(timestamp, str):
        return None
    try:
        return int(datetime.fromisoformat(timestamp).timestamp())
    except ValueError:
        return None


def _metadata(value: Any) -> dict[str, str]:
    """Responses metadata is ``str -> str``: a task's other values travel as JSON text."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): json_text(v) for k, v in value.items()}


def _usage(prompt: int, completion: int, reasoning: int, cached: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


#: the task's ``error_type`` values that are OpenAI's ``rate_limit_exceeded``
_RATE_LIMITED = ("RateLimitError", "RateLimited")


@dataclass(slots=True)
class ResponseState:
    """What a ``Response`` object shows, as the task's events arrive.

    ``output`` holds every item by its ``output_index``; items a later attempt superseded
    (open when a ``retry`` came) keep their index but are left out of the object.
    """

    id: str
    model: str
    created_at: int
    instructions: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    status: str = "queued"
    output: list[dict[str, Any]] = field(default_factory=list)
    superseded: set[int] = field(default_factory=set)
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    completed_at: int | None = None
    _tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    _counted: bool = False

    @classmethod
    def of(cls, meta: TaskMeta) -> ResponseState:
        """The state of a task that has not started: its request, nothing else."""
        request = meta.request
        instructions = request.get("instructions")
        return cls(
            id=public_task_id(meta.task_id),
            model=meta.agent,
            created_at=epoch_s(meta.created_at) or 0,
            instructions=instructions if isinstance(instructions, str) else None,
            metadata=_metadata(request.get("metadata")),
        )

    def add_usage(self, event: Mapping[str, Any]) -> None:
        """Count a ``usage`` event (one per model call)."""
        values = [
            event.get(k) for k in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")
        ]
        for i, value in enumerate(values):
            if isinstance(value, int):
                self._tokens[i] += value
        self._counted = True

    def fail(self, error: Mapping[str, Any] | None, fallback: str) -> None:
        """Mark the response failed with the task's last ``error`` event."""
        error = error or {}
        kind = str(error.get("error_type") or "")
        self.error = {
            "code": "rate_limit_exceeded" if kind in _RATE_LIMITED else "server_error",
            "message": str(error.get("error") or fallback),
        }

    def snapshot(self) -> dict[str, Any]:
        """The ``Response`` object (a copy: later events do not change it)."""
        output = [item for i, item in enumerate(self.output) if i not in self.superseded]
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "background": True,
            "completed_at": self.completed_at,
            "error": self.error,
            "incomplete_details": self.incomplete_details,
            "instructions": self.instructions,
            "metadata": self.metadata,
            "model": self.model,
            "output": copy.deepcopy(output),
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": _usage(*self._tokens) if self._counted else None,
        }
