"""OpenAI's Responses API, background mode, over the task streams (``/v1/responses``).

A response is a task: its id is the task id (any task of the tenant can be read as a
response), ``model`` names the agent, and its events are the task's stream translated by
:mod:`agentstream.api.dialects.responses`. Tasks are created through the same submit path
as ``POST /v1/tasks`` (validation, idempotency with ``Idempotency-Key``, rate limit).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from agentstream.api.dialects.responses.request import CreateResponse
from agentstream.api.dialects.responses.stream import response_frames, response_object, wait_for_end
from agentstream.api.errors import ApiError
from agentstream.api.observability import SubmitScope, SubmitTrace
from agentstream.api.routes.events import sse_response, streaming_slot
from agentstream.api.routes.tasks import cancel_task, submit_task
from agentstream.api.schemas import SSE_CONTENT, SubmitTask, error_responses
from agentstream.api.slots import Slot
from agentstream.api.sse import OPTIONS_STATE_KEY, SseOptions
from agentstream.api.state import Owned, Services, ServicesDep, Tenant, owned_task
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


async def _session(svc: Services, owner: str, body: CreateResponse, response_id: str) -> str:
    """The conversation the task joins: the previous response's, else its own."""
    if body.previous_response_id is None:
        return response_id
    try:
        previous = await owned_task(body.previous_response_id, owner, svc)
    except ApiError:
        raise ApiError(404, f"previous response {body.previous_response_id!r} not found") from None
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
    if not body.user_text().strip():
        raise ApiError(422, "input: no user text to run")
    response_id = idempotency_key or f"resp_{uuid.uuid4().hex}"
    if body.stream:
        with streaming_slot(svc, owner) as slot:
            meta = await _create(svc, owner, body, response_id, trace, idempotency_key)
            return _event_stream(svc, request, response_frames(svc.reader, meta), slot)
    meta = await _create(svc, owner, body, response_id, trace, idempotency_key)
    if not body.background:
        await wait_for_end(svc.reader, meta, min(SYNC_WAIT_S, svc.settings.sse_max_duration_s or SYNC_WAIT_S))
    return JSONResponse(await response_object(svc.reader, meta))


@router.get(
    "/{task_id}",
    response_model=None,
    summary="Retrieve a response, or resume its event stream",
    responses={200: _STREAM, **error_responses(400, 401, 404, 503)},
)
async def retrieve_response(
    request: Request,
    meta: Owned,
    svc: ServicesDep,
    stream: bool = False,
    starting_after: Annotated[
        int | None, Query(ge=0, description="with `stream`: resume after this `sequence_number`")
    ] = None,
) -> Response:
    """The Response object; with ``stream=true``, its events after ``starting_after``,
    live until the end."""
    if not stream:
        return JSONResponse(await response_object(svc.reader, meta))
    with streaming_slot(svc, meta.owner) as slot:
        return _event_stream(svc, request, response_frames(svc.reader, meta, starting_after or 0), slot)


@router.post(
    "/{task_id}/cancel",
    response_model=None,
    summary="Cancel a response",
    responses={200: _OBJECT, **error_responses(401, 404, 503)},
)
async def cancel_response(meta: Owned, svc: ServicesDep) -> Response:
    """Ask the worker to stop the task (idempotent; a finished one stays as it is), wait
    up to ``CANCEL_WAIT_S`` for its end, and answer with the Response."""
    await cancel_task(meta, svc)
    await wait_for_end(svc.reader, meta, CANCEL_WAIT_S)
    return JSONResponse(await response_object(svc.reader, meta))
