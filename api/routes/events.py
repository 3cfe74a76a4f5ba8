"""A task's events: SSE (default) or JSON pages, plain or through a consumer group; or,
with ``format=ag-ui``, the task as AG-UI events (:mod:`agentstream.api.dialects.agui`).

Every event carries ``sequence_number`` (its ``seq``), and ``starting_after=<n>`` resumes
after the event whose ``sequence_number`` is ``n``: the habit of OpenAI's Responses API in
background mode, so its clients resume here as they do there.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response

from agentstream.api.broadcast import LiveEventsResponse, before_floor
from agentstream.api.dialects.agui_frames import agui_frames, resume_point
from agentstream.api.errors import bad_request
from agentstream.api.schemas import SSE_CONTENT, EventsPage, error_responses
from agentstream.api.slots import Slot
from agentstream.api.sse import EventStreamResponse, drained_frame
from agentstream.api.state import Owned, Services, ServicesDep, require_key
from agentstream.protocol import cursor_key
from agentstream.streams import EventFilter, GroupConsumer, TaskMeta, parse_cursor

__all__ = ["FORMATS", "router", "sse_response", "streaming_slot", "with_sequence_number"]

#: the ``format`` values: agentstream's own events, or AG-UI's
FORMATS = ("agentstream", "ag-ui")

router = APIRouter(prefix="/v1/tasks", tags=["events"])

_SSE_DOC = {
    "description": "SSE frames `id: <cursor>`, `event: <type>`, `data: <event JSON>`; `: ping` comments; "
    "ends after `completed`. With `Accept: application/json`, one page of events. With `format=ag-ui`, "
    "AG-UI events as `id: <cursor>[:<k>]`, `data: <AG-UI event JSON>` frames.",
    "model": EventsPage,
    # Each server-sent event, as OpenAPI 3.2 describes a sequential media type: ``data``
    # holds the event's JSON (a gap/reset/drained marker, or an AG-UI event with format=ag-ui).
    "content": {
        "text/event-stream": SSE_CONTENT,
    },
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
    starting_after: Annotated[
        int | None,
        Query(
            ge=0,
            description="resume after the event whose `sequence_number` is this (`0`: from the start); "
            "`after` loses to it, `Last-Event-ID` wins over it",
        ),
    ] = None,
    format_: Annotated[
        str | None, Query(alias="format", description="`agentstream` (default) or `ag-ui` (SSE only)")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """Replay then follow the stream. Where to start: ``Last-Event-ID``, else
    ``starting_after``, else ``after``. A cursor that retention dropped gets a ``gap``
    frame first."""
    as_json = wants_json(request.headers.get("accept"))
    if format_ not in (None, *FORMATS):
        raise bad_request(f"unknown format {format_!r}: use {' or '.join(FORMATS)}")
    if (group is None) != (consumer is None):
        raise bad_request("give both group and consumer, or neither")
    if format_ == "ag-ui":
        if as_json or group is not None or mode is not None or types is not None or scope is not None:
            raise bad_request(
                "format=ag-ui is an SSE stream of the whole run: no JSON, group, mode, types or scope"
            )
        return await _agui_events(svc, meta, last_event_id, starting_after, after)
    flt = EventFilter.parse(mode, types, scope)
    cursor, floor = await _start_cursor(svc, meta, last_event_id, starting_after, after)
    if group is not None and consumer is not None:
        require_key(request, "consumer-group delivery (it creates groups and acks entries)")
        return await _group_events(svc, meta, group, consumer, cursor, flt, as_json, limit)
    if _past_the_end(meta, cursor):
        # The reader has ``completed`` (or claims a cursor beyond it): there is nothing to
        # send. 204 tells a browser's EventSource to stop reconnecting (an empty 200 made
        # it reconnect forever).
        if as_json:
            return _json(EventsPage(events=[], next_after=meta.last_id, done=True))
        return Response(status_code=204)
    if as_json:
        return _json(await _page(svc, meta, cursor, flt, limit, floor))
    slot = svc.slots.take(meta.owner)
    return LiveEventsResponse(svc.broadcast, meta.task_id, cursor, flt, floor, slot)


def with_sequence_number(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event with ``sequence_number`` (= ``seq``), as OpenAI's streaming events have;
    a copy, since readers share decoded events."""
    seq = event.get("seq")
    return {**event, "sequence_number": seq} if seq is not None else dict(event)


async def _start_cursor(
    svc: Services, meta: TaskMeta, last_event_id: str | None, starting_after: int | None, after: str | None
) -> tuple[str, int | None]:
    """The cursor to read after, and the ``starting_after`` seq when that decided it: an
    event at or below it is not sent, nor a gap that lost none of what follows it."""
    if last_event_id:
        return parse_cursor(last_event_id), None
    if starting_after is not None:
        return await svc.reader.cursor_after_seq(meta.task_id, starting_after), starting_after
    return parse_cursor(after), None


def _past_the_end(meta: TaskMeta, cursor: str) -> bool:
    """The task ended and the reader already has ``completed``, or a cursor past it: a
    live tail would wait for an event that can never come."""
    if not meta.done or not meta.last_id:
        return False
    return cursor == "$" or cursor_key(cursor) >= cursor_key(meta.last_id)


def _json(page: EventsPage) -> Response:
    return Response(orjson.dumps(page.model_dump()), media_type="application/json")


@contextlib.contextmanager
def streaming_slot(svc: Services, owner: str) -> Iterator[Slot]:
    """A live-stream place of ``owner``'s, taken before the route's first await (so
    concurrent requests cannot overshoot the caps) and given back if the route fails
    before its response takes it over."""
    slot = svc.slots.take(owner)
    try:
        yield slot
    except BaseException:
        slot.release()
        raise


def sse_response(svc: Services, frames: AsyncIterator[bytes], slot: Slot) -> EventStreamResponse:
    """The SSE response of ``frames``; it gives ``slot`` back when it ends."""
    settings = svc.settings
    return EventStreamResponse(
        frames,
        metrics=svc.metrics,
        buffer=settings.sse_buffer,
        ping_interval_s=settings.ping_interval_s,
        slow_client_s=settings.sse_slow_client_s,
        group=slot.group,
        slot=slot,
    )


async def _page(
    svc: Services, meta: TaskMeta, after: str, flt: EventFilter, limit: int, floor: int | None = None
) -> EventsPage:
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
            if flt.matches(event) and not before_floor(event, floor):
                events.append(with_sequence_number(event))
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
    # Taken before the first await, so concurrent requests cannot overshoot the cap.
    slot = None if as_json else svc.slots.take(meta.owner, group=True)
    try:
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
            max_groups=settings.max_groups_per_task,
        )
        await reader.__aenter__()
        if cursor not in ("0-0", "$"):
            await reader.ack_through(cursor)
        if slot is None:
            try:
                return _json(await _group_page(reader, limit))
            finally:
                await reader.aclose()
        return sse_response(svc, _group_frames(svc, reader), slot)
    except BaseException:
        if slot is not None:
            slot.release()
        raise


async def _group_page(reader: GroupConsumer, limit: int) -> EventsPage:
    items = await reader.read(count=limit, block_ms=0)
    completed = any(event["type"] == "completed" for _, event in items)
    done = completed or (not items and await reader.finished())
    events = [with_sequence_number(e) for _, e in items]
    return EventsPage(events=events, next_after=items[-1][0] if items else None, done=done)


async def _group_frames(svc: Services, reader: GroupConsumer) -> AsyncIterator[bytes]:
    items = aiter(reader)
    last_type = None
    try:
        async with contextlib.aclosing(items):  # type: ignore[type-var]
            async for cursor, event in items:
                last_type = event["type"]
                yield svc.frames.frame(reader.task_id, cursor, event)
    finally:
        await reader.aclose()
    if last_type != "completed":
        # Another consumer of the group got ``completed``: say why this stream ends, so a
        # client does not take the end for a dropped connection and reconnect.
        yield drained_frame(reader.group, reader.consumer)


async def _agui_events(
    svc: Services, meta: TaskMeta, last_event_id: str | None, starting_after: int | None, after: str | None
) -> Response:
    """The run as AG-UI events (:mod:`~agentstream.api.dialects.agui_frames`)."""
    resume = await resume_point(svc.reader, meta.task_id, last_event_id, starting_after, after)
    slot = svc.slots.take(meta.owner)
    frames = agui_frames(svc.reader, meta, resume, functools.partial(svc.store.meta, meta.task_id))
    return sse_response(svc, frames, slot)
