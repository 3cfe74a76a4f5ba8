"""Submit, list, read and cancel tasks (``/v1/tasks``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, Field, ValidationError

from agentstream.api.errors import ApiError, bad_request
from agentstream.api.observability import SubmitTrace
from agentstream.api.routes.agents import check_served
from agentstream.api.schemas import (
    CURSOR_REGEX,
    CancelAccepted,
    SubmitTask,
    TaskAccepted,
    TaskFields,
    TaskView,
    error_responses,
)
from agentstream.api.state import Owned, Services, ServicesDep, Tenant
from agentstream.streams import InvalidCursor, TaskMeta, parse_cursor
from agentstream.streams.codec import decode, decode_entry
from agentstream.streams.keys import TASK_ID_PATTERN, public_task_id, scoped_task_id
from agentstream.worker.payload import MAX_INPUT_CHARS

__all__ = ["TaskList", "TaskSummary", "router"]

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


def events_url(task_id: str) -> str:
    """The events URL of a task, by its key id or its public id."""
    return f"/v1/tasks/{public_task_id(task_id)}/events"


def choose_task_id(body_id: str | None, idempotency_key: str | None) -> str:
    """The client's id (body ``task_id`` or ``Idempotency-Key``), else a new ``tsk_`` id."""
    if idempotency_key is not None:
        if TASK_ID_PATTERN.fullmatch(idempotency_key) is None:
            raise bad_request("Idempotency-Key must match ^[A-Za-z0-9_-]{1,64}$ (it becomes the task id)")
        if body_id is not None and body_id != idempotency_key:
            raise bad_request("task_id and Idempotency-Key differ: give one of them")
        return idempotency_key
    return body_id or f"tsk_{uuid.uuid4().hex}"


@router.post(
    "",
    status_code=202,
    response_model=TaskAccepted,
    summary="Submit a task",
    responses={
        200: {"model": TaskAccepted, "description": "The task id existed for this tenant: the existing task"},
        **error_responses(400, 401, 413, 422, 429, 503),
    },
)
async def submit_task(
    body: SubmitTask,
    owner: Tenant,
    svc: ServicesDep,
    response: Response,
    trace: SubmitTrace,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> TaskAccepted:
    """Create the task (its stream starts with ``queued``) and enqueue its job. Task ids
    belong to the tenant: a repeated ``task_id`` (or ``Idempotency-Key``) of the same tenant
    returns the existing task with 200; any other id is a new task of this tenant, whoever
    else uses the same id."""
    if len(body.input) > MAX_INPUT_CHARS:
        raise ApiError(413, f"input has {len(body.input)} characters; the limit is {MAX_INPUT_CHARS}")
    task_id = choose_task_id(body.task_id, idempotency_key)
    trace.bind(task_id, owner)
    try:
        request = body.to_request().model_copy(update={"trace_context": trace.carrier})
    except ValidationError as exc:
        raise ApiError(422, str(exc.errors()[0].get("msg", "invalid body"))) from None
    await check_served(svc, request)
    try:
        svc.limiter.check(owner)
    except ApiError:
        svc.metrics.rate_limited += 1
        raise
    key_id = scoped_task_id(owner, task_id)
    created = await svc.store.create_task(
        key_id,
        owner=owner,
        agent=request.agent,
        input=request.input,
        request=request.model_dump(mode="json"),
    )
    if created.created:
        svc.metrics.tasks_submitted += 1
    else:
        response.status_code = 200
    if created.status == "queued":
        # Also on a retry: the first call may have failed after creating the task, and
        # the job id (= the key id) makes a second enqueue of a known job a no-op.
        await svc.queue.enqueue(key_id)
    return TaskAccepted(task_id=task_id, status=created.status, events_url=events_url(task_id))


class TaskSummary(TaskFields):
    """One task of a list: its current status and a preview of its input."""

    input: str | None = Field(default=None, description="the start of the input (the `queued` event's)")
    events_url: str


class TaskList(BaseModel):
    tasks: list[TaskSummary] = Field(description="newest first")
    next_before: str | None = Field(
        description="pass as `before` for older tasks; `null` when the feed holds no more"
    )


#: the meta fields a summary needs: not ``request``, which holds the whole input
_SUMMARY_FIELDS = ("owner", "status", "attempt", "seq", "done", "agent", "created_at", "started_at",
                   "ended_at")  # fmt: skip
_FEED_PAGE = 500


async def recent_task_ids(
    svc: Services, owner: str, limit: int, before: str | None
) -> tuple[list[str], str | None]:
    """Key ids of ``owner``'s tasks, newest first, from the ``created`` entries of the task feed
    (shared by all tenants, so at most ``task_list_scan`` entries are read), and the feed
    cursor to continue from (``None``: the feed has nothing older)."""
    key = svc.settings.streams.keys.tasks
    if before == "0-0":
        return [], None  # nothing is older than the start (and Redis refuses "(0-0")
    upper = f"({before}" if before else "+"
    budget = svc.settings.task_list_scan
    ids: list[str] = []
    while budget > 0:
        entries = await svc.redis.xrevrange(key, max=upper, min="-", count=min(_FEED_PAGE, budget))
        for cursor, fields in entries:
            if fields.get("kind") == "created" and fields.get("owner") == owner:
                ids.append(fields["task_id"])
                if len(ids) == limit:
                    return ids, cursor
        if len(entries) < min(_FEED_PAGE, budget):
            return ids, None
        budget -= len(entries)
        upper = f"({entries[-1][0]}"
    return ids, upper[1:]


async def task_summaries(svc: Services, owner: str, task_ids: list[str]) -> list[TaskSummary]:
    """Current status of each task (one round trip); expired tasks are left out."""
    keys = svc.settings.streams.keys
    pipe = svc.redis.pipeline(transaction=False)
    for task_id in task_ids:
        pipe.hmget(keys.meta(task_id), _SUMMARY_FIELDS)
        pipe.xrange(keys.events(task_id), count=1)
    replies = await pipe.execute()
    summaries: list[TaskSummary] = []
    for task_id, values, first in zip(task_ids, replies[::2], replies[1::2], strict=True):
        raw = {name: value for name, value in zip(_SUMMARY_FIELDS, values, strict=True) if value is not None}
        if raw.get("owner") != owner:
            continue  # expired (or, were the feed wrong, someone else's)
        meta = TaskMeta.from_hash(task_id, raw)
        queued = decode_entry(first[0][0], first[0][1], public_task_id(task_id)) if first else {}
        preview = queued.get("input") if queued.get("type") == "queued" else None
        summaries.append(
            TaskSummary(
                **meta_fields(meta),
                input=preview if isinstance(preview, str) else None,
                events_url=events_url(task_id),
            )
        )
    return summaries


@router.get("", response_model=TaskList, summary="List tasks", responses=error_responses(400, 401, 503))
async def list_tasks(
    owner: Tenant,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200, description="tasks per page")] = 50,
    before: Annotated[
        str | None, Query(pattern=CURSOR_REGEX, description="`next_before` of the previous page")
    ] = None,
) -> TaskList:
    """The caller's recent tasks, newest first, with their current status. Tasks whose
    retention expired are left out."""
    if before is not None:
        try:
            before = parse_cursor(before)  # the pattern admits ids Redis would refuse (> 64 bits)
        except InvalidCursor as exc:
            raise bad_request(str(exc)) from None
    task_ids, next_before = await recent_task_ids(svc, owner, limit, before)
    return TaskList(tasks=await task_summaries(svc, owner, task_ids), next_before=next_before)


async def last_outcome(svc: Services, task_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The newest ``result`` and ``error`` events among the last entries of the stream."""
    key = svc.settings.streams.keys.events(task_id)
    entries = await svc.redis.xrevrange(key, count=svc.settings.result_scan)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    for cursor, fields in entries:
        kind = fields.get("t")
        if kind == "result" and result is None:
            result = decode(cursor, fields, public_task_id(task_id))
        elif kind == "error" and error is None:
            error = decode(cursor, fields, public_task_id(task_id))
        if result is not None and error is not None:
            break
    return result, error


def meta_fields(meta: TaskMeta) -> dict[str, Any]:
    """The :class:`TaskFields` of a task, from its meta hash; ``task_id`` is the id the
    client knows (without the tenant of the key id)."""
    fields = {name: getattr(meta, name) for name in TaskFields.model_fields}
    fields["task_id"] = public_task_id(meta.task_id)
    return fields


def task_view(meta: TaskMeta, result: dict[str, Any] | None, error: dict[str, Any] | None) -> TaskView:
    return TaskView(
        **meta_fields(meta),
        cancel_requested=meta.cancel_requested is not None,
        result=result,
        error=error,
        events_url=events_url(meta.task_id),
    )


@router.get(
    "/{task_id}", response_model=TaskView, summary="Read a task", responses=error_responses(401, 404, 503)
)
async def get_task(meta: Owned, svc: ServicesDep) -> TaskView:
    """Status, attempt, times, and the last ``result`` or ``error`` event."""
    result, error = await last_outcome(svc, meta.task_id)
    return task_view(meta, result, error)


@router.post(
    "/{task_id}/cancel",
    status_code=202,
    response_model=CancelAccepted,
    summary="Cancel a task",
    responses=error_responses(401, 404, 503),
)
async def cancel_task(meta: Owned, svc: ServicesDep) -> CancelAccepted:
    """Ask the worker to stop; idempotent. The stream then ends ``cancelled``, ``completed``
    (a task that already ended is left as it is)."""
    # A task a worker holds is only marked: that attempt polls for it (within a quarter
    # second) and ends the stream itself; a task nobody holds is ended here at once. An arq
    # abort is never sent: arq drops a job that is between attempts without running it,
    # and then nobody would write the stream's ``completed``.
    meta = await svc.store.request_cancel(meta.task_id)
    return CancelAccepted(
        task_id=public_task_id(meta.task_id),
        status=meta.status,
        cancel_requested=meta.cancel_requested is not None,
    )
