"""Consumer groups of a task's stream: acknowledge deliveries, read group stats, list and
requeue dead letters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from agentstream.api.errors import ApiError
from agentstream.api.schemas import (
    AckRequest,
    AckResponse,
    DeadLettersResponse,
    DeadLetterView,
    GroupsResponse,
    GroupView,
    RequeueResponse,
    error_responses,
)
from agentstream.api.state import Owned, ServicesDep
from agentstream.streams import GroupConsumer, group_info, parse_cursor
from agentstream.streams.dead_letters import list_dead_letters, requeue_dead_letter
from agentstream.streams.keys import validate_group_name

__all__ = ["router"]

router = APIRouter(prefix="/v1/tasks", tags=["groups"])


@router.post(
    "/{task_id}/groups/{group}/ack",
    response_model=AckResponse,
    summary="Acknowledge deliveries",
    responses=error_responses(400, 401, 404, 422, 503),
)
async def ack(group: str, body: AckRequest, meta: Owned, svc: ServicesDep) -> AckResponse:
    """Ack entries of ``group``; ``acked`` counts those that were pending (0 for an unknown
    group)."""
    validate_group_name(group)
    cursors = [parse_cursor(c) for c in body.ids]
    if any(c == "$" for c in cursors):
        raise ApiError(400, "'$' is not an entry id")
    acker = GroupConsumer(svc.redis, svc.settings.streams, meta.task_id, group, "api")
    # An unknown group acks nothing (Redis answers 0), like an id that was not pending.
    return AckResponse(acked=await acker.ack(*cursors))


@router.get(
    "/{task_id}/groups",
    response_model=GroupsResponse,
    summary="Consumer groups of a task",
    responses=error_responses(401, 404, 503),
)
async def groups(meta: Owned, svc: ServicesDep) -> GroupsResponse:
    """Each group: consumers, pending entries, lag and last delivered cursor (two round
    trips to Redis, however many groups)."""
    infos = await group_info(svc.redis, svc.settings.streams, meta.task_id)
    return GroupsResponse(
        groups=[
            GroupView(
                name=g.name,
                consumers=g.consumers,
                pending=g.pending,
                last_delivered=g.last_delivered,
                lag=g.lag,
                consumer_pending=g.consumer_pending,
            )
            for g in infos
        ]
    )


@router.get(
    "/{task_id}/groups/{group}/dead-letters",
    response_model=DeadLettersResponse,
    summary="Dead letters of a group",
    responses=error_responses(400, 401, 404, 503),
)
async def dead_letters(group: str, meta: Owned, svc: ServicesDep) -> DeadLettersResponse:
    """The entries ``group`` gave up on (delivered more than ``max_deliveries`` times),
    oldest first, with the reason: the event is not lost, and can be requeued."""
    items = await list_dead_letters(svc.redis, svc.settings.streams, meta.task_id, group)
    return DeadLettersResponse(dead_letters=[_dead_letter(dead_id, event) for dead_id, event in items])


def _dead_letter(dead_id: str, event: dict[str, Any]) -> DeadLetterView:
    reasons = {k: event.pop(k) for k in list(event) if k.startswith("dl_")}
    deliveries = str(reasons.get("dl_deliveries", "0"))
    return DeadLetterView(
        id=dead_id,
        cursor=str(reasons.get("dl_entry", event.get("id", ""))),
        group=str(reasons.get("dl_group", "")),
        consumer=str(reasons.get("dl_consumer", "")),
        reason=str(reasons.get("dl_reason", "")),
        deliveries=int(deliveries) if deliveries.isdigit() else 0,
        event=event,
    )


@router.post(
    "/{task_id}/groups/{group}/dead-letters/{dead_id}/requeue",
    response_model=RequeueResponse,
    summary="Requeue a dead letter",
    responses=error_responses(400, 401, 404, 409, 503),
)
async def requeue(group: str, dead_id: str, meta: Owned, svc: ServicesDep) -> RequeueResponse:
    """Deliver the dead letter again through ``group``: it becomes a pending entry of the
    group with its delivery count reset, which the group's consumers claim (within
    ``min_idle_ms / 2``), and it leaves the dead letters. 409 when the group has no such
    dead letter or its event was trimmed."""
    cursor = await requeue_dead_letter(svc.redis, svc.settings.streams, meta.task_id, group, dead_id)
    return RequeueResponse(cursor=cursor, group=group)
