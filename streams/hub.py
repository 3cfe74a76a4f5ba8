"""The reader hub: many live tails share a few blocking XREAD connections.

Streams are grouped into shards (on a single node, up to ``hub_shard_size`` streams per
shard; on a Cluster, one shard per hash slot, since a multi-key XREAD must stay in one
slot). Each shard owns one dedicated connection and one loop that blocks in XREAD on all
its streams, decodes each new entry once, and hands it to every subscription of that
stream. A subscription whose queue passes ``reader_queue`` entries is dropped from the hub
(``overflowed``): its reader falls back to XRANGE catch-up from its own cursor, so a slow
reader costs the hub no memory and loses nothing.

A **listener** subscription (:meth:`ReaderHub.listen`) has no queue: the shard calls it
with each batch of decoded entries as soon as they are read, in the shard's loop. The API's
broadcast (one listener per task it serves, however many clients read the task) writes
every event's frame to its clients from there.

When a stream joins a shard that is already blocked, the hub wakes it with
``CLIENT UNBLOCK`` so the next XREAD includes the stream at once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ResponseError

from agentstream.protocol import cursor_key

from .codec import decode_entry
from .connection import RedisClient, dedicated_connection
from .errors import TRANSIENT_REDIS_ERRORS, ClosedError
from .keys import public_task_id
from .pace import Pace
from .settings import StreamsSettings

__all__ = ["Listener", "ReaderHub", "Subscription"]

logger = logging.getLogger(__name__)

Entry = tuple[str, dict[str, Any]]
_WAKE_TRIES = 50
#: a shard lingers after a read only while entries come at least this many per linger
LINGER_BATCH = 4

#: what a hub loop survives: the network, and a MOVED or LOADING reply on a Cluster
_RECOVERABLE: tuple[type[Exception], ...] = (*TRANSIENT_REDIS_ERRORS, ResponseError)


def _identity(response: Any, **_: Any) -> Any:
    return response


def _bulk(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%b\r\n" % (len(data), data)


async def _xread(client: RedisClient, positions: dict[str, str], count: int, block_ms: int) -> Any:
    """``XREAD COUNT <count> BLOCK <ms> STREAMS <keys> <ids>`` on the client's one
    connection, packed here and read raw: a third of ``client.xread``'s CPU (24 against
    67 us a call with 20 streams), and a shard's loop sends one per batch of new entries.
    The connection's own socket timeout bounds the read."""
    connection = client.connection
    if connection is None:  # not connected yet: the client connects on its first command
        return await client.xread(positions, count=count, block=block_ms)
    head = (b"XREAD", b"COUNT", b"%d" % count, b"BLOCK", b"%d" % block_ms, b"STREAMS")
    parts = [b"*%d\r\n" % (len(head) + 2 * len(positions)), *map(_bulk, head)]
    parts += map(_bulk, positions)
    parts += map(_bulk, positions.values())
    await connection.send_packed_command(b"".join(parts), check_health=False)
    return await connection.read_response()


class Listener(Protocol):
    """What :meth:`ReaderHub.listen` calls, in the shard's loop: keep both quick and never
    raise (an exception is logged and ends the listening)."""

    def entries(self, entries: list[Entry]) -> None:
        """New entries of the stream, in order (may repeat entries at or before ``since``)."""

    def abandoned(self) -> None:
        """The hub stopped serving the stream (it closed): read by XRANGE from now on."""


class Subscription:
    """One live reader's queue of decoded entries of one stream (or, with a listener, the
    registration of that listener)."""

    def __init__(self, shard: _Shard, key: str, listener: Listener | None = None) -> None:
        self.key = key
        self._shard = shard
        self._entries: collections.deque[Entry] = collections.deque()
        self._ready = asyncio.Event()
        self._listener = listener
        self.overflowed = False
        self.closed = False
        #: every entry after this cursor reaches the subscription (from its start on, then
        #: the last entry handed to it)
        self.since = "0-0"

    def _push(self, entries: list[Entry], limit: int) -> bool:
        if self._listener is not None:
            try:
                self._listener.entries(entries)
            except Exception:
                logger.exception("reader hub listener of %s failed; it stops listening", self.key)
                self._abandon()
                return False
            return True
        if len(self._entries) + len(entries) > limit:
            self.overflowed = True
            self._entries.clear()
            self._ready.set()
            return False
        self._entries.extend(entries)
        self._ready.set()
        return True

    async def get(self, wait_s: float | None = None) -> list[Entry]:
        """Wait for entries (at most ``wait_s`` seconds; ``[]`` then). After an overflow it
        returns ``[]`` at once and ``overflowed`` is set: resume by XRANGE."""
        if not self._entries and not self.overflowed:
            if self.closed:
                raise ClosedError("cannot read from a closed subscription")
            self._ready.clear()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow a
                # cancellation that lands as the event is set.
                async with asyncio.timeout(wait_s):
                    await self._ready.wait()
            except TimeoutError:
                return []
        batch = list(self._entries)
        self._entries.clear()
        return batch

    def _abandon(self) -> None:
        # The hub stopped serving this stream: the reader resumes by XRANGE.
        self.overflowed = True
        self._ready.set()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.abandoned()

    def close(self) -> None:
        """Leave the hub. Idempotent."""
        if not self.closed:
            self.closed = True
            self._shard.remove(self)


class _Shard:
    def __init__(self, hub: ReaderHub, shard_id: object, node: tuple[str, int] | None) -> None:
        self.hub = hub
        self.shard_id = shard_id
        self.node = node
        self.positions: dict[str, str] = {}
        self.subs: dict[str, set[Subscription]] = {}
        self.version = 0
        self.included = 0
        self.client_id: int | None = None
        self.conn: RedisClient | None = None
        self.control: RedisClient | None = None
        self.task: asyncio.Task[None] | None = None
        # entries per second this shard reads, to linger only while they come fast
        self.pace = Pace(hub.linger_s, LINGER_BATCH)

    def __len__(self) -> int:
        return len(self.positions)

    def add(self, sub: Subscription, after: str) -> int:
        subs = self.subs.setdefault(sub.key, set())
        sub.since = after
        if not subs:
            self.positions[sub.key] = after
        elif cursor_key(after) < cursor_key(position := self.positions[sub.key]):
            # The reader is behind the shard: it gets entries after the shard's position
            # only, and its XRANGE catch-up covers the difference.
            sub.since = position
        subs.add(sub)
        self.version += 1
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name=f"agentstream-hub-{self.shard_id}"
            )
        return self.version

    def remove(self, sub: Subscription) -> None:
        subs = self.subs.get(sub.key)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self.subs[sub.key]
            self.positions.pop(sub.key, None)

    async def wake(self, version: int) -> None:
        """Make sure the loop's next XREAD includes the streams added up to ``version``."""
        for _ in range(_WAKE_TRIES):
            if self.included >= version or self.task is None:
                return
            if self.client_id is not None and self.control is not None:
                try:
                    if await self.control.client_unblock(self.client_id):
                        return
                except _RECOVERABLE:
                    return  # the loop is reconnecting and will pick the stream up
            await asyncio.sleep(0.001)

    async def _connect(self) -> RedisClient:
        if self.conn is None:
            host, port = self.node or ("", 0)
            self.conn = dedicated_connection(self.hub.settings, host, port)
            # Raw XREAD replies: entries are decoded by position, not via redis-py dicts.
            self.conn.set_response_callback("XREAD", _identity)
            if self.node is not None:
                self.control = dedicated_connection(self.hub.settings, host, port)
            else:
                assert isinstance(self.hub.redis, Redis)
                self.control = self.hub.redis
        self.client_id = int(await self.conn.client_id())
        return self.conn

    async def _run(self) -> None:
        settings = self.hub.settings
        backoff = 0.05
        try:
            while self.positions:
                try:
                    conn = await self._connect() if self.client_id is None else self.conn
                    assert conn is not None
                    if not self.positions:
                        break  # every reader left while the connection was being made
                    self.included = self.version
                    issued = dict(self.positions)
                    reply = await _xread(conn, issued, settings.page_size, settings.block_ms)
                    backoff = 0.05
                except _RECOVERABLE as exc:
                    # Never let the loop die while readers wait: reconnect (to the slot's
                    # current node, after a MOVED on a Cluster) with backoff.
                    logger.warning("reader hub shard %s: %r; retrying in %.2fs", self.shard_id, exc, backoff)
                    await self._close_connections()
                    self._refresh_node()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                if reply:
                    delivered = self._deliver(reply, issued)
                    if self._busy(delivered, asyncio.get_running_loop().time()):
                        # Let more entries gather before the next read: fewer round trips
                        # (and writes) per entry when many streams trickle.
                        await asyncio.sleep(self.hub.linger_s)
        finally:
            self.task = None
            await self._close_connections()
            if self.positions:
                # Closed while readers still wait: wake them so they resume by XRANGE.
                for subs in list(self.subs.values()):
                    for sub in list(subs):
                        sub._abandon()

    def _busy(self, delivered: int, now: float) -> bool:
        """Whether entries come fast enough to linger after this read: at least
        :data:`LINGER_BATCH` of them, on average, in one linger. A trickle (one stream's
        tokens, 10 ms apart) is never held back: lingering there only adds latency (the
        1-task latency cell went from 5.1 to 11.6 ms p99 with a fixed 10 ms linger)."""
        self.pace.observe(delivered, now)
        return self.pace.busy(now)

    def _deliver(self, reply: list[Any] | dict[str, Any], issued: dict[str, str]) -> int:
        """Hand the entries of ``reply`` to the subscribers; returns how many were read."""
        delivered = 0
        items = reply.items() if isinstance(reply, dict) else reply
        limit = self.hub.settings.reader_queue
        keys = self.hub.settings.keys
        for key, raw_entries in items:
            if not raw_entries or key not in self.positions:
                continue
            task_id = public_task_id(keys.task_id_of(key))
            entries = [(cursor, decode_entry(cursor, fields, task_id)) for cursor, fields in raw_entries]
            delivered += len(entries)
            last = self.positions[key] = entries[-1][0]
            start = cursor_key(issued[key]) if key in issued else None
            for sub in list(self.subs.get(key, ())):
                if sub._listener is not None and (start is None or cursor_key(sub.since) < start):
                    # Read from further on than this listener asked for (the XREAD was
                    # sent before it joined): it would miss entries; it reads by XRANGE.
                    sub._abandon()
                    self.remove(sub)
                elif sub._push(entries, limit):
                    sub.since = last
                else:
                    self.remove(sub)
        return delivered

    def _refresh_node(self) -> None:
        if self.node is not None and self.positions:
            node = self.hub.redis.get_node_from_key(next(iter(self.positions)))
            self.node = (node.host, node.port)

    async def _close_connections(self) -> None:
        conn, control = self.conn, self.control
        self.conn = self.control = None
        self.client_id = None
        if conn is not None:
            await conn.aclose()
        if control is not None and control is not self.hub.redis:
            await control.aclose()


class ReaderHub:
    """Shares blocking reads among live readers. An async context manager; one per process.

    ``async with ReaderHub(redis, settings) as hub: sub = await hub.subscribe(key, after)``
    """

    def __init__(self, redis: RedisClient, settings: StreamsSettings, *, linger_s: float = 0.0) -> None:
        self.redis = redis
        self.settings = settings
        #: pause of a shard after each batch it delivered, before it reads again
        self.linger_s = linger_s
        self._shards: dict[object, _Shard] = {}
        self._closed = False
        self._next_shard = 0

    async def __aenter__(self) -> ReaderHub:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def subscriptions(self) -> int:
        """Live subscriptions across all shards."""
        return sum(len(subs) for shard in self._shards.values() for subs in shard.subs.values())

    @property
    def connections(self) -> int:
        """Blocking connections the hub holds right now."""
        return sum(1 for shard in self._shards.values() if shard.conn is not None)

    def _shard_for(self, key: str) -> _Shard:
        if isinstance(self.redis, RedisCluster):
            slot = key_slot(key.encode())
            shard = self._shards.get(slot)
            if shard is None:
                node = self.redis.get_node_from_key(key)
                shard = self._shards[slot] = _Shard(self, slot, (node.host, node.port))
            return shard
        for shard in self._shards.values():
            if key in shard.subs:
                return shard
        for shard in self._shards.values():
            if len(shard) < self.settings.hub_shard_size:
                return shard
        self._next_shard += 1
        shard = self._shards[self._next_shard] = _Shard(self, self._next_shard, None)
        return shard

    async def subscribe(self, key: str, after: str) -> Subscription:
        """Receive every entry of stream ``key`` stored after cursor ``after`` from now on
        (entries the shard already passed are not replayed: catch up with XRANGE; the
        subscription's ``since`` says from where it receives every entry)."""
        return await self._add(key, after, None)

    async def listen(self, key: str, after: str, listener: Listener) -> Subscription:
        """Call ``listener`` with the entries of stream ``key`` stored after ``after`` as
        the hub reads them (after ``sub.since``, as :meth:`subscribe`); ``close()`` the
        returned subscription to stop."""
        return await self._add(key, after, listener)

    async def _add(self, key: str, after: str, listener: Listener | None) -> Subscription:
        if self._closed:
            raise ClosedError("cannot subscribe to a closed reader hub")
        shard = self._shard_for(key)
        sub = Subscription(shard, key, listener)
        version = shard.add(sub, after)
        try:
            await shard.wake(version)
        except BaseException:
            sub.close()  # cancelled while waking the shard: leave no orphan subscription
            raise
        return sub

    async def aclose(self) -> None:
        """Stop every shard loop and close its connections."""
        self._closed = True
        tasks = [shard.task for shard in self._shards.values() if shard.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.command_timeout_s)
        self._shards.clear()
