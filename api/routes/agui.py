"""``POST /v1/ag-ui``: an AG-UI ``RunAgentInput`` in, the run's AG-UI event stream out.

This is how AG-UI frontends (``@ag-ui/client``'s ``HttpAgent``, CopilotKit) connect: they
POST the thread's messages and read SSE. The run becomes a task:

- ``threadId`` is the task's ``session_id``, so a second run on the thread continues the
  conversation through the worker's memory;
- ``runId`` is the task id: a repeated ``runId`` (same tenant) starts nothing and answers
  with that run's stream from its start;
- the last user message is the input (its text parts, joined); the earlier messages are
  the client's copy of what the worker remembers, so they are not sent again;
- ``forwardedProps.agent`` names the agent (default ``hybrid``), ``forwardedProps.approve_tools``
  the tools whose calls wait for approval (an interrupt);
- ``context`` (what the frontend shares with the agent) becomes the task's instructions,
  one ``description: value`` line per entry.

The task goes through the same submit path as ``POST /v1/tasks`` (validation, idempotency,
rate limit, enqueue). The answer is the stream ``GET /v1/tasks/{id}/events?format=ag-ui``
serves, which is also where a client reconnects, with ``Last-Event-ID``.

**Interrupts.** A run whose task waits for a person ends with the interrupt outcome (one
interrupt per waiting call, its id ``<task id>:<tool call id>``). The client's next run on
the thread carries ``resume``: no new task, its entries are recorded as the task's input
(:func:`answers_of`; the same as ``POST /v1/tasks/{id}/input``, under idempotency keys
derived from the answers, so a replayed resume records nothing twice) and the response
is the task's stream from the answer on, under the new ``runId``: ``TOOL_CALL_RESULT``
against the original call, the rest of the run, and ``RUN_FINISHED`` (or another
interrupt).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from ag_ui.core import ResumeEntry, RunAgentInput, TextPart, UserMessage
from fastapi import APIRouter, Header, Request, Response
from pydantic import ValidationError

from agentstream.api.dialects.agui import split_interrupt_id
from agentstream.api.dialects.agui_frames import ResumePoint, agui_frames, resume_point, thread_id
from agentstream.api.errors import ApiError
from agentstream.api.observability import SubmitTrace
from agentstream.api.routes.events import sse_response, streaming_slot
from agentstream.api.routes.inputs import Approval, TaskInput, task_input
from agentstream.api.routes.tasks import submit_task
from agentstream.api.schemas import SSE_CONTENT, SubmitTask, error_responses
from agentstream.api.state import Services, ServicesDep, Tenant, owned_task
from agentstream.protocol import cursor_key
from agentstream.streams import TaskMeta
from agentstream.streams.keys import TASK_ID_PATTERN

__all__ = ["router", "task_for_run"]

router = APIRouter(prefix="/v1", tags=["ag-ui"])

_ONE_RUN = "resume must answer interrupts of one run of this API ('<task id>:<tool call id>')"
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
    as the agent's instructions for this task: one ``description: value`` line each. A
    body that leaves ``context`` out has none (the model gives ``None``, not ``[]``)."""
    return "\n".join(f"{item.description}: {item.value}" for item in run.context or ()) or None


def task_for_run(run: RunAgentInput) -> SubmitTask:
    """The task a run asks for (422 for what this API cannot honour)."""
    if TASK_ID_PATTERN.fullmatch(run.run_id) is None:
        raise _invalid("runId must match ^[A-Za-z0-9_-]{1,64}$: it becomes the task id")
    props: Any = run.forwarded_props if isinstance(run.forwarded_props, dict) else {}
    try:
        return SubmitTask(
            input=last_user_text(run),
            agent=props.get("agent", DEFAULT_AGENT),
            session_id=run.thread_id,
            task_id=run.run_id,
            instructions=context_text(run),
            approve_tools=props.get("approve_tools"),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        field = {"session_id": "threadId", "agent": "forwardedProps.agent", "input": "the user message",
                 "instructions": "context", "approve_tools": "forwardedProps.approve_tools"}  # fmt: skip
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
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """Start the run (or find it, for a repeated ``runId``) and stream it as AG-UI events;
    with ``resume``, answer the interrupts of the thread's waiting task and stream its
    continuation. Frontend tools and state are not passed to the agent: its tools run on
    the server."""
    ResumePoint.parse(last_event_id)  # a bad id is a 400 before anything starts
    if run.resume:
        return await _continue(run, owner, svc, request, last_event_id)
    body = task_for_run(run)
    with streaming_slot(svc, owner) as slot:
        accepted = await submit_task(body, owner, svc, Response(status_code=202), trace)
        meta = await owned_task(accepted.task_id, owner, svc)
        resume = await resume_point(svc.reader, meta.task_id, last_event_id, None, None)
        return sse_response(svc, agui_frames(svc.reader, meta, resume, _status(svc, meta)), slot)


def _status(svc: Services, meta: TaskMeta) -> functools.partial[Any]:
    return functools.partial(svc.store.meta, meta.task_id)


@dataclass(slots=True)
class Answers:
    """What a run's ``resume`` entries say, as the task's input: approvals (one input),
    questions answered (one input each), and whether the user abandoned a question."""

    task_id: str
    approvals: list[Approval] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    abandoned: bool = False


def _entry_error(entry: ResumeEntry, what: str) -> ApiError:
    return _invalid(f"resume entry {entry.interrupt_id!r}: {what}")


def _approval(entry: ResumeEntry, call_id: str) -> Approval | None:
    """The decision of an approval entry; ``None`` when the payload is no decision."""
    payload = entry.payload
    if entry.status == "cancelled":
        return Approval(tool_call_id=call_id, approved=False, reason="cancelled by the user")
    if isinstance(payload, bool):
        return Approval(tool_call_id=call_id, approved=payload)
    if isinstance(payload, dict) and isinstance(payload.get("approved"), bool):
        reason = payload.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise _entry_error(entry, "payload.reason must be a string")
        return Approval(tool_call_id=call_id, approved=payload["approved"], reason=reason)
    return None


def _answer(entry: ResumeEntry) -> str | None:
    """The text of a question's entry (``"text"`` or ``{"message": "text"}``)."""
    payload = entry.payload
    if isinstance(payload, dict):
        payload = payload.get("message")
    return payload if isinstance(payload, str) and payload else None


def answers_of(run: RunAgentInput, meta_kinds: dict[str, str]) -> Answers:
    """The task input of a run's ``resume`` (422 for entries that are not answers to this
    API's interrupts). ``meta_kinds`` maps the task's pending calls to ``approval`` or
    ``question``; an entry for a call no longer pending (a replayed resume) is read by its
    payload's shape, and answered again under the same idempotency key."""
    entries = run.resume or []
    ids = [split_interrupt_id(entry.interrupt_id) for entry in entries]
    tasks = {pair[0] for pair in ids if pair is not None}
    if None in ids or len(tasks) != 1:
        raise _invalid(_ONE_RUN)
    answers = Answers(task_id=tasks.pop())
    for entry, pair in zip(entries, ids, strict=True):
        assert pair is not None
        call_id = pair[1]
        kind = meta_kinds.get(call_id)
        approval = _approval(entry, call_id) if kind != "question" else None
        if approval is not None:
            answers.approvals.append(approval)
        elif entry.status == "cancelled":
            answers.abandoned = True
        elif (text := _answer(entry)) is not None and kind != "approval":
            answers.messages.append((call_id, text))
        else:
            expected = "{approved: bool, reason?}" if kind == "approval" else "{message: string}"
            raise _entry_error(entry, f"payload must be {expected}")
    return answers


def _key(task_id: str, what: Any) -> str:
    """An idempotency key derived from the answer itself: a replayed resume (AG-UI's
    rule 5) maps to the input already recorded."""
    digest = hashlib.sha256(json.dumps([task_id, what], sort_keys=True, default=str).encode())
    return f"agui-{digest.hexdigest()[:40]}"


async def _record(answers: Answers, meta: TaskMeta, svc: Services, request: Request) -> str | None:
    """Record the answers as the task's input; the cursor of the last ``input`` event."""
    cursors: list[str] = []
    if answers.approvals:
        body = TaskInput(approvals=answers.approvals)
        decisions = [a.model_dump(exclude_none=True) for a in answers.approvals]
        key = _key(answers.task_id, decisions)
        reply = await task_input(body, meta, svc, request, Response(), idempotency_key=key)
        cursors.append(reply.cursor)
    for call_id, text in answers.messages:
        current = await svc.store.meta(meta.task_id) or meta
        body = TaskInput(message=text, tool_call_id=call_id)
        key = _key(answers.task_id, [call_id, text])
        reply = await task_input(body, current, svc, request, Response(), idempotency_key=key)
        cursors.append(reply.cursor)
    return max(cursors, key=cursor_key) if cursors else None


async def _continue(
    run: RunAgentInput, owner: str, svc: Services, request: Request, last_event_id: str | None
) -> Response:
    """A run that answers interrupts: record the answers, stream the task from them on."""
    first = split_interrupt_id(run.resume[0].interrupt_id) if run.resume else None
    if first is None:
        raise _invalid(_ONE_RUN)
    meta = await owned_task(first[0], owner, svc)
    if thread_id(meta) != run.thread_id:
        raise _invalid(f"threadId {run.thread_id!r} is not the thread of the interrupted run")
    kinds = {str(item.get("tool_call_id")): str(item.get("kind")) for item in meta.pending_input}
    answers = answers_of(run, kinds)
    with streaming_slot(svc, owner) as slot:
        if answers.abandoned:
            # The run reports the cancellation: from the last event before it.
            cursor = await svc.reader.last_cursor(meta.task_id)
            await svc.store.request_cancel(meta.task_id, "the user abandoned a question")
        else:
            cursor = await _record(answers, meta, svc, request)
        start = ResumePoint(cursor or "0-0")
        if last_event_id:
            held = ResumePoint.parse(last_event_id)
            if cursor_key(held.cursor) >= cursor_key(start.cursor):
                start = held
        frames = agui_frames(svc.reader, meta, start, _status(svc, meta), run_id=run.run_id)
        return sse_response(svc, frames, slot)
