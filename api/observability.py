"""What the API reports of a task's requests: the submit's trace span, whose context the
task request carries to the worker (:mod:`agentstream.telemetry.tracing`).

The submit span continues the caller's trace when the request carries a W3C
``traceparent`` header, and starts a new trace otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from agentstream.telemetry.tracing import extract_context, inject_context, span

__all__ = ["SubmitTrace", "submit_trace"]


async def submit_trace(request: Request) -> AsyncIterator[dict[str, str]]:
    """Run the submit route inside span ``agentstream.submit`` and hand it the trace
    context to store with the task (empty without OpenTelemetry)."""
    parent = extract_context({k: v for k, v in request.headers.items() if k in ("traceparent", "tracestate")})
    with span("agentstream.submit", {"http.request.method": request.method}, parent=parent):
        yield inject_context()


#: the submit's trace context, as the route receives it
SubmitTrace = Annotated[dict[str, str], Depends(submit_trace)]
