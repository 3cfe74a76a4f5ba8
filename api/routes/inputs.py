"""Input for a task: ``POST /v1/tasks/{task_id}/input``.

A task waits when a tool call needs approval (``approval_required``) or a question was
asked (``input_required``: the agent's ``ask_user``, or a tool's ``ctx.ask``); the answer
is recorded as an ``input`` event atomically
(:meth:`~agentstream.streams.TaskStore.record_input`) and, once nothing else is pending,
the task is queued again: a worker resumes it from its recorded events.

A ``message`` (without ``tool_call_id``) to a task that is queued or running is recorded
the same way (:meth:`~agentstream.streams.TaskStore.record_message`, 202): its agent
takes it before its next model turn and answers it. Once the agent gave its final answer
a message is refused (409, the task is finishing), as it is once the task ended.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field, model_validator

from agentstream.api.errors import ApiError, bad_request
from agentstream.api.schemas import error_responses
from agentstream.api.state import Owned, Services, ServicesDep, require_key
from agentstream.streams import InputRejected, TaskMeta
from agentstream.streams.keys import TASK_ID_PATTERN, public_task_id
from agentstream.worker.payload import MAX_INPUT_CHARS

__all__ = ["Approval", "InputAccepted", "TaskInput", "router"]

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


class Approval(BaseModel):
    """A person's decision on one tool call that waits for approval."""

    tool_call_id: str = Field(min_length=1, max_length=200)
    approved: bool
    reason: str | None = Field(default=None, max_length=2000, description="told to the model when denied")


class TaskInput(BaseModel):
    """Decisions on pending approvals, or the answer to the agent's question."""

    model_config = {"extra": "forbid"}

    approvals: list[Approval] | None = Field(default=None, min_length=1, max_length=64)
    message: str | None = Field(default=None, min_length=1, max_length=MAX_INPUT_CHARS)
    tool_call_id: str | None = Field(
        default=None, max_length=200, description="the question a `message` answers (default: the oldest)"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> TaskInput:
        if (self.approvals is None) == (self.message is None):
            raise ValueError("give either approvals or message")
        if self.approvals is not None and self.tool_call_id is not None:
            raise ValueError("tool_call_id goes with message; approvals name their own calls")
        return self


class InputAccepted(BaseModel):
    task_id: str
    status: str = Field(
        description="`queued` once nothing else is pending, else `waiting`; a message to a "
        "queued or running task leaves its status as it was"
    )
    pending: int = Field(description="approvals and questions still waiting")
    seq: int = Field(description="the `input` event's seq")
    cursor: str = Field(description="the `input` event's stream id")


def _answered(body: TaskInput, meta: TaskMeta) -> tuple[list[str], dict[str, Any]]:
    """The tool call ids ``body`` answers and the ``input`` event; 409 for a kind mismatch
    (the script checks again, atomically, that they are still pending)."""
    kinds = {item.get("tool_call_id"): item.get("kind") for item in meta.pending_input}
    if body.approvals is not None:
        ids = [item.tool_call_id for item in body.approvals]
        if len(set(ids)) != len(ids):
            raise bad_request("each tool_call_id may appear once in approvals")
        questions = [call_id for call_id in ids if kinds.get(call_id) == "question"]
        if questions:
            raise _conflict(meta, f"{questions[0]!r} is a question: answer it with message")
        approvals = [item.model_dump(exclude_none=True) for item in body.approvals]
        return ids, {"type": "input", "approvals": approvals}
    call_id = body.tool_call_id or next((k for k, v in kinds.items() if v == "question"), None)
    if call_id is not None and kinds.get(call_id) == "approval":
        raise _conflict(meta, f"{call_id!r} waits for an approval, not a message")
    if call_id is None and meta.status == "waiting":
        raise _conflict(meta, "no question is pending (answer approvals with approvals)")
    # Not waiting: the script answers a repeat of an Idempotency-Key, else says why not.
    call_id = call_id or ""
    return [call_id], {"type": "input", "message": body.message, "tool_call_id": call_id}


def _conflict(meta: TaskMeta, what: str) -> ApiError:
    return ApiError(409, f"task {public_task_id(meta.task_id)!r}: {what}", code="conflict")


def _for_the_run(body: TaskInput, meta: TaskMeta, idempotency_key: str | None) -> bool:
    """Whether ``body`` may be a message for the running agent, not an answer to a wait:
    the script tells (a waiting task refuses it), and answers a repeated key first."""
    return (
        body.message is not None
        and body.tool_call_id is None
        and (meta.status != "waiting" or idempotency_key is not None)
    )


@router.post(
    "/{task_id}/input",
    response_model=InputAccepted,
    summary="Answer a waiting task, or send a message to a running one",
    responses={
        202: {"model": InputAccepted, "description": "a message the running task takes"},
        **error_responses(400, 401, 403, 404, 409, 503),
    },
)
async def task_input(
    body: TaskInput,
    meta: Owned,
    svc: ServicesDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> InputAccepted:
    """Approve or deny waiting tool calls, or answer a question (200). Recorded as an
    ``input`` event; once nothing else waits the task is queued again. A ``message``
    without ``tool_call_id`` to a queued or running task is recorded the same way (202,
    status unchanged): the agent is given it before its next model turn. 409 (with the
    reason) when the task does not take this input: it ended, gave its final answer, or
    waits for something else. The same ``Idempotency-Key`` counts once: a repeat returns
    the first outcome."""
    require_key(request, "answering a task")
    if idempotency_key is not None and TASK_ID_PATTERN.fullmatch(idempotency_key) is None:
        raise bad_request("Idempotency-Key must match ^[A-Za-z0-9_-]{1,64}$")
    try:
        if _for_the_run(body, meta, idempotency_key):
            try:
                return await _send_message(body, meta, svc, response, idempotency_key)
            except InputRejected as exc:
                if exc.reason != "waitingnow":
                    raise
                meta = await svc.store.meta(meta.task_id) or meta  # it waits now: answer it
        answered, event = _answered(body, meta)
        recorded = await svc.store.record_input(meta.task_id, event, answered, idempotency_key)
    except InputRejected as exc:
        raise ApiError(409, str(exc), code="conflict") from None
    status = "waiting" if recorded.remaining else "queued"
    if not recorded.remaining:
        current = await svc.store.meta(meta.task_id)
        # A repeat enqueues again only while that requeue may not have reached arq yet; an
        # answer taken before the attempt parked the task queues nothing (that attempt
        # hands the task on itself).
        if recorded.queued and current is not None and current.status == "queued":
            await svc.queue.enqueue(meta.task_id, job_id=f"{meta.task_id}:input:{recorded.seq}")
        status = current.status if current is not None else status
    return InputAccepted(
        task_id=public_task_id(meta.task_id), status=status, pending=recorded.remaining,
        seq=recorded.seq, cursor=recorded.cursor,
    )  # fmt: skip


async def _send_message(
    body: TaskInput, meta: TaskMeta, svc: Services, response: Response, idempotency_key: str | None
) -> InputAccepted:
    """Record a message for the running agent (202); raises ``InputRejected``."""
    assert body.message is not None  # _for_the_run checked it
    recorded = await svc.store.record_message(meta.task_id, body.message, idempotency_key)
    current = await svc.store.meta(meta.task_id)
    response.status_code = 202
    return InputAccepted(
        task_id=public_task_id(meta.task_id), status=current.status if current is not None else meta.status,
        pending=0, seq=recorded.seq, cursor=recorded.cursor,
    )  # fmt: skip
