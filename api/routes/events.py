"""A task's events: SSE (default) or JSON pages, plain or through a consumer group; or,
with ``format=ag-ui``, the task as AG-UI events (:mod:`agentstream.api.dialects.agui`).

Every event carries ``sequence_number`` (its ``seq``), and ``starting_after=<n>`` resumes
after the event whose ``sequence_number`` is ``n``: the habit of OpenAI's Responses API in
background mode, so its clients resume here as they do there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.datastructures import Headers, QueryParams
from starlette.types import Receive, Scope, Send

from agentstream.api.broadcast import HANDOFF, LiveEventsResponse, LiveStream, before_floor
from agentstream.api.dialects.agui_frames import agui_frames, resume_point
from agentstream.api.errors import bad_request
from agentstream.api.schemas import SSE_CONTENT, EventsPage, error_responses
from agentstream.api.slots import Slot
from agentstream.api.sse import EventStreamResponse, drained_frame
from agentstream.api.state import (
    STATE_KEY,
    Owned,
    Services,
    ServicesDep,
    bearer,
    owned_task,
    require_key,
    tenant,
)
from agentstream.protocol import cursor_key
from agentstream.streams import EventFilter, GroupConsumer, TaskMeta, parse_cursor

__all__ = ["FORMATS", "LiveTail", "router", "sse_response", "streaming_slot", "with_sequence_number"]

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


# --------------------------------------------------------------------------- the live tail's own path

#: the path ``task_events`` is routed at (Starlette's ``{task_id}``: no ``/``)
_EVENTS_PATH = re.compile(r"/v1/tasks/([^/]+)/events")
#: the route's query parameters that a plain live tail does not have
_ROUTED = frozenset({"group", "consumer", "format"})
_DIGITS = re.compile(r"[0-9]{1,18}")
#: an exception handler of the app, as FastAPI keeps them
Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]


class LiveTail:
    """``GET /v1/tasks/{task_id}/events`` as a live SSE stream (no group, no ``format``,
    not JSON), served before FastAPI's middleware, routing and dependency solving: the
    same steps as :func:`task_events` (bearer key or viewer session, the tenant's own
    task, filter, start cursor, slot) through the same functions, without the framework
    around them. Even with the chain let go once the stream runs (``LiveHandoff``), a
    burst of 1,000 clients held 1,000 copies of it at once while they waited on Redis,
    and the memory they left behind was reused by nothing: 31 KB of RSS per client
    (16 KB when the same clients came 25 at a time); through this path, 16.7 KB
    (``bench/sse_memory.py``).

    What this path does not answer with certainty is left to the route, untouched: any
    other path, method or parameter, a request body, a query value FastAPI might read
    otherwise (``limit``, ``starting_after`` not plain digits), a stream past its end
    (204), FastAPI's own telemetry on (its spans follow the route). An error raised on the
    way is answered by the app's handler for it, as the route's would be.
    """

    def __init__(self, handlers: Mapping[Any, Handler]) -> None:
        self._handlers = handlers
        self._turns: asyncio.Semaphore | None = None

    @staticmethod
    def task_id(scope: Scope) -> str | None:
        """The task of a ``GET`` of its events, else ``None`` (the app routes it)."""
        if scope["method"] != "GET" or scope.get("root_path"):
            return None
        match = _EVENTS_PATH.fullmatch(scope["path"])
        return match.group(1) if match else None

    async def open(self, scope: Scope, receive: Receive, send: Send, task_id: str) -> LiveStream | bool:
        """The stream of ``task_id`` (see :meth:`task_id`) to run, its head sent (the
        caller runs it: only the stream is kept while it runs, not the response or this
        request's parsing); ``True``: an error was answered; ``False``: nothing was sent,
        the app routes the request."""
        svc = scope.get("state", {}).get(STATE_KEY)
        if not isinstance(svc, Services):
            return False
        try:
            turn = await self._turn(svc)
            try:
                response = await _live_response(scope, svc, task_id)
            except BaseException:
                turn.give_back()
                raise
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                return False  # the route meets it again, inside the app's error middleware
            answer = await handler(Request(scope, receive), exc)
            await answer(scope, receive, send)
            return True
        if response is None:
            turn.give_back()
            return False
        handoff: list[LiveStream] = []
        scope[HANDOFF] = handoff
        try:
            await response(scope, receive, send)
        finally:
            del scope[HANDOFF]
            if not handoff:
                turn.give_back()
        if not handoff:
            return True
        stream = handoff.pop()
        stream.started = turn.give_back  # after its first read
        return stream

    async def _turn(self, svc: Services) -> _Turn:
        """At most as many tails set up at once (to their first read) as the Redis pool
        has connections: the others would only wait there, each holding its request's
        parsing and its Redis commands' frames, and in a burst of 1,000 that memory
        stayed, in holes no later allocation filled (14.1 -> 11.9 KB of RSS per client,
        ``bench/sse_memory.py``). A tail waits for its turn as long as for a pooled
        connection, and fails as that wait does."""
        streams = svc.settings.streams
        if self._turns is None:
            self._turns = asyncio.Semaphore(streams.max_connections)
        try:
            async with asyncio.timeout(streams.command_timeout_s):
                await self._turns.acquire()
        except TimeoutError:
            raise RedisConnectionError("No connection available.") from None
        return _Turn(self._turns)

    def _handler(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None  # the server error middleware's, not an exception handler's
            if cls in self._handlers:
                return self._handlers[cls]
        return None


class _Turn:
    """One tail's turn at setting up (:class:`LiveTail`), given back once."""

    __slots__ = ("_turns",)

    def __init__(self, turns: asyncio.Semaphore) -> None:
        self._turns: asyncio.Semaphore | None = turns

    def give_back(self) -> None:
        turns, self._turns = self._turns, None
        if turns is not None:
            turns.release()


async def _live_response(scope: Scope, svc: Services, task_id: str) -> LiveEventsResponse | None:
    """:func:`task_events` for a plain live tail: its response, or ``None`` when the route
    should answer (see :class:`LiveTail`)."""
    headers = Headers(raw=scope["headers"])  # not scope=: that copies the list into the scope
    if "content-length" in headers or "transfer-encoding" in headers or wants_json(headers.get("accept")):
        return None
    query = QueryParams(scope["query_string"])
    if not _ROUTED.isdisjoint(query.keys()):
        return None
    limit, starting_after = query.get("limit"), query.get("starting_after")
    if limit is not None and not (_DIGITS.fullmatch(limit) and 1 <= int(limit) <= 1000):
        return None
    if starting_after is not None and not _DIGITS.fullmatch(starting_after):
        return None
    request = Request(scope)
    owner = await tenant(request, svc, await bearer(request))
    meta = await owned_task(task_id, owner, svc)
    flt = EventFilter.parse(query.get("mode"), query.get("types"), query.get("scope"))
    floor_at = int(starting_after) if starting_after is not None else None
    cursor, floor = await _start_cursor(svc, meta, headers.get("last-event-id"), floor_at, query.get("after"))
    if _past_the_end(meta, cursor):
        return None
    slot = svc.slots.take(meta.owner)
    return LiveEventsResponse(svc.broadcast, meta.task_id, cursor, flt, floor, slot)
