"""The SDK's exceptions, and how an HTTP answer becomes one.

Every error the server causes is an :class:`AgentStreamError` (``status``, ``code``,
``message``)::

    AgentStreamError            the server answered 4xx (429 only once retries ran out),
    │                           or sent what the protocol does not allow
    ├── AgentStreamConnectionError   the server could not be reached, or kept failing
    │                                (5xx, dropped streams) more than ``max_reconnects``
    │                                times in a row; ``status`` is the last HTTP status or 0
    └── TaskFailed              ``RemoteAgent.process_message_streaming``: the task ended
                                failed or cancelled (``status`` 0, ``code`` the task's status)

:class:`TaskWaiting` is no error of the server: ``process_message_streaming`` without an
``on_wait`` met a call that waits for a person; the task waits, answer it and follow on.

Misuse (a closed client, a bad argument) raises ``RuntimeError``/``ValueError``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = ["AgentStreamConnectionError", "AgentStreamError", "TaskFailed", "TaskWaiting"]


class AgentStreamError(Exception):
    """The server refused a request: ``status`` (HTTP), ``code`` and ``message`` from its
    JSON error body ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class AgentStreamConnectionError(AgentStreamError):
    """The server stayed unreachable or failing after every allowed retry."""


class TaskFailed(AgentStreamError):
    """The task ended without success: ``code`` is its status (``failed``, ``cancelled``),
    ``message`` why, ``task_id`` which."""

    def __init__(self, task_id: str, status: str, message: str) -> None:
        super().__init__(0, status, message)
        self.task_id = task_id


class TaskWaiting(Exception):
    """A task waits for a person and the iterator has no way to ask one: ``waiting`` is
    the :class:`~agentstream.sdk.messages.HumanMessage` (answer it: ``approve()``,
    ``deny()``, ``answer()``), ``cursor`` where to follow the task on
    (``client.events(task_id, after=cursor)``)."""

    def __init__(self, task_id: str, waiting: Any, cursor: str | None) -> None:
        super().__init__(f"task {task_id!r} waits for a person ({waiting.tool_call_id})")
        self.task_id = task_id
        self.waiting = waiting
        self.cursor = cursor


class Retryable(Exception):
    """One failed try that may be retried: the status (0 for transport) and why."""

    def __init__(self, status: int, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s


def error_from(response: httpx.Response, body: bytes) -> AgentStreamError:
    """The typed error of a failed response, from its JSON error body where it has one."""
    code, message = f"http_{response.status_code}", response.reason_phrase or "error"
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or code)
            message = str(error.get("message") or message)
        elif "detail" in payload:  # FastAPI's own shape, should a route not map its error
            detail = payload["detail"]
            message = detail if isinstance(detail, str) else json.dumps(detail)
    elif body:
        message = body.decode("utf-8", "replace")[:500]
    return AgentStreamError(response.status_code, code, message)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def check(response: httpx.Response, body: bytes) -> None:
    """Raise for an error status: :class:`Retryable` for 429/5xx, else the typed error."""
    status = response.status_code
    if status < 400:
        return
    error = error_from(response, body)
    if status == 429 or status >= 500:
        raise Retryable(status, str(error), _retry_after(response))
    raise error


def give_up(failure: Retryable, failures: int) -> AgentStreamError:
    """The error raised once ``failures`` retries in a row did not help."""
    if failure.status == 429:
        return AgentStreamError(429, "rate_limited", f"still rate limited after {failures} retries")
    return AgentStreamConnectionError(
        failure.status, "unavailable", f"gave up after {failures} retries: {failure.reason}"
    )
