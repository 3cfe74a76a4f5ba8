"""What the API reports of a task's requests: the submit's trace span, whose context the
task request carries to the worker (:mod:`agentstream.telemetry.tracing`), and the task
in the scope of the submit's log lines.

The submit span is a child of the request's span when the server made one (FastAPI
does, with OpenTelemetry installed), else of the caller's W3C ``traceparent`` header,
else the root of a new trace. It is never made current: FastAPI solves dependencies in a
context of their own, so a span attached there would not be the endpoint's anyway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request

from agentstream.telemetry.logs import bind_task
from agentstream.telemetry.tracing import current_ids, extract_context, fail_span, inject_context, start_span

__all__ = ["SubmitScope", "SubmitTrace", "submit_trace"]

_W3C = ("traceparent", "tracestate")


class SubmitScope:
    """The submit request's span, as the route sees it."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        #: the trace context to store with the task (empty without OpenTelemetry)
        self.carrier = inject_context(handle)

    def bind(self, task_id: str, tenant: str) -> None:
        """The request is about ``task_id`` of ``tenant``: say so in its span and log lines."""
        self._handle.set_attribute("agentstream.task_id", task_id)
        self._handle.set_attribute("agentstream.tenant", tenant)
        bind_task(task_id, tenant=tenant)


async def submit_trace(request: Request) -> AsyncIterator[SubmitScope]:
    """Span ``agentstream.submit`` around the submit route."""
    parent = None
    if current_ids() is None:
        parent = extract_context({k: v for k, v in request.headers.items() if k in _W3C})
    handle = start_span("agentstream.submit", {"http.request.method": request.method}, parent=parent)
    try:
        yield SubmitScope(handle)
    except BaseException as exc:
        fail_span(handle, exc)
        raise
    finally:
        handle.end()


#: the submit's span and trace context, as the route receives it
SubmitTrace = Annotated[SubmitScope, Depends(submit_trace)]
