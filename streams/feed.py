"""The task feed: one ``created`` and one ``ended`` entry per task, for services that
follow all tasks (PROTOCOL section 2)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.exceptions import ResponseError

from .connection import RedisClient
from .errors import UsageError
from .groups import Item, stream_entries
from .keys import validate_group_name
from .reader import parse_cursor
from .settings import StreamsSettings

__all__ = ["FeedConsumer"]


class FeedConsumer:
    """Follow the task feed (one ``created`` and one ``ended`` entry per task) for services
    that watch all tasks. Without ``group``, every follower sees every entry from its own
    cursor; with ``group`` + ``consumer``, the group's consumers share them, acked by
    :meth:`ack`."""

    def __init__(
        self,
        redis: RedisClient,
        settings: StreamsSettings,
        *,
        after: str = "$",
        group: str | None = None,
        consumer: str | None = None,
        block_ms: int | None = None,
    ) -> None:
        if (group is None) != (consumer is None):
            raise UsageError("give both group and consumer, or neither")
        self.redis = redis
        self.settings = settings
        self.key = settings.keys.tasks
        self.cursor = parse_cursor(after)
        self.group = validate_group_name(group) if group else None
        self.consumer = validate_group_name(consumer, "consumer") if consumer else None
        ceiling = max(int(settings.command_timeout_s * 1000) // 2, 1)
        self.block_ms = min(settings.block_ms if block_ms is None else block_ms, ceiling)
        self._pending_first = True

    async def read(self, count: int = 100) -> list[Item]:
        """The next entries (``[]`` after ``block_ms`` without any)."""
        if self.group is None:
            if self.cursor == "$":
                newest = await self.redis.xrevrange(self.key, count=1)
                self.cursor = str(newest[0][0]) if newest else "0-0"
            reply = await self.redis.xread({self.key: self.cursor}, count=count, block=self.block_ms)
            entries = stream_entries(reply)
            if entries:
                self.cursor = entries[-1][0]
            return [(c, dict(f)) for c, f in entries]
        assert self.consumer is not None
        if self._pending_first:
            reply = await self.redis.xreadgroup(self.group, self.consumer, {self.key: "0-0"}, count=count)
            entries = [(c, f) for c, f in stream_entries(reply) if f is not None]
            if entries:
                return [(c, dict(f)) for c, f in entries]
            self._pending_first = False
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {self.key: ">"}, count=count, block=self.block_ms
        )
        return [(c, dict(f)) for c, f in stream_entries(reply) if f is not None]

    async def ensure_group(self, start: str = "0") -> None:
        """Create the feed group (``start="$"``: only tasks from now on)."""
        if self.group is None:
            raise UsageError("ensure_group needs a group")
        try:
            await self.redis.xgroup_create(self.key, self.group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def ack(self, *cursors: str) -> int:
        """Acknowledge feed entries of the group."""
        if self.group is None or not cursors:
            return 0
        return int(await self.redis.xack(self.key, self.group, *cursors))

    def __aiter__(self) -> AsyncIterator[Item]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Item]:
        if self.group is not None:
            await self.ensure_group()
        while True:
            for item in await self.read():
                yield item
