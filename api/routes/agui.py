"""``POST /v1/ag-ui``: an AG-UI ``RunAgentInput`` in, the run's AG-UI event stream out.

This is how AG-UI frontends (``@ag-ui/client``'s ``HttpAgent``, CopilotKit) connect: they
POST the thread's messages and read SSE. The run becomes a task:

- ``threadId`` is the task's ``session_id``, so a second run on the thread continues the
  conversation through the worker's memory;
- ``runId`` is the task id: a repeated ``runId`` (same tenant) starts nothing and answers
  with that run's stream from its start;
- the last user message is the input (its text parts, joined); the earlier messages are
  the client's copy of what the worker remembers, so they are not sent again;
- ``forwardedProps.agent`` names the agent (default ``hybrid``);
- ``context`` (what the frontend shares with the agent) becomes the task's instructions,
  one ``description: value`` line per entry.

The task goes through the same submit path as ``POST /v1/tasks`` (validation, idempotency,
rate limit, enqueue). The answer is the stream ``GET /v1/tasks/{id}/events?format=ag-ui``
serves, which is also where a client reconnects, with ``Last-Event-ID``.
"""

from __future__ import annotations

from typing import Annotated, Any

from ag_ui.core import RunAgentInput, TextPart, UserMessage
from fastapi import APIRouter, Header, Response
from pydantic import ValidationError

from agentstream.api.dialects.agui_frames import ResumePoint, agui_frames, resume_point
from agentstream.api.errors import ApiError
from agentstream.api.observability import SubmitTrace
from agentstream.api.routes.events import sse_response, streaming_slot
from agentstream.api.routes.tasks import submit_task
from agentstream.api.schemas import SSE_CONTENT, SubmitTask, error_responses
from agentstream.api.state import ServicesDep, Tenant, owned_task
from agentstream.streams.keys import TASK_ID_PATTERN

__all__ = ["router", "task_for_run"]

router = APIRouter(prefix="/v1", tags=["ag-ui"])

#: the agent of a run whose ``forwardedProps`` names none
DEFAULT_AGENT = "hybrid"

_SSE = {
    "description": "The run's AG-UI events as SSE frames `id: <cursor>[:<k>]`, `data: <AG-UI event JSON>`, "
    "from `RUN_STARTED` to `RUN_FINISHED` or `RUN_ERROR`; the same stream as "
    "`GET /v1/tasks/{runId}/events?format=ag-ui`, where a client resumes with `Last-Event-ID`.",
    "content": {"text/event-stream": SSE_CONTENT},
}


def _invalid(message: str) -> ApiError:
    return ApiError(422, message)


def last_user_text(run: RunAgentInput) -> str:
    """The text of the run's last user message (text parts joined by newlines)."""
    for message in reversed(run.messages):
        if not isinstance(message, UserMessage):
            continue
        content = message.content
        if isinstance(content, str):
            text = content
        else:
            text = "\n".join(part.text for part in content if isinstance(part, TextPart))
        if text.strip():
            return text
        raise _invalid("the last user message has no text; only text parts are supported")
    raise _invalid("RunAgentInput.messages holds no user message: nothing to run")


def context_text(run: RunAgentInput) -> str | None:
    """The run's ``context`` entries (what the frontend shares, e.g. CopilotKit's readables)
    as the agent's instructions for this task: one ``description: value`` line each."""
    return "\n".join(f"{item.description}: {item.value}" for item in run.context) or None


def task_for_run(run: RunAgentInput) -> SubmitTask:
    """The task a run asks for (422 for what this API cannot honour)."""
    if TASK_ID_PATTERN.fullmatch(run.run_id) is None:
        raise _invalid("runId must match ^[A-Za-z0-9_-]{1,64}$: it becomes the task id")
    if run.resume:
        raise _invalid("RunAgentInput.resume (answers to interrupts) is not supported")
    props: Any = run.forwarded_props
    agent = props.get("agent", DEFAULT_AGENT) if isinstance(props, dict) else DEFAULT_AGENT
    try:
        return SubmitTask(
            input=last_user_text(run),
            agent=agent,
            session_id=run.thread_id,
            task_id=run.run_id,
            instructions=context_text(run),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        field = {"session_id": "threadId", "agent": "forwardedProps.agent", "input": "the user message",
                 "instructions": "context"}  # fmt: skip
        raise _invalid(f"{field.get(where, where)}: {error.get('msg', 'invalid')}") from None


@router.post(
    "/ag-ui",
    response_model=None,
    summary="Run an agent, AG-UI style",
    responses={200: _SSE, **error_responses(400, 401, 409, 413, 422, 429, 503)},
)
async def run_agent(
    run: RunAgentInput,
    owner: Tenant,
    svc: ServicesDep,
    trace: SubmitTrace,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """Start the run (or find it, for a repeated ``runId``) and stream it as AG-UI events.
    Frontend tools and state are not passed to the agent: its tools run on the server."""
    body = task_for_run(run)
    ResumePoint.parse(last_event_id)  # a bad id is a 400 before anything starts
    with streaming_slot(svc, owner) as slot:
        accepted = await submit_task(body, owner, svc, Response(status_code=202), trace)
        meta = await owned_task(accepted.task_id, owner, svc)
        resume = await resume_point(svc.reader, meta.task_id, last_event_id, None, None)
        return sse_response(svc, agui_frames(svc.reader, meta, resume), slot)
