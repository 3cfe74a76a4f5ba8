"""Consumer groups of a task's stream: acknowledge deliveries, read group stats."""

from __future__ import annotations

from agentstream.api.errors import ApiError
from agentstream.api.schemas import AckRequest, AckResponse, GroupsResponse, GroupView, error_responses
from agentstream.api.state import Owned, ServicesDep
from agentstream.streams import GroupConsumer, group_info, parse_cursor
from agentstream.streams.keys import validate_group_name
from fastapi import APIRouter

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
    """Each group: consumers, pending entries, lag and last delivered cursor."""
    infos = await group_info(svc.redis, svc.settings.streams, meta.task_id)
    return GroupsResponse(
        groups=[
            GroupView(
                name=g.name,
                consumers=g.consumers,
                pending=g.pending,
                lag=g.lag,
                last_delivered=g.last_delivered,
                consumer_pending=g.consumer_pending,
            )
            for g in infos
        ]
    )
