"""Input for a task that waits for a person: ``POST /v1/tasks/{task_id}/input``.

A task waits when a tool call needs approval (``approval_required``) or the agent asked
the user (``input_required``); the answer is recorded as an ``input`` event atomically
(:meth:`~agentstream.streams.TaskStore.record_input`) and, once nothing else is pending,
the task is queued again: a worker resumes it from its recorded events.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field, model_validator

from agentstream.api.errors import ApiError, bad_request
from agentstream.api.schemas import error_responses
from agentstream.api.state import Owned, ServicesDep, require_key
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
    status: str = Field(description="`queued` once nothing else is pending, else `waiting`")
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


@router.post(
    "/{task_id}/input",
    response_model=InputAccepted,
    summary="Answer a waiting task",
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def task_input(
    body: TaskInput,
    meta: Owned,
    svc: ServicesDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> InputAccepted:
    """Approve or deny waiting tool calls, or answer the agent's question. Recorded as an
    ``input`` event; once nothing else waits the task is queued again. 409 (with the
    reason) when the task does not wait for this input. The same ``Idempotency-Key``
    counts once: a repeat returns the first answer."""
    require_key(request, "answering a task")
    if idempotency_key is not None and TASK_ID_PATTERN.fullmatch(idempotency_key) is None:
        raise bad_request("Idempotency-Key must match ^[A-Za-z0-9_-]{1,64}$")
    answered, event = _answered(body, meta)
    try:
        recorded = await svc.store.record_input(meta.task_id, event, answered, idempotency_key)
    except InputRejected as exc:
        raise ApiError(409, str(exc), code="conflict") from None
    status = "waiting" if recorded.remaining else "queued"
    if not recorded.remaining:
        current = await svc.store.meta(meta.task_id)
        # A repeat enqueues again only while that requeue may not have reached arq yet.
        if current is not None and current.status == "queued":
            await svc.queue.enqueue(meta.task_id, job_id=f"{meta.task_id}:input:{recorded.seq}")
        status = current.status if current is not None else status
    return InputAccepted(
        task_id=public_task_id(meta.task_id), status=status, pending=recorded.remaining,
        seq=recorded.seq, cursor=recorded.cursor,
    )  # fmt: skip
