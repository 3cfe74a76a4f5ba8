"""Consumer groups on task streams (PROTOCOL section 7) and the cross-task feed.

A group is created at the start of the stream, so a group that joins late still sees
every event. Within one group each event goes to one consumer (load balancing); groups
are independent (fan-out). Delivery is at-least-once: an entry stays pending until acked;
entries of a consumer that died are claimed by another after ``min_idle_ms`` (XAUTOCLAIM);
an entry delivered more than ``max_deliveries`` times is copied to the task's dead-letter
stream with the reason and acked, atomically, so one poison event cannot stall a group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from .codec import decode
from .connection import RedisClient
from .dead_letters import list_dead_letters
from .errors import ClosedError, GroupLimitReached, TaskNotFound, UsageError
from .events import EventFilter
from .keys import public_task_id, validate_group_name, validate_task_id
from .reader import parse_cursor
from .scripts import CREATE_GROUP, DEAD_LETTER
from .settings import StreamsSettings

__all__ = ["DeadLetter", "GroupConsumer", "GroupInfo", "group_info", "stream_entries"]

Item = tuple[str, dict[str, Any]]
_ALL = EventFilter.parse("all")
#: pending entries acked per round trip by ``ack_through``
_ACK_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One consumer group of a stream."""

    name: str
    consumers: int
    pending: int
    last_delivered: str
    #: events not yet delivered to the group (exact: seqs are dense)
    lag: int | None
    consumer_pending: dict[str, int]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry a group gave up on."""

    cursor: str
    reason: str
    deliveries: int
    consumer: str


async def group_info(redis: RedisClient, settings: StreamsSettings, task_id: str) -> list[GroupInfo]:
    """Every group of the task's stream: consumers, pending, lag and last delivered cursor.

    Two round trips however many groups: the groups and the task's last seq, then one
    pipeline for every group's consumers and last delivered entry."""
    key = settings.keys.events(task_id)
    pipe = redis.pipeline(transaction=False)
    pipe.xinfo_groups(key)
    pipe.hget(settings.keys.meta(task_id), "seq")
    groups, last_seq_raw = await pipe.execute(raise_on_error=False)
    if isinstance(groups, ResponseError):
        if "no such key" in str(groups).lower():
            raise TaskNotFound(f"task {task_id!r} does not exist (or expired)", task_id=task_id)
        raise groups
    last_seq = int(last_seq_raw or 0)
    if not groups:
        return []
    pipe = redis.pipeline(transaction=False)
    for group in groups:
        last = str(group["last-delivered-id"])
        pipe.xrange(key, min=last, max=last)
        pipe.xinfo_consumers(key, str(group["name"]))
    replies = await pipe.execute()
    return [
        _group_view(group, entry, consumers, last_seq)
        for group, entry, consumers in zip(groups, replies[::2], replies[1::2], strict=True)
    ]


def _group_view(group: Any, entry: Any, consumers: Any, last_seq: int) -> GroupInfo:
    last = str(group["last-delivered-id"])
    lag: int | None = None
    if last in ("0-0", "0"):
        lag = last_seq
    elif entry:
        lag = max(last_seq - int(entry[0][1]["s"]), 0)
    elif group.get("lag") is not None:
        lag = int(group["lag"])
    return GroupInfo(
        name=str(group["name"]),
        consumers=int(group["consumers"]),
        pending=int(group["pending"]),
        last_delivered=last,
        lag=lag,
        consumer_pending={str(c["name"]): int(c["pending"]) for c in consumers},
    )


class GroupConsumer:
    """One consumer of one group on one task's stream.

    ::

        async with GroupConsumer(redis, settings, task_id, "billing", "worker-1") as c:
            async for cursor, event in c:
                handle(event)
                await c.ack(cursor)

    Iteration first re-delivers this consumer's own pending entries (after a restart),
    then new ones; between blocking reads it claims entries idle for ``min_idle_ms`` in
    other consumers. It ends after handing out ``completed``, or once the task has ended
    and the group has nothing left to deliver or ack. Entries the filter rejects are
    acked on the spot: this consumer has nothing to do for them.
    """

    def __init__(
        self,
        redis: RedisClient,
        settings: StreamsSettings,
        task_id: str,
        group: str,
        consumer: str,
        *,
        filter: EventFilter | None = None,
        max_deliveries: int = 5,
        min_idle_ms: int = 30_000,
        count: int = 100,
        block_ms: int | None = None,
        max_groups: int | None = None,
    ) -> None:
        if max_deliveries < 1 or min_idle_ms < 0 or count < 1 or (max_groups is not None and max_groups < 1):
            raise UsageError("max_deliveries, count and max_groups must be >= 1, min_idle_ms >= 0")
        self.task_id = validate_task_id(task_id)
        self.group = validate_group_name(group)
        self.consumer = validate_group_name(consumer, "consumer")
        self.redis = redis
        self.settings = settings
        self.filter = filter or _ALL
        self.max_deliveries = max_deliveries
        #: groups the stream may have; creating one more raises :class:`GroupLimitReached`
        self.max_groups = max_groups
        self.min_idle_ms = min_idle_ms
        self.count = count
        # A blocking read shares the pooled connection's socket timeout: stay well under it.
        ceiling = max(int(settings.command_timeout_s * 1000) // 2, 1)
        self.block_ms = min(settings.block_ms if block_ms is None else block_ms, ceiling)
        self.key = settings.keys.events(task_id)
        self.dead_key = settings.keys.dead(task_id)
        self._dead_letter = redis.register_script(DEAD_LETTER)
        self._create_group = redis.register_script(CREATE_GROUP)
        self._history_cursor: str | None = "0-0"  # own pending entries still to re-read
        self._last_claim = 0.0
        self._claim_cursor = "0-0"
        self._open = False
        self._closed = False
        self.dead_lettered: list[DeadLetter] = []

    async def __aenter__(self) -> GroupConsumer:
        await self.ensure_group()
        self._open = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading. Pending entries stay pending for this or another consumer."""
        self._closed = True

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("cannot read from a closed group consumer")
        if not self._open:
            raise ClosedError("use the group consumer as 'async with' before reading")

    async def ensure_group(self) -> None:
        """Create the group at the start of the stream; an existing group is kept. Past
        ``max_groups`` groups, :class:`GroupLimitReached` (checked and created atomically)."""
        limit = self.max_groups if self.max_groups is not None else 2**31
        try:
            await self._create_group(keys=[self.key], args=[self.group, limit])
        except ResponseError as exc:
            code, _, count = str(exc).partition(" ")
            if code == "NOTASK":
                raise TaskNotFound(
                    f"task {self.task_id!r} does not exist (or expired)", task_id=self.task_id
                ) from None
            if code == "GROUPLIMIT":
                raise GroupLimitReached(
                    f"task {public_task_id(self.task_id)!r} already has {count} consumer groups (the limit); "
                    "read through one of them (GET .../groups lists them)",
                    task_id=self.task_id,
                ) from None
            raise

    # -- reading ---------------------------------------------------------------------------

    async def read(self, count: int | None = None, block_ms: int | None = None) -> list[Item]:
        """One delivery: own pending first, then stale entries of others, then new ones.

        Returns ``[]`` when nothing arrived within ``block_ms``.
        """
        self._check()
        count = count or self.count
        # Entries dead-lettered on the way are not returned: go on to the next deliverable
        # ones rather than answer an empty read while events are waiting.
        while self._history_cursor is not None:
            items = await self._read_history(count)
            if items:
                return items
        if self.min_idle_ms and time.monotonic() - self._last_claim >= self.min_idle_ms / 2000:
            while True:
                claimed = await self.claim_stale(count=count)
                if claimed or self._claim_cursor == "0-0":
                    break
            if claimed:
                return claimed
        block = self.block_ms if block_ms is None else block_ms
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {self.key: ">"}, count=count, block=block or None
        )
        return await self._accept(stream_entries(reply), redelivered=False)

    async def _read_history(self, count: int) -> list[Item]:
        assert self._history_cursor is not None
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {self.key: self._history_cursor}, count=count
        )
        entries = stream_entries(reply)
        if not entries:
            self._history_cursor = None
            return []
        self._history_cursor = entries[-1][0]
        return await self._accept(entries, redelivered=True)

    async def claim_stale(self, min_idle_ms: int | None = None, count: int | None = None) -> list[Item]:
        """Take over entries idle for ``min_idle_ms`` in any consumer (XAUTOCLAIM)."""
        self._check()
        self._last_claim = time.monotonic()
        idle = self.min_idle_ms if min_idle_ms is None else min_idle_ms
        reply = await self.redis.xautoclaim(
            self.key, self.group, self.consumer, idle, start_id=self._claim_cursor, count=count or self.count
        )
        self._claim_cursor = str(reply[0])
        claimed = [(str(c), f) for c, f in reply[1]]
        return await self._accept(claimed, redelivered=True)

    async def _accept(self, entries: list[tuple[str, Any]], *, redelivered: bool) -> list[Item]:
        """Decode, dead-letter the over-delivered, ack what the filter rejects."""
        if not entries:
            return []
        counts: dict[str, int] = {}
        if redelivered:
            pending = await self.redis.xpending_range(
                self.key, self.group, min=entries[0][0], max=entries[-1][0],
                count=len(entries) + 16, consumername=self.consumer,
            )  # fmt: skip
            counts = {str(p["message_id"]): int(p["times_delivered"]) for p in pending}
        items: list[Item] = []
        to_ack: list[str] = []
        for cursor, fields in entries:
            if fields is None:
                to_ack.append(cursor)  # trimmed away while pending: nothing left to process
                continue
            deliveries = counts.get(cursor, 1)
            if deliveries > self.max_deliveries:
                await self.dead_letter(cursor, f"delivered {deliveries} times", deliveries)
                continue
            event = decode(cursor, fields, public_task_id(self.task_id))
            if self.filter.matches(event):
                items.append((cursor, event))
            else:
                to_ack.append(cursor)
        if to_ack:
            await self.redis.xack(self.key, self.group, *to_ack)
        return items

    async def dead_letter(self, cursor: str, reason: str, deliveries: int = 0) -> None:
        """Move one entry to the task's dead-letter stream and ack it, atomically."""
        await self._dead_letter(
            keys=[self.key, self.dead_key],
            args=[self.group, cursor, reason, self.consumer, deliveries],
        )
        self.dead_lettered.append(DeadLetter(cursor, reason, deliveries, self.consumer))

    async def ack(self, *cursors: str) -> int:
        """Acknowledge processed entries; returns how many were pending."""
        if not cursors:
            return 0
        return int(await self.redis.xack(self.key, self.group, *[parse_cursor(c) for c in cursors]))

    async def ack_through(self, cursor: str) -> int:
        """Ack every pending entry of this consumer up to and including ``cursor``
        (what an SSE reconnect with ``Last-Event-ID`` means), and re-deliver the rest.
        All of them, in pages of ``_ACK_PAGE``: acked entries leave the pending list, so
        each page starts at the front again."""
        cursor = parse_cursor(cursor)
        acked = 0
        while True:
            pending = await self.redis.xpending_range(
                self.key, self.group, min="-", max=cursor, count=_ACK_PAGE, consumername=self.consumer
            )
            ids = [str(p["message_id"]) for p in pending]
            done = int(await self.redis.xack(self.key, self.group, *ids)) if ids else 0
            acked += done
            if len(ids) < _ACK_PAGE or done == 0:
                break
        self._history_cursor = "0-0"
        return acked

    async def finished(self) -> bool:
        """The task ended and the group has nothing left to deliver or to be acked."""
        done = await self.redis.hget(self.settings.keys.meta(self.task_id), "done")
        if done != "1":
            return False
        infos = await group_info(self.redis, self.settings, self.task_id)
        mine = next((g for g in infos if g.name == self.group), None)
        return mine is not None and mine.lag == 0 and mine.pending == 0

    def __aiter__(self) -> AsyncIterator[Item]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Item]:
        while not self._closed:
            items = await self.read()
            if not items:
                if await self.finished():
                    return
                if self._history_cursor is None:
                    await asyncio.sleep(0)  # a non-blocking read (block_ms=0) must still yield
                continue
            for cursor, event in items:
                yield cursor, event
                if event["type"] == "completed":
                    return

    async def dead_letters(self) -> list[Item]:
        """The task's dead-lettered entries (of every group), decoded, each with its
        ``dl_*`` reasons."""
        return await list_dead_letters(self.redis, self.settings, self.task_id)


def stream_entries(reply: Any) -> list[tuple[str, Any]]:
    if not reply:
        return []
    items = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[str, Any]] = []
    for _key, entries in items:
        if isinstance(entries, list) and entries and isinstance(entries[0], list):
            entries = entries[0]  # RESP3 shape
        out.extend((str(c), f) for c, f in entries)
    return out
