"""The flusher shared by every writer of one Redis client: the pending batches of many
tasks go to Redis in one round trip.

A worker runs hundreds of attempts in one process. Each writer flushing on its own cost one
EVALSHA, one socket write and one trip through redis-py's command path (~10-15 µs of
``pack_command`` and timeouts alone) per token of each task. Here a writer with buffered
events only marks itself pending; the one flusher of its Redis client writes, in one
``send`` on one connection, one EVALSHA of the append script per pending writer, packed by
hand, then reads the replies in order and hands each writer its own. Every task is still
fenced and dense in its own script call: the batching is of calls, not of tasks' events.

Latency: a lone event leaves as soon as the event loop is free (the flusher is woken, not
timed); batches form from what arrives while a round trip is in flight, exactly as with a
writer of its own. At a model's pace no round trip is in flight when the next token comes
(each task's tokens are tens of ms apart), so each token paid a send and a reply of its
own; on this VM that is most of a token's cost (the socket write alone was 27% of the
worker's CPU). So while two or more of the process's tasks stream and their writers
schedule at least :data:`LINGER_BATCH` batches per linger on average
(``StreamsSettings.flush_linger_ms``, off by default; with 2 ms that is a worker running
20 tasks at 33 tokens/s), the flusher waits one linger before a round trip and takes them
all in it: each token waits at most that long. One task alone, however fast, is never held
back. Measured with 2 ms at 50 tasks x 33 tokens/s: round trips per event 0.44 -> 0.17,
the bare writer's CPU per event 160 -> 123 µs, a token's p50 latency to a live tail +2-3 ms
(bench/worker_bench.py): a trade for an operator to make, not a default.

Failures stay with the task they belong to where they can:

=====================================  =================================================
what happened                          what the writers see
=====================================  =================================================
an error reply (fenced, completed...)  that writer fails; the others in the round trip
                                       are stored
NOSCRIPT (Redis restarted)             the script is loaded and those calls resent
connection lost, timeout               the whole round trip is resent (a batch already
                                       applied is recognised by its seq); once the
                                       retries are spent, every writer in it fails with
                                       the connection error and keeps its buffer for its
                                       next ``flush``
=====================================  =================================================

A Redis Cluster has no single connection for every task: there each pending writer's call
goes out on its own, concurrently, through redis-py.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentstream.telemetry.tracing import start_span, tracing_enabled

from .connection import RedisClient
from .errors import TRANSIENT_REDIS_ERRORS
from .pace import STALE_LINGERS, Pace
from .scripts import APPEND

__all__ = ["Flusher", "flusher_for"]

logger = logging.getLogger(__name__)

#: delays between the attempts of one round trip after a connection failure
RETRY_DELAYS_S = (0.05, 0.2, 0.5)
#: linger before a round trip only while this many writers' batches come per linger
LINGER_BATCH = 1.0
#: how long an idle flusher keeps its connection (and its task) for the next event: at a
#: model's pace (a token every few ms per task) it is never released
LINGER_S = 1.0


class PendingWriter(Protocol):
    """What the flusher needs of a writer (:class:`~streams.writer.StreamWriter`)."""

    task_id: str

    def _take_batch(self) -> Sequence[Any] | None: ...

    def _packed(self, batch: Sequence[Any]) -> bytes: ...

    async def _send(self, batch: Sequence[Any]) -> list[Any]: ...

    def _stored(self, batch: Sequence[Any], reply: list[Any]) -> None: ...

    def _failed(self, exc: BaseException) -> None: ...

    def _trace_parent(self) -> Any: ...


class Flusher:
    """Sends the pending batches of the writers of one Redis client, all in one round trip.

    Get the one of a client with :func:`flusher_for`; writers call :meth:`schedule`.
    Bound to the event loop it was made in.
    """

    def __init__(self, redis: RedisClient, linger_s: float = 0.0) -> None:
        # Only the pool is kept, never the client: the registry's weak key must be able to die.
        self._pool = None if isinstance(redis, RedisCluster) else redis.connection_pool
        self._pending: dict[PendingWriter, None] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._conn: Any = None
        self.loop = asyncio.get_running_loop()
        self.pace = Pace(linger_s, LINGER_BATCH)
        # The tasks that flushed in the current window of STALE_LINGERS lingers, and how many
        # did in the last complete one: one task alone, however fast, gains nothing by
        # waiting for others, so the flusher lingers only while two or more stream.
        self._window: set[int] = set()
        self._window_ends = 0.0
        self._tasks_streaming = 0
        #: round trips that waited one linger first, for tests and benchmarks
        self.lingers = 0
        #: round trips made (each one write and its replies), for tests and benchmarks
        self.round_trips = 0

    def schedule(self, writer: PendingWriter) -> None:
        """Send ``writer``'s buffered events in the next round trip (now, if none is in flight)."""
        self._pending[writer] = None
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run(), name="agentstream-flusher")
        else:
            self._wake.set()

    async def _run(self) -> None:
        try:
            while True:
                if not self._pending:
                    self._wake.clear()
                    try:
                        async with asyncio.timeout(LINGER_S):
                            await self._wake.wait()
                    except TimeoutError:
                        if not self._pending:
                            return
                    continue
                if self._tasks_streaming > 1 and self.pace.busy(self.loop.time()):
                    # Let the other tasks' next tokens join this round trip.
                    self.lingers += 1
                    await asyncio.sleep(self.pace.linger_s)
                await self._flush_pending()
        except BaseException as exc:
            # Stopped (the loop is closing) or a bug: no writer waiting for its turn may
            # wait forever; a later append starts a new flusher.
            failure = exc if isinstance(exc, Exception) else RedisConnectionError("the flusher was stopped")
            pending, self._pending = list(self._pending), {}
            for writer in pending:
                writer._failed(failure)
            raise
        finally:
            self._task = None
            await self._release()

    async def _flush_pending(self) -> None:
        # A method of its own, so that no writer stays referenced by the lingering loop.
        batches = [(w, b) for w in self._pending if (b := w._take_batch())]
        self._pending.clear()
        now = self.loop.time()
        self.pace.observe(len(batches), now)
        if self.pace.linger_s:
            if now >= self._window_ends:
                stale = now - self._window_ends > STALE_LINGERS * self.pace.linger_s
                self._tasks_streaming = 0 if stale else len(self._window)
                self._window.clear()
                self._window_ends = now + STALE_LINGERS * self.pace.linger_s
            self._window.update(id(writer) for writer, _ in batches)
        if batches:
            await self._round_trip(batches)

    async def _round_trip(self, batches: list[tuple[PendingWriter, Sequence[Any]]]) -> None:
        spans = [
            start_span("agentstream.flush", {"agentstream.task_id": w.task_id, "agentstream.events": len(b)},
                       parent=w._trace_parent())
            for w, b in batches
        ] if tracing_enabled() else []  # fmt: skip
        settled = 0
        try:
            try:
                if self._pool is None:
                    replies = await asyncio.gather(*(w._send(b) for w, b in batches), return_exceptions=True)
                else:
                    replies = await self._exchange_with_retries(batches)
            except TRANSIENT_REDIS_ERRORS as exc:
                replies = [exc] * len(batches)  # the retries are spent: each keeps its buffer
            self.round_trips += 1
            for (writer, batch), reply in zip(batches, replies, strict=True):
                settled += 1
                if isinstance(reply, BaseException):
                    writer._failed(reply)
                else:
                    writer._stored(batch, reply)
        except BaseException as exc:
            # Cancelled (the loop is closing) or a bug: no writer may wait forever.
            failure = exc if isinstance(exc, Exception) else RedisConnectionError("the flusher was stopped")
            for writer, _ in batches[settled:]:
                writer._failed(failure)
            raise
        finally:
            for handle in spans:
                handle.end()

    async def _exchange_with_retries(self, batches: list[tuple[PendingWriter, Sequence[Any]]]) -> list[Any]:
        """One reply per batch: the script's reply, or the exception it answered."""
        replies: list[Any] = [None] * len(batches)
        todo = list(range(len(batches)))
        for loaded in (False, True):
            payload = b"".join(batches[i][0]._packed(batches[i][1]) for i in todo)
            answers = await self._with_retries(payload, len(todo))
            missing = []
            for i, answer in zip(todo, answers, strict=True):
                if isinstance(answer, NoScriptError) and not loaded:
                    missing.append(i)
                else:
                    replies[i] = answer
            if not missing:
                break
            await self._with_retries(_pack_command(b"SCRIPT", b"LOAD", APPEND.encode()), 1)
            todo = missing
        return replies

    async def _with_retries(self, payload: bytes, count: int) -> list[Any]:
        for delay in (*RETRY_DELAYS_S, None):
            try:
                return await self._exchange(payload, count)
            except TRANSIENT_REDIS_ERRORS:
                # The replies may have been lost after Redis applied the calls; resending is
                # safe because the script answers a repeated seq instead of re-applying it.
                await self._release(broken=True)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _exchange(self, payload: bytes, count: int) -> list[Any]:
        """Write ``payload`` (``count`` commands) and read their replies, error replies
        included (as exceptions, not raised). Any failure closes the connection, so no late
        reply is ever taken for another command's.

        One write and one deadline for the round trip, on redis-py 5's connection parts:
        its ``send_packed_command`` wraps each write in ``wait_for`` (a task and a turn of
        the loop per call) and each reply in a timeout of its own."""
        if self._conn is None:
            assert self._pool is not None
            self._conn = await self._pool.get_connection()
        conn = self._conn
        try:
            if not conn.is_connected:
                await conn.connect()
            async with asyncio.timeout(conn.socket_timeout):
                conn._writer.write(payload)
                await conn._writer.drain()  # at once, unless the socket's buffer is full
                return [await conn._parser.read_response() for _ in range(count)]
        except BaseException as exc:
            await conn.disconnect(nowait=True)
            if isinstance(exc, TimeoutError):
                raise RedisTimeoutError(f"no reply from Redis within {conn.socket_timeout}s") from exc
            if isinstance(exc, OSError):
                raise RedisConnectionError(f"Redis connection failed: {exc!r}") from exc
            raise

    async def _release(self, *, broken: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None or self._pool is None:
            return
        if broken:
            await conn.disconnect(nowait=True)
        await self._pool.release(conn)


def _pack_command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


_flushers: weakref.WeakKeyDictionary[Any, Flusher] = weakref.WeakKeyDictionary()


def flusher_for(redis: RedisClient, linger_s: float = 0.0) -> Flusher:
    """The flusher of ``redis`` in the running event loop (made on first use, lingering
    ``linger_s`` while busy)."""
    flusher = _flushers.get(redis)
    if flusher is None or flusher.loop is not asyncio.get_running_loop():
        flusher = _flushers[redis] = Flusher(redis, linger_s)
    return flusher
