"""OpenAI's Responses API, background mode, over the task streams (``/v1/responses``).

A response is a task: its id is the task id (any task of the tenant can be read as a
response), ``model`` names the agent, and its events are the task's stream translated by
:mod:`agentstream.api.dialects.responses`. Tasks are created through the same submit path
as ``POST /v1/tasks`` (validation, idempotency with ``Idempotency-Key``, rate limit).

A task that waits for a person ends its response (``completed``, with
``mcp_approval_request`` items and the question's ``function_call`` left without output);
a create whose ``input`` answers them (``previous_response_id`` plus
``mcp_approval_response`` / ``function_call_output`` items) records the answers as the
task's input and is the continuation, response ``<task id>.<seq of the answer>``: the
same task's events from the answer on. OpenAI's own approval round trip, over one
durable task.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from agentstream.api.dialects.responses.request import ApprovalAnswer, CreateResponse
from agentstream.api.dialects.responses.stream import Window, response_frames, response_object, wait_for_end
from agentstream.api.dialects.responses.translator import APPROVAL_PREFIX
from agentstream.api.errors import ApiError
from agentstream.api.observability import SubmitScope, SubmitTrace
from agentstream.api.routes.events import sse_response, streaming_slot
from agentstream.api.routes.inputs import Approval, TaskInput, task_input
from agentstream.api.routes.tasks import cancel_task, submit_task
from agentstream.api.schemas import SSE_CONTENT, SubmitTask, error_responses
from agentstream.api.slots import Slot
from agentstream.api.sse import OPTIONS_STATE_KEY, SseOptions
from agentstream.api.state import Services, ServicesDep, Tenant, owned_task
from agentstream.streams import TaskMeta
from agentstream.streams.keys import public_task_id

__all__ = ["CANCEL_WAIT_S", "SYNC_WAIT_S", "router"]

router = APIRouter(prefix="/v1/responses", tags=["responses"])

#: how long a create without ``background`` or ``stream`` waits for the task's end (then
#: it answers with the response as it stands, ``in_progress``); at most the SSE maximum
#: duration when one is set: the operator's bound on any long-lived response
SYNC_WAIT_S = 300.0
#: how long a cancel waits for the worker to end the task (it polls every 0.25 s)
CANCEL_WAIT_S = 5.0

_OBJECT = {"description": "The Response object (OpenAI's shape)", "content": {"application/json": {}}}
_STREAM = {
    "description": "With `stream`: the Responses events as SSE, `id: <sequence_number>`, `event: <type>`, "
    "`data: <event JSON>`",
    "content": {"application/json": {}, "text/event-stream": SSE_CONTENT},
}


#: the task's fields as the caller named them
_NAMES = {"agent": "model", "task_id": "Idempotency-Key"}


def _submitted(body: CreateResponse, session_id: str, task_id: str) -> SubmitTask:
    try:
        return SubmitTask(**body.task_fields(), session_id=session_id, task_id=task_id)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = str((error.get("loc") or ("body",))[0])
        raise ApiError(422, f"{_NAMES.get(where, where)}: {error.get('msg', 'invalid')}") from None


def _event_stream(svc: Services, request: Request, frames: AsyncIterator[bytes], slot: Slot) -> Response:
    """The SSE response without the ``retry:`` prelude, which the ``openai`` SDK's decoder
    would hand on as an empty event it cannot parse."""
    response = sse_response(svc, frames, slot)
    options = request.scope.get("state", {}).get(OPTIONS_STATE_KEY)
    if isinstance(options, SseOptions):
        response.options = dataclasses.replace(options, retry_ms=0)
    return response


async def response_window(response_id: str, owner: Tenant, svc: ServicesDep) -> Window:
    """The task and part of it that response ``response_id`` is: ``<task id>`` (the whole
    task), or ``<task id>.<seq>`` (its continuation after the answer at that seq); 404."""
    task_id, sep, seq = response_id.partition(".")
    if sep and not (seq.isdigit() and len(seq) <= 18 and int(seq) > 0):
        raise ApiError(404, f"response {response_id!r} not found", code="not_found")
    meta = await owned_task(task_id, owner, svc)
    return Window(meta, int(seq) if sep else 0)


Target = Annotated[Window, Depends(response_window)]


def _status(svc: Services, window: Window) -> functools.partial[Any]:
    return functools.partial(svc.store.meta, window.meta.task_id)


async def _previous(svc: Services, owner: str, previous_id: str) -> Window:
    try:
        return await response_window(previous_id, owner, svc)
    except ApiError:
        raise ApiError(404, f"previous response {previous_id!r} not found") from None


async def _session(svc: Services, owner: str, body: CreateResponse, response_id: str) -> str:
    """The conversation the task joins: the previous response's, else its own."""
    if body.previous_response_id is None:
        return response_id
    previous = (await _previous(svc, owner, body.previous_response_id)).meta
    return str(previous.request.get("session_id") or public_task_id(previous.task_id))


async def _create(
    svc: Services,
    owner: str,
    body: CreateResponse,
    response_id: str,
    trace: SubmitScope,
    idempotency_key: str | None,
) -> TaskMeta:
    """Submit the response's task (through the tasks route: one set of checks)."""
    task = _submitted(body, await _session(svc, owner, body, response_id), response_id)
    accepted = await submit_task(
        task, owner, svc, Response(status_code=202), trace, idempotency_key=idempotency_key
    )
    return await owned_task(accepted.task_id, owner, svc)


@router.post(
    "",
    response_model=None,
    summary="Create a response (a task of the agent `model`)",
    responses={200: _STREAM, **error_responses(400, 401, 404, 409, 413, 422, 429, 503)},
)
async def create_response(
    request: Request,
    body: CreateResponse,
    owner: Tenant,
    svc: ServicesDep,
    trace: SubmitTrace,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """Start the task. With ``stream``: its events from ``response.created`` on; with
    ``background``: the Response at once (``queued``); else the Response once the task
    ended (or after ``SYNC_WAIT_S``, ``in_progress``)."""
    if body.answers():
        return await _continue(request, body, owner, svc, idempotency_key)
    if not body.user_text().strip():
        raise ApiError(422, "input: no user text to run")
    response_id = idempotency_key or f"resp_{uuid.uuid4().hex}"
    if body.stream:
        with streaming_slot(svc, owner) as slot:
            window = Window(await _create(svc, owner, body, response_id, trace, idempotency_key))
            return _event_stream(
                svc, request, response_frames(svc.reader, window, _status(svc, window)), slot
            )
    window = Window(await _create(svc, owner, body, response_id, trace, idempotency_key))
    return await _answer(svc, body, window)


def _stream(svc: Services, request: Request, window: Window, slot: Slot) -> Response:
    return _event_stream(svc, request, response_frames(svc.reader, window, _status(svc, window)), slot)


async def _answer(svc: Services, body: CreateResponse, window: Window) -> Response:
    """The Response object of a create without ``stream``: at once with ``background``,
    else once the response ended (at most ``SYNC_WAIT_S``)."""
    status = _status(svc, window)
    if not body.background:
        wait_s = min(SYNC_WAIT_S, svc.settings.sse_max_duration_s or SYNC_WAIT_S)
        await wait_for_end(svc.reader, window, status, wait_s)
    return JSONResponse(await response_object(svc.reader, window, status))


def _key(idempotency_key: str | None, task_id: str, what: Any) -> str:
    """The idempotency key of one recorded answer: derived from the answer itself (and the
    caller's key, when given), so a retried create records nothing twice."""
    digest = hashlib.sha256(json.dumps([idempotency_key, task_id, what], sort_keys=True).encode())
    return f"resp-{digest.hexdigest()[:40]}"


def _approval(item: ApprovalAnswer) -> Approval:
    if not item.approval_request_id.startswith(APPROVAL_PREFIX):
        raise ApiError(
            422, f"approval_request_id {item.approval_request_id!r} is no approval request of this API"
        )
    call_id = item.approval_request_id.removeprefix(APPROVAL_PREFIX)
    return Approval(tool_call_id=call_id, approved=item.approve, reason=item.reason)


async def _continue(
    request: Request, body: CreateResponse, owner: str, svc: Services, idempotency_key: str | None
) -> Response:
    """A create that answers the previous response: record the answers as the task's
    input (409 when it does not wait for them), then answer as any create does with the
    continuation after the last of them."""
    if body.previous_response_id is None:
        raise ApiError(422, "input: approval responses and function call outputs need previous_response_id")
    if body.user_text().strip() or body.instructions or body.metadata:
        raise ApiError(
            422, "input: a response that answers the previous one takes no new text, instructions or metadata"
        )
    meta = (await _previous(svc, owner, body.previous_response_id)).meta
    if body.model != meta.agent:
        raise ApiError(422, f"model: the previous response's task runs {meta.agent!r}, not {body.model!r}")
    task = public_task_id(meta.task_id)
    approvals = [_approval(item) for item in body.answers() if isinstance(item, ApprovalAnswer)]
    outputs = [item for item in body.answers() if not isinstance(item, ApprovalAnswer)]
    seqs: list[int] = []
    if approvals:
        decisions = [a.model_dump(exclude_none=True) for a in approvals]
        key = _key(idempotency_key, task, decisions)
        reply = await task_input(
            TaskInput(approvals=approvals), meta, svc, request, Response(), idempotency_key=key
        )
        seqs.append(reply.seq)
    for output in outputs:
        current = await svc.store.meta(meta.task_id) or meta
        answer = TaskInput(message=output.output, tool_call_id=output.call_id)
        key = _key(idempotency_key, task, [output.call_id, output.output])
        seqs.append((await task_input(answer, current, svc, request, Response(), idempotency_key=key)).seq)
    window = Window(meta, max(seqs))
    if body.stream:
        with streaming_slot(svc, owner) as slot:
            return _event_stream(
                svc, request, response_frames(svc.reader, window, _status(svc, window)), slot
            )
    return await _answer(svc, body, window)


@router.get(
    "/{response_id}",
    response_model=None,
    summary="Retrieve a response, or resume its event stream",
    responses={200: _STREAM, **error_responses(400, 401, 404, 503)},
)
async def retrieve_response(
    request: Request,
    window: Target,
    svc: ServicesDep,
    stream: bool = False,
    starting_after: Annotated[
        int | None, Query(ge=0, description="with `stream`: resume after this `sequence_number`")
    ] = None,
) -> Response:
    """The Response object; with ``stream=true``, its events after ``starting_after``,
    live until the end."""
    status = _status(svc, window)
    if not stream:
        return JSONResponse(await response_object(svc.reader, window, status))
    with streaming_slot(svc, window.meta.owner) as slot:
        frames = response_frames(svc.reader, window, status, starting_after or 0)
        return _event_stream(svc, request, frames, slot)


@router.post(
    "/{response_id}/cancel",
    response_model=None,
    summary="Cancel a response",
    responses={200: _OBJECT, **error_responses(401, 404, 503)},
)
async def cancel_response(window: Target, svc: ServicesDep) -> Response:
    """Ask the worker to stop the task (idempotent; a finished one stays as it is), wait
    up to ``CANCEL_WAIT_S`` for its end, and answer with the Response."""
    await cancel_task(window.meta, svc)
    status = _status(svc, window)
    await wait_for_end(svc.reader, window, status, CANCEL_WAIT_S)
    return JSONResponse(await response_object(svc.reader, window, status))
