"""Readers of a task's event stream: ``replay`` (XRANGE pages) and ``tail`` (replay, then
live through the :class:`~streams.hub.ReaderHub`, ending after ``completed``).

Both yield ``(cursor, event)`` pairs, event dicts as in PROTOCOL section 3 with ``id`` set,
filtered per reader. The cursor of each pair is the stream's own, whatever the filter, so a
reader resumes from the last cursor it saw. A cursor older than what retention kept yields
a ``gap`` marker first (its cursor is the one asked for; ``first_cursor`` is the oldest
entry still held).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster

from agentstream.protocol import cursor_key

from .codec import decode_entries, decode_entry, decode_flat, entry_seq
from .connection import RedisClient, raw_stream_client
from .errors import InvalidCursor, TaskNotFound, UsageError
from .events import EventFilter
from .hub import ReaderHub
from .keys import public_task_id, validate_task_id
from .settings import StreamsSettings

__all__ = ["LAST_CURSOR", "Follow", "Reader", "Tracker", "parse_cursor", "reset_marker"]

_CURSOR = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")
_MAX_U64 = 2**64 - 1
#: the largest entry id: nothing can follow it, and Redis refuses it as an exclusive start
LAST_CURSOR = f"{_MAX_U64}-{_MAX_U64}"
_ALL = EventFilter.parse("all")

Item = tuple[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Start:
    after: str
    items: list[Item]
    #: the first page was full: more to read by XRANGE
    full: bool
    #: cursor of ``completed`` when the task has ended
    end: str | None


def reset_marker(task_id: str, cursor: str, last_seq: int, reason: str) -> dict[str, Any]:
    """The ``reset`` marker: discard what was seen after ``last_seq``; ``cursor`` is where
    the stream goes on from."""
    return {
        "type": "reset",
        "task_id": task_id,
        "last_seq": last_seq,
        "last_cursor": cursor if cursor != "0-0" else None,
        "reason": f"{reason}: events after seq {last_seq} were lost; discard them",
        "id": cursor,
    }


class Tracker:
    """What a tail has passed (cursor and seq): drops entries it already yielded, and
    puts a ``reset`` marker before an entry whose seq does not move forward, so a reader
    is never shown two different events under one seq."""

    def __init__(self, task_id: str, cursor: str) -> None:
        self.task_id = public_task_id(task_id)
        self.cursor = cursor
        self._cursor_t = cursor_key(cursor)
        self._seq: int | None = None
        #: ``completed`` was passed
        self.ended = False

    def copy(self) -> Tracker:
        """A tracker that has passed what this one has (to go on reading apart)."""
        other = Tracker.__new__(Tracker)
        other.task_id, other.cursor, other._cursor_t = self.task_id, self.cursor, self._cursor_t
        other._seq, other.ended = self._seq, self.ended
        return other

    @property
    def seq(self) -> int | None:
        """The seq of the last event passed (``None``: none yet)."""
        return self._seq

    def at_or_after(self, cursor: str) -> bool:
        """This tracker has passed ``cursor`` (or stands on it)."""
        return self._cursor_t >= cursor_key(cursor)

    def accept(self, cursor: str, event: dict[str, Any]) -> list[Item]:
        cursor_t = cursor_key(cursor)
        if cursor_t <= self._cursor_t:
            return []
        out: list[Item] = []
        seq = event.get("seq")
        if isinstance(seq, int):
            if self._seq is not None and seq <= self._seq:
                marker = reset_marker(self.task_id, self.cursor, seq - 1, "the stream was rewound")
                out.append((self.cursor, marker))
            self._seq = seq
        self.cursor, self._cursor_t = cursor, cursor_t
        out.append((cursor, event))
        return out


def _admit(entries: Iterable[Item], tracker: Tracker, flt: EventFilter) -> tuple[list[Item], bool]:
    """The replayed start of a tail: markers as they come, events through the tracker and
    the filter; ``True`` when ``completed`` was among them (nothing follows it)."""
    out: list[Item] = []
    for cursor, event in entries:
        if event["type"] in ("gap", "reset"):
            out.append((cursor, event))
            continue
        out.extend(item for item in tracker.accept(cursor, event) if flt.matches(item[1]))
        if event["type"] == "completed":
            return out, True
    return out, False


class Follow:
    """A tail driven step by step, for a caller that joins the live part some other way
    (the API's broadcast): :meth:`Reader.follow` reads the start (``head``), each
    :meth:`page` one more XRANGE page after ``tracker.cursor``. ``caught_up`` is set when
    a read found the end of what is stored; ``ended`` once ``completed`` was passed (or the
    task ended at or before the cursor)."""

    def __init__(self, reader: Reader, task_id: str, tracker: Tracker, flt: EventFilter) -> None:
        self._reader = reader
        self.task_id = task_id
        self.tracker = tracker
        self.filter = flt
        self.head: list[Item] = []
        self.caught_up = False
        self.ended = False

    async def page(self) -> list[Item]:
        """The filtered events of the next page after ``tracker.cursor`` (perhaps none)."""
        reader, tracker, flt = self._reader, self.tracker, self.filter
        size = reader.settings.page_size
        key = reader.keys.events(self.task_id)
        raw = []
        if tracker.cursor != LAST_CURSOR:
            raw = await reader._raw.xrange(key, min=f"({tracker.cursor}", count=size)
        self.caught_up = len(raw) < size
        shown = tracker.task_id
        out: list[Item] = []
        for cursor, fields in raw:
            decode = decode_flat if isinstance(fields, list) else decode_entry
            event = decode(cursor, fields, shown)
            out.extend(item for item in tracker.accept(cursor, event) if flt.matches(item[1]))
            if event["type"] == "completed":
                self.ended = tracker.ended = True
                break
        return out


async def _reply(pool: Any, conn: Any) -> Any:
    """The reply of the command ``conn`` has sent, then ``conn`` back to ``pool`` (a read
    that fails leaves it disconnected: redis-py's read does)."""
    try:
        return await conn.read_response()
    finally:
        await pool.release(conn)


async def _settle(fetch: asyncio.Task[Any]) -> None:
    """Wait for a request nobody will read, so the pages close with no task behind.

    It is not cancelled: its command is already sent, and a task cancelled before its
    first step never runs the ``finally`` that hands the connection back. The wait is one
    page's round trip, bounded by the socket timeout; a cancellation of the caller while
    it waits is raised (``asyncio.wait`` does not swallow it), and the request then ends
    on its own."""
    await asyncio.wait((fetch,))
    if not fetch.cancelled():
        fetch.exception()  # read by nobody: retrieved, so asyncio does not log it


def parse_cursor(cursor: str | None) -> str:
    """Normalise a cursor: ``None``/``""``/``"0"`` → ``"0-0"``, ``"<ms>"`` → ``"<ms>-0"``,
    ``"$"`` stays. Anything else raises :class:`InvalidCursor`."""
    if cursor is None or cursor in ("", "0"):
        return "0-0"
    if cursor == "$":
        return "$"
    match = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
    if match is None:
        raise InvalidCursor(f"invalid cursor {cursor!r}: expected '<ms>-<seq>', '0' or '$'")
    ms, seq = int(match.group(1)), int(match.group(2) or 0)
    if ms > _MAX_U64 or seq > _MAX_U64:
        raise InvalidCursor(f"invalid cursor {cursor!r}: out of range")
    return f"{ms}-{seq}"


class Reader:
    """Reads task streams. Share one per process; live tails share the hub's connections."""

    def __init__(self, redis: RedisClient, settings: StreamsSettings, hub: ReaderHub | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = settings.keys
        self.hub = hub
        self._raw = raw_stream_client(redis)
        self._pool = None if isinstance(redis, RedisCluster) else redis.connection_pool

    async def last_cursor(self, task_id: str) -> str | None:
        """Cursor of the newest entry, ``None`` for an empty or missing stream."""
        newest = await self.redis.xrevrange(self.keys.events(task_id), count=1)
        return str(newest[0][0]) if newest else None

    async def cursor_after_seq(self, task_id: str, seq: int) -> str:
        """The cursor after which the event of seq ``seq + 1`` comes: the cursor of the
        event whose seq is ``seq`` (OpenAI's ``starting_after``).

        ``0`` gives ``"0-0"``; a seq at or past the newest event gives the newest cursor
        (``"0-0"`` for an empty stream); a seq that retention dropped gives ``"0-0"``, from
        which a read starts with a ``gap`` marker. Seqs are dense and grow with entry ids,
        so this bisects the entries' milliseconds with one-entry XRANGE probes, then reads
        forward at most ``page_size`` entries at a time: a few round trips, however long
        the stream.
        """
        if seq < 0:
            raise UsageError(f"seq must be >= 0, got {seq}")
        key = self.keys.events(validate_task_id(task_id))
        if seq == 0:
            return "0-0"
        pipe = self._raw.pipeline(transaction=False)
        pipe.xrange(key, count=1)
        pipe.xrevrange(key, count=1)
        first, newest = await pipe.execute()
        if not first or not newest:
            return "0-0"
        lo_cursor, lo_seq = str(first[0][0]), entry_seq(first[0][1])
        if seq >= entry_seq(newest[0][1]):
            return str(newest[0][0])
        if seq < lo_seq:
            return "0-0"
        # Invariant: the wanted entry's milliseconds lie in [lo_ms, hi_ms].
        lo_ms, hi_ms = cursor_key(lo_cursor)[0], cursor_key(str(newest[0][0]))[0]
        page = self.settings.page_size
        while seq - lo_seq > page and hi_ms > lo_ms:
            mid = (lo_ms + hi_ms + 1) // 2
            probe = await self._raw.xrange(key, min=f"{mid}-0", count=1)
            if not probe:
                break
            probe_seq = entry_seq(probe[0][1])
            if probe_seq <= seq:
                lo_cursor, lo_seq = str(probe[0][0]), probe_seq
                lo_ms = cursor_key(lo_cursor)[0]
            else:
                hi_ms = mid - 1  # the first entry from ``mid`` is already past it
        while lo_seq < seq:
            entries = await self._raw.xrange(key, min=f"({lo_cursor}", count=min(seq - lo_seq, page))
            if not entries:
                break
            lo_cursor, lo_seq = str(entries[-1][0]), entry_seq(entries[-1][1])
        return lo_cursor

    async def _start(self, task_id: str, after: str) -> _Start:
        """Resolve ``$``, check the task exists, and read the first page (one round trip).

        A gap marker leads the items when history before them was trimmed.
        """
        key = self.keys.events(validate_task_id(task_id))
        after = parse_cursor(after)
        pipe = self._raw.pipeline(transaction=False)
        if after == "$":
            pipe.xrevrange(key, count=1)
        elif after != LAST_CURSOR:  # nothing follows the last id (and "(<last id>" is an error)
            pipe.xrange(key, min=f"({after}" if after != "0-0" else "-", count=self.settings.page_size)
        pipe.xrange(key, count=1)
        pipe.hmget(self.keys.meta(task_id), ["done", "last_id"])
        # the entry at the cursor, or the one before it when the cursor is no entry
        pipe.xrevrange(key, max=after if after != "$" else "+", count=1)
        replies = await pipe.execute()
        page = [] if after == LAST_CURSOR else replies.pop(0)
        first, (done, last_id), at_or_before = replies
        if (
            not first
            and done is None
            and last_id is None
            and not await self.redis.exists(self.keys.meta(task_id))
        ):
            raise TaskNotFound(f"task {task_id!r} does not exist (or expired)", task_id=task_id)
        end = str(last_id) if done == "1" and last_id else None
        shown = public_task_id(task_id)
        if after == "$":
            return _Start(str(page[0][0]) if page else "0-0", [], False, end)
        items: list[Item] = []
        trimmed = bool(first) and cursor_key(after) < cursor_key(first[0][0])
        if after != "0-0" and not trimmed and not (at_or_before and at_or_before[0][0] == after):
            # A cursor is always an entry the reader was given. One that is no entry
            # (yet not older than retention) was lost after the reader saw it: Redis
            # restarted without its last writes. Tell it, and go on from the last entry
            # that survived before it.
            kept = str(at_or_before[0][0]) if at_or_before else "0-0"
            last_seq = entry_seq(at_or_before[0][1]) if at_or_before else 0
            marker = reset_marker(shown, kept, last_seq, "the reader's cursor is no longer in the stream")
            items.append((kept, marker))
            return _Start(kept, items, True, end)
        if first:
            first_cursor, first_fields = first[0]
            first_seq = entry_seq(first_fields)
            if first_seq > 1 and cursor_key(after) < cursor_key(first_cursor):
                gap = {"type": "gap", "task_id": shown, "first_cursor": first_cursor,
                       "first_seq": first_seq, "id": after}  # fmt: skip
                items.append((after, gap))
        items.extend(decode_entries(page, shown))
        return _Start(after, items, len(page) >= self.settings.page_size, end)

    async def _pages(self, task_id: str, after: str, *, ahead: bool = False) -> AsyncIterator[list[Item]]:
        """Decoded XRANGE pages strictly after ``after`` until the end of the stream.

        ``ahead``: as soon as a page is in hand, the next one is asked for, before this one
        is yielded, so Redis reads it while the caller works through this one; one request
        at most is in flight, and the pages close only once it has ended (see
        :func:`_settle`). The first page here (a replay's second) is asked for only when the
        caller wants it, so a reader that stops within a replay's first page (a JSON page of
        the API) costs Redis no extra page read.
        """
        key = self.keys.events(task_id)
        size = self.settings.page_size
        shown = public_task_id(task_id)
        fetch: asyncio.Task[Any] | None = None
        try:
            while after != LAST_CURSOR:
                if fetch is not None:
                    # shielded: a cancelled reader must not cancel a request already sent
                    page, fetch = await asyncio.shield(fetch), None
                else:
                    page = await self._raw.xrange(key, min=f"({after}", count=size)
                if not page:
                    return
                after = page[-1][0]
                full = len(page) >= size
                if ahead and full and after != LAST_CURSOR:
                    fetch = await self._request(key, after)
                yield decode_entries(page, shown)
                if not full:
                    return
        finally:
            if fetch is not None:
                await _settle(fetch)

    async def _request(self, key: str, after: str) -> asyncio.Task[Any]:
        """Send ``XRANGE key (after + COUNT page_size`` now; the task reads its reply.

        The command is written before this returns: a task alone would not send it until
        the caller next yields to the event loop, which a consumer of a replay may not do
        for a whole page. The connection goes back to the pool once the reply is read.
        """
        query = ("XRANGE", key, f"({after}", "+", "COUNT", self.settings.page_size)
        pool = self._pool
        if pool is None:  # a cluster client picks the node's connection: sent when the loop runs
            return asyncio.create_task(self._raw.execute_command(*query))
        conn = await pool.get_connection()
        try:
            await conn.send_command(*query)
        except BaseException:
            await pool.release(conn)  # a failed send has disconnected it
            raise
        return asyncio.create_task(_reply(pool, conn))

    async def _catch_up(self, task_id: str, tracker: Tracker, flt: EventFilter) -> AsyncIterator[Item]:
        """What is stored after the tracker's cursor, filtered; ``completed`` ends it and
        sets ``tracker.ended``."""
        async for page in self._pages(task_id, tracker.cursor):
            for cursor, event in page:
                for item in tracker.accept(cursor, event):
                    if flt.matches(item[1]):
                        yield item
                if event["type"] == "completed":
                    tracker.ended = True
                    return

    async def replay(
        self, task_id: str, after: str = "0", filter: EventFilter | None = None
    ) -> AsyncIterator[Item]:
        """Every stored event after ``after`` (``"0"``: from the start), then stop."""
        pages = self.replay_pages(task_id, after, filter)
        async with contextlib.aclosing(pages):  # type: ignore[type-var]
            async for page in pages:
                for item in page:
                    yield item

    async def replay_pages(
        self, task_id: str, after: str = "0", filter: EventFilter | None = None
    ) -> AsyncIterator[list[Item]]:
        """:meth:`replay` a page at a time: the events of each XRANGE page that pass
        ``filter`` (a page may be empty when the filter takes none of its events; ``gap``
        markers lead the first), for a reader that works on batches (an export, a page of
        the API), which then pays no per-event step of an async generator. The next page
        is read while the caller works through this one."""
        flt = filter or _ALL
        everything = flt.passes_everything
        start = await self._start(task_id, after)
        after, items, full = start.after, start.items, start.full
        for cursor, event in items:
            after = cursor if event["type"] != "gap" else after
        yield items if everything else [item for item in items if flt.matches(item[1])]
        if not full:
            return
        async with contextlib.aclosing(self._pages(task_id, after, ahead=True)) as pages:  # type: ignore[type-var]
            async for page in pages:
                yield page if everything else [item for item in page if flt.matches(item[1])]

    async def follow(self, task_id: str, after: str = "0", filter: EventFilter | None = None) -> Follow:
        """Start a :class:`Follow` of ``task_id`` after ``after`` (``"$"``: new events only):
        its ``head`` is what the first read found, replayed as :meth:`tail` yields it."""
        flt = filter or _ALL
        start = await self._start(task_id, after)
        follow = Follow(self, task_id, Tracker(task_id, start.after), flt)
        follow.head, ended = _admit(start.items, follow.tracker, flt)
        follow.caught_up = not start.full
        cursor = follow.tracker.cursor
        if ended or (start.end is not None and cursor_key(cursor) >= cursor_key(start.end)):
            follow.ended = follow.tracker.ended = True
        return follow

    async def tail(
        self,
        task_id: str,
        after: str = "0",
        filter: EventFilter | None = None,
        *,
        idle_timeout_s: float | None = None,
    ) -> AsyncIterator[Item]:
        """Replay from ``after`` (``"$"``: only new events), then follow live until
        ``completed``. With ``idle_timeout_s``, a stream silent for that long ends the
        iteration (the caller may resume from its last cursor)."""
        if self.hub is None:
            raise UsageError("tail() needs a Reader built with a ReaderHub: Reader(redis, settings, hub)")
        flt = filter or _ALL
        start = await self._start(task_id, after)
        tracker = Tracker(task_id, start.after)
        replayed, ended = _admit(start.items, tracker, flt)
        for item in replayed:
            yield item
        if ended or (start.end is not None and cursor_key(tracker.cursor) >= cursor_key(start.end)):
            return  # the task ended at or before this cursor: nothing more will come
        key, full = self.keys.events(task_id), start.full
        while True:
            if full:
                # Catch up by pages without a live subscription, so a long history does
                # not overflow the hub queue while it is being read.
                async with contextlib.aclosing(self._catch_up(task_id, tracker, flt)) as items:  # type: ignore[type-var]
                    async for item in items:
                        yield item
                if tracker.ended:
                    return
            sub = await self.hub.subscribe(key, tracker.cursor)
            try:
                # Entries stored between the catch-up and the subscription: read them once
                # more; the tracker drops what was already yielded.
                async with contextlib.aclosing(self._catch_up(task_id, tracker, flt)) as items:  # type: ignore[type-var]
                    async for item in items:
                        yield item
                if tracker.ended:
                    return
                while not sub.overflowed:
                    batch = await sub.get(idle_timeout_s)
                    if not batch and not sub.overflowed:
                        return  # idle timeout
                    for cursor, event in batch:
                        accepted = tracker.accept(cursor, event)
                        for item in accepted:
                            if flt.matches(item[1]):
                                yield item
                        if accepted and event["type"] == "completed":
                            return
            finally:
                sub.close()
            full = True  # overflowed: catch up by XRANGE from ``last``, then resubscribe
