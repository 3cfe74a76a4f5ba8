"""A task's events: SSE (default) or JSON pages, plain or through a consumer group."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request, Response

from api.errors import bad_request, unavailable
from api.schemas import EventsPage, error_responses
from api.sse import EventStreamResponse
from api.state import Owned, Services, ServicesDep
from streams import EventFilter, GroupConsumer, TaskMeta, parse_cursor

__all__ = ["router"]

router = APIRouter(prefix="/v1/tasks", tags=["events"])

_SSE_DOC = {
    "description": "SSE frames `id: <cursor>`, `event: <type>`, `data: <event JSON>`; `: ping` comments; "
    "ends after `completed`. With `Accept: application/json`, one page of events.",
    "model": EventsPage,
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def wants_json(accept: str | None) -> bool:
    """JSON only when asked for and SSE is not (``EventSource`` sends ``text/event-stream``)."""
    accept = (accept or "").lower()
    return "application/json" in accept and "text/event-stream" not in accept


@router.get(
    "/{task_id}/events",
    response_model=None,
    summary="Read a task's events",
    responses={200: _SSE_DOC, **error_responses(400, 401, 404, 503)},
)
async def task_events(
    request: Request,
    meta: Owned,
    svc: ServicesDep,
    after: Annotated[
        str | None, Query(description="resume after this cursor; `0` from the start, `$` new events only")
    ] = None,
    mode: Annotated[str | None, Query(description="core (default), chunk, output, chunk_output, all")] = None,
    types: Annotated[str | None, Query(description="comma list of event types")] = None,
    scope: Annotated[str | None, Query(description="main, dawp or all (default)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="events per JSON page")] = 100,
    group: Annotated[str | None, Query(description="consumer-group delivery (with `consumer`)")] = None,
    consumer: Annotated[str | None, Query(description="this reader's name in `group`")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """Replay then follow the stream. ``Last-Event-ID`` wins over ``after``. A cursor that
    retention dropped gets a ``gap`` frame first."""
    cursor = parse_cursor(last_event_id if last_event_id else after)
    flt = EventFilter.parse(mode, types, scope)
    as_json = wants_json(request.headers.get("accept"))
    if (group is None) != (consumer is None):
        raise bad_request("give both group and consumer, or neither")
    if group is not None and consumer is not None:
        return await _group_events(svc, meta, group, consumer, cursor, flt, as_json, limit)
    if as_json:
        return _json(await _page(svc, meta, cursor, flt, limit))
    if svc.metrics.sse_clients >= svc.settings.max_sse_clients:
        raise unavailable("too many live event streams; retry shortly")
    if _past_the_end(meta, cursor):
        return _stream(svc, _no_frames())
    return _stream(svc, _tail_frames(svc, meta.task_id, cursor, flt))


def _cursor_key(cursor: str) -> tuple[int, int]:
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)


def _past_the_end(meta: TaskMeta, cursor: str) -> bool:
    """The task ended and the reader already has ``completed``: a live tail would wait
    for an event that can never come."""
    if not meta.done or not meta.last_id:
        return False
    return cursor == "$" or _cursor_key(cursor) >= _cursor_key(meta.last_id)


async def _no_frames() -> AsyncIterator[bytes]:
    return
    yield  # an empty async generator


def _json(page: EventsPage) -> Response:
    return Response(orjson.dumps(page.model_dump()), media_type="application/json")


def _stream(svc: Services, frames: AsyncIterator[bytes], *, group: bool = False) -> EventStreamResponse:
    settings = svc.settings
    return EventStreamResponse(
        frames,
        metrics=svc.metrics,
        buffer=settings.sse_buffer,
        ping_interval_s=settings.ping_interval_s,
        slow_client_s=settings.sse_slow_client_s,
        group=group,
    )


async def _tail_frames(svc: Services, task_id: str, after: str, flt: EventFilter) -> AsyncIterator[bytes]:
    items = svc.reader.tail(task_id, after, flt)
    async with contextlib.aclosing(items):  # type: ignore[type-var]
        async for cursor, event in items:
            yield svc.frames.frame(task_id, cursor, event)


async def _page(svc: Services, meta: TaskMeta, after: str, flt: EventFilter, limit: int) -> EventsPage:
    """Up to ``limit`` matching events after ``after``. ``next_after`` is the last entry
    *scanned*, so events the filter skipped are not scanned again by the next page."""
    task_id = meta.task_id
    if after == "$":
        after = await svc.reader.last_cursor(task_id) or "0-0"
    events: list[dict[str, object]] = []
    last, completed, exhausted = after, False, True
    items = svc.reader.replay(task_id, after)
    async with contextlib.aclosing(items):  # type: ignore[type-var]
        async for cursor, event in items:
            if event["type"] != "gap":
                last = cursor
            if flt.matches(event):
                events.append(event)
            if event["type"] == "completed":
                completed = True
                break
            if len(events) >= limit:
                exhausted = False
                break
    return EventsPage(events=events, next_after=last, done=completed or (exhausted and meta.done))


async def _group_events(
    svc: Services,
    meta: TaskMeta,
    group: str,
    name: str,
    cursor: str,
    flt: EventFilter,
    as_json: bool,
    limit: int,
) -> Response:
    """Delivery through a consumer group: a resume cursor acks this consumer's pending
    entries up to it; the rest of its pending entries are delivered again first."""
    settings = svc.settings
    if not as_json and svc.metrics.group_streams >= settings.max_group_streams:
        raise unavailable("too many live consumer-group streams; retry shortly")
    reader = GroupConsumer(
        svc.redis,
        settings.streams,
        meta.task_id,
        group,
        name,
        filter=flt,
        max_deliveries=settings.group_max_deliveries,
        min_idle_ms=settings.group_min_idle_ms,
        block_ms=settings.group_block_ms,
    )
    await reader.__aenter__()
    if cursor not in ("0-0", "$"):
        await reader.ack_through(cursor)
    if as_json:
        try:
            return _json(await _group_page(reader, limit))
        finally:
            await reader.aclose()
    return _stream(svc, _group_frames(svc, reader), group=True)


async def _group_page(reader: GroupConsumer, limit: int) -> EventsPage:
    items = await reader.read(count=limit, block_ms=0)
    completed = any(event["type"] == "completed" for _, event in items)
    done = completed or (not items and await reader.finished())
    return EventsPage(events=[e for _, e in items], next_after=items[-1][0] if items else None, done=done)


async def _group_frames(svc: Services, reader: GroupConsumer) -> AsyncIterator[bytes]:
    items = aiter(reader)
    try:
        async with contextlib.aclosing(items):  # type: ignore[type-var]
            async for cursor, event in items:
                yield svc.frames.frame(reader.task_id, cursor, event)
    finally:
        await reader.aclose()
