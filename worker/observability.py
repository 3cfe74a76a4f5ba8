"""What the worker reports while it runs a task: one call per place, each feeding the
log scope, the trace and the metrics (:mod:`agentstream.worker.metrics`) together.

- :func:`attempt_span`: around an attempt (current span ``agentstream.attempt``, child of
  the submit request's trace carried in the task request; the running-attempts gauge);
- :func:`observed_model_stream`: wraps a model call's delta stream (span
  ``agentstream.model_call``, its duration and error kind);
- :func:`observed_tool`: around one tool call (span ``agentstream.tool``, its duration);
- :func:`observe_event`: every event an attempt appends (tokens of ``usage``, the task
  duration of ``completed``).

Stream flushes get their span (``agentstream.flush``) in the streams writer itself.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from agentstream.streams.keys import split_task_id
from agentstream.telemetry.logs import bind_task
from agentstream.telemetry.tracing import extract_context, fail_span, span, start_span
from agentstream.worker.errors import ModelError
from agentstream.worker.metrics import (
    MODEL_CALLS,
    MODEL_ERRORS,
    RETRIES,
    TASK_DURATION,
    TASKS_RUNNING,
    TOKENS,
    TOOL_DURATION,
)

__all__ = ["attempt_span", "bind_key_id", "observe_event", "observed_model_stream", "observed_tool"]

T = TypeVar("T")


class _Outcome(Protocol):
    success: bool


OutcomeT = TypeVar("OutcomeT", bound=_Outcome)


def bind_key_id(key_id: str, *, attempt: int | None = None) -> None:
    """Bind the task of streams key id ``key_id`` (``<tenant>/<task id>``) to this
    context's log lines as operators know it: the public task id and the tenant."""
    tenant, task_id = split_task_id(key_id)
    bind_task(task_id, attempt=attempt, tenant=tenant)


@contextlib.contextmanager
def attempt_span(trace_context: Mapping[str, str] | None, key_id: str, attempt: int) -> Iterator[None]:
    """The attempt of the task of streams key id ``key_id`` as the current span (its
    tasks, model calls, tools and flushes are its children) under the trace of the task's
    submit; counted as running meanwhile."""
    if attempt > 1:
        RETRIES.inc()
    tenant, task_id = split_task_id(key_id)
    attributes = {
        "agentstream.task_id": task_id,
        "agentstream.attempt": attempt,
        "agentstream.tenant": tenant,
    }
    TASKS_RUNNING.inc()
    try:
        with span("agentstream.attempt", attributes, parent=extract_context(trace_context)):
            bind_key_id(key_id, attempt=attempt)
            yield
    finally:
        TASKS_RUNNING.dec()


async def observed_model_stream(deltas: AsyncIterator[T], model: str | None) -> AsyncIterator[T]:
    """``deltas`` (one model call's stream), timed and traced; closed however this ends.

    The span is not made current: this generator yields to its consumer, whose own work
    between two deltas is no part of the model call."""
    handle = start_span("agentstream.model_call", {"gen_ai.request.model": model})
    started = time.perf_counter()
    outcome = "ok"
    try:
        async with contextlib.aclosing(deltas):  # type: ignore[type-var]
            async for delta in deltas:
                yield delta
    except ModelError as exc:
        outcome = exc.error_type
        MODEL_ERRORS.labels(exc.error_type).inc()
        fail_span(handle, exc)
        raise
    except BaseException:
        outcome = "cancelled"  # closed early, or the task was cancelled
        raise
    finally:
        MODEL_CALLS.labels(outcome).observe(time.perf_counter() - started)
        handle.set_attribute("agentstream.outcome", outcome)
        handle.end()


async def observed_tool(tool: str, call_id: str | None, call: Awaitable[OutcomeT]) -> OutcomeT:
    """Await one tool ``call`` (whose result has ``success``) as span ``agentstream.tool``,
    timed by tool and outcome."""
    started = time.perf_counter()
    outcome = "error"
    try:
        with span("agentstream.tool", {"agentstream.tool": tool, "agentstream.tool_call_id": call_id}) as s:
            result = await call
            outcome = "ok" if result.success else "error"
            s.set_attribute("agentstream.outcome", outcome)
            return result
    finally:
        TOOL_DURATION.labels(tool, outcome).observe(time.perf_counter() - started)


def observe_event(event: Mapping[str, Any]) -> None:
    """Count what an appended event reports: the tokens of ``usage``, the duration of
    ``completed``."""
    kind = event.get("type")
    if kind == "usage":
        for field, label in (("prompt_tokens", "prompt"), ("completion_tokens", "completion")):
            value = event.get(field)
            if isinstance(value, int) and value > 0:
                TOKENS.labels(label).inc(value)
    elif kind == "completed":
        elapsed = event.get("execution_time")
        if isinstance(elapsed, int | float) and elapsed >= 0:
            TASK_DURATION.labels(str(event.get("status") or "unknown")).observe(elapsed)
