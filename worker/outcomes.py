"""How an attempt ends, as arq sees it, and the events the runner writes on its own."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentstream.streams.errors import TRANSIENT_REDIS_ERRORS

__all__ = [
    "DONE",
    "MAX_RETRY_DEFER_S",
    "TRANSIENT_ERRORS",
    "WAITING",
    "AttemptOutcome",
    "Outcome",
    "error_event",
    "exhausted_event",
    "retry_reason",
]

#: failures of the connection to Redis: the attempt cannot write, a later one may
#: the streams core's transient Redis errors (one tuple for the whole project)
TRANSIENT_ERRORS = TRANSIENT_REDIS_ERRORS
#: the longest delay before a retry, however many attempts failed
MAX_RETRY_DEFER_S = 30.0


class Outcome(enum.Enum):
    """How an attempt ended, as far as arq is concerned."""

    #: the stream ended with ``completed`` (by this attempt or an earlier one)
    DONE = "done"
    #: run a new attempt after ``defer_s``
    RETRY = "retry"
    #: a newer attempt owns the task; this one wrote nothing more
    SUPERSEDED = "superseded"
    #: the task waits for input (status ``waiting``): the job ends, the input requeues it
    WAITING = "waiting"


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """An :class:`Outcome` and, for a retry, how long to wait before it."""

    kind: Outcome
    defer_s: float = 0.0


DONE = AttemptOutcome(Outcome.DONE)
WAITING = AttemptOutcome(Outcome.WAITING)


def retry_reason(events: Sequence[Mapping[str, Any]], attempt: int) -> str:
    """Why attempt ``attempt`` runs, judged from the events stored before it."""
    previous = attempt - 1
    last = events[-1] if events else None
    if last is not None and last.get("type") == "input":
        return f"attempt {previous} waited for input; resumed with the answer"
    if last is not None and last.get("type") == "error":
        kind = last.get("error_type") or "error"
        return f"attempt {previous} failed ({kind}): {last.get('error')}"
    return f"attempt {previous} was interrupted (its worker stopped or lost its lease)"


def error_event(message: str, error_type: str, *, retryable: bool = False) -> dict[str, Any]:
    """An ``error`` event of the runner's own."""
    return {"type": "error", "error": message, "error_type": error_type, "retryable": retryable}


def exhausted_event(attempts: int) -> dict[str, Any]:
    """The ``error`` that ends a task whose retry budget is spent."""
    return error_event(f"retry budget exhausted after {attempts} attempts", "RetriesExhausted")
