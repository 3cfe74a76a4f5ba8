"""The fenced, batching writer of one task attempt.

``append`` buffers an event and returns at once; the flusher of the process
(:mod:`streams.flusher`, one per Redis client) sends the buffer to Redis in one Lua call
per batch, together with the batches of every other writer pending at that moment. A lone
event leaves immediately; a batch forms only from what arrived while the previous round
trip was in flight, so batching adds no timer delay. ``flush``/``aclose`` wait until every
buffered event is stored or the writer failed; after a connection error the buffer is kept
and the next ``flush`` retries it, and a resent batch is recognised by its seq in Redis, so
it is never stored twice.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from agentstream.telemetry.tracing import current_context, tracing_enabled

from .codec import EncodedEvent, encode
from .connection import RedisClient
from .errors import (
    TRANSIENT_REDIS_ERRORS,
    ClosedError,
    InvalidEvent,
    StreamsError,
    TaskCompleted,
    from_script_reply,
)
from .events import utc_now_iso
from .flusher import RETRY_DELAYS_S, Flusher, flusher_for
from .keys import public_task_id
from .scripts import APPEND
from .settings import StreamsSettings

__all__ = ["Appended", "StreamWriter"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Appended:
    """Where an event was stored."""

    cursor: str
    seq: int


class _State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class StreamWriter:
    """Appends the events of one attempt of one task. Not safe across event loops.

    Use as ``async with store.writer(attempt) as w: await w.append(event)``.
    """

    def __init__(
        self,
        redis: RedisClient,
        settings: StreamsSettings,
        task_id: str,
        attempt: int,
        last_seq: int,
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self._redis = redis
        self._settings = settings
        self._keys = list(settings.keys.task_keys(task_id))
        self._script = redis.register_script(APPEND)
        # what every call of this writer starts with: EVALSHA sha 3 keys... attempt
        head = ("EVALSHA", self._script.sha, len(self._keys), *self._keys, attempt)
        self._call_head = b"".join(_bulk(str(part).encode()) for part in head)
        self._limits = _bulk_int(settings.maxlen) + _bulk_int(settings.retention_s)
        self._buffer: list[tuple[EncodedEvent, str]] = []
        self._waiters: list[tuple[int, asyncio.Future[Appended]]] = []
        self._flusher: Flusher | None = None
        self._scheduled = False  # pending in the flusher
        self._in_flight = False  # the head of the buffer is in a round trip
        self._ended: asyncio.Task[None] | None = None  # the task feed's ``ended`` entry
        self._trace_context: Any = None
        self._progress = asyncio.Event()
        self._error: BaseException | None = None
        self._state = _State.OPEN
        self._terminal_buffered = False
        #: seq of the last stored event (the append script checks it: exactly-once resends)
        self.last_seq = last_seq
        self.last_cursor: str | None = None
        self._stored_count = 0  # events stored by this writer
        self._accepted = 0  # events accepted by append

    # -- context manager -----------------------------------------------------------------

    async def __aenter__(self) -> StreamWriter:
        self._check_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- appending -----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events accepted but not yet stored."""
        return self._accepted - self._stored_count

    @property
    def completed(self) -> bool:
        """Whether ``completed`` was appended (stored or buffered)."""
        return self._terminal_buffered

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            raise ClosedError(f"cannot append to a {self._state.value} writer of task {self.task_id!r}")
        if self._error is not None:
            # A transient error stays until ``flush`` succeeds: the caller learns of it at
            # once instead of buffering blindly, and the buffer is kept for the retry.
            raise self._error

    def append_nowait(self, event: Mapping[str, Any]) -> None:
        """Buffer one event and have it flushed (no backpressure)."""
        self._check_open()
        if self._terminal_buffered:
            raise TaskCompleted(
                f"task {self.task_id!r}: 'completed' was appended; nothing may follow it",
                task_id=self.task_id,
            )
        owner = event.get("task_id")
        if owner is not None and owner not in (self.task_id, public_task_id(self.task_id)):
            raise InvalidEvent(f"event of task {owner!r} given to the writer of {self.task_id!r}")
        encoded = encode(event)
        status = ""
        if encoded.type == "completed":
            status = str(event.get("status", ""))
            if status not in {"succeeded", "failed", "cancelled"}:
                raise InvalidEvent("completed needs status succeeded, failed or cancelled")
            self._terminal_buffered = True
        self._buffer.append((encoded, status))
        self._accepted += 1
        self._kick()

    async def append(self, event: Mapping[str, Any]) -> None:
        """Buffer one event; waits only while ``max_buffer`` events are unsent."""
        while self.pending >= self._settings.max_buffer and self._error is None:
            self._progress.clear()
            self._kick()
            await self._progress.wait()
        self.append_nowait(event)

    async def write(self, event: Mapping[str, Any]) -> Appended:
        """Append one event and wait until it is stored; returns its cursor and seq."""
        await self.append(event)
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._accepted, future))
        return await future

    async def flush(self) -> None:
        """Wait until every buffered event is stored; raise the writer's error if any.

        After a connection error the unsent events are still buffered: calling ``flush``
        again retries them.
        """
        if self._error is not None and isinstance(self._error, TRANSIENT_REDIS_ERRORS) and self._buffer:
            self._error = None
        self._kick()
        while self._buffer and self._error is None:
            self._progress.clear()
            await self._progress.wait()
        if self._ended is not None:
            await asyncio.shield(self._ended)
        if self._error is not None:
            raise self._error

    async def aclose(self) -> None:
        """Flush and close. Idempotent; a failed flush still closes and raises."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSING
        try:
            await self.flush()
        finally:
            self._state = _State.CLOSED

    # -- flushing (the process's flusher calls these: streams/flusher.py) ---------------

    def _kick(self) -> None:
        if self._buffer and self._error is None and not self._scheduled:
            self._scheduled = True
            if self._flusher is None:
                self._flusher = flusher_for(self._redis, self._settings.flush_linger_ms / 1000)
            if tracing_enabled():
                self._trace_context = current_context()
            self._flusher.schedule(self)

    def _trace_parent(self) -> Any:
        return self._trace_context

    def _take_batch(self) -> list[tuple[EncodedEvent, str]] | None:
        self._scheduled = False
        if self._error is not None or not self._buffer:
            return None
        self._in_flight = True
        return self._buffer[: self._settings.max_batch]

    def _packed(self, batch: Sequence[tuple[EncodedEvent, str]]) -> bytes:
        """The RESP bytes of the append script's EVALSHA for ``batch``, packed by hand
        (redis-py's ``pack_command`` cost ~10 µs a call, most of a token's flush)."""
        status = batch[-1][1]
        parts = [
            b"*%d\r\n" % (_FIXED_ARGS + 5 * len(batch)),
            self._call_head,
            _bulk_int(self.last_seq),
            self._limits,
            _bulk_text(status) if status else _EMPTY,
            _bulk_text(utc_now_iso()) if status else _EMPTY,  # the end time, only at the end
            _bulk_int(len(batch)),
        ]
        for encoded, _ in batch:
            kind, ts_us, agent, payload, extra = encoded
            data = payload.encode() if isinstance(payload, str) else payload
            parts += (
                _bulk_text(kind),
                _bulk_int(ts_us),
                _bulk_text(agent) if agent else _EMPTY,
                _bulk(data),
                _bulk_text(extra) if isinstance(extra, str) else _bulk(extra),
            )
        return b"".join(parts)

    async def _send(self, batch: Sequence[tuple[EncodedEvent, str]]) -> list[Any]:
        """One script call for ``batch`` through redis-py, retried on connection errors
        (a Redis Cluster's flush; the flusher packs its own calls elsewhere)."""
        status = batch[-1][1]
        args: list[Any] = [
            self.attempt, self.last_seq, self._settings.maxlen, self._settings.retention_s,
            status, utc_now_iso() if status else "", len(batch),
        ]  # fmt: skip
        for encoded, _ in batch:
            args.extend(encoded)
        for delay in (*RETRY_DELAYS_S, None):
            try:
                reply: list[Any] = await self._script(keys=self._keys, args=args)
                return reply
            except ResponseError as exc:
                raise from_script_reply(str(exc), task_id=self.task_id, attempt=self.attempt) from None
            except TRANSIENT_REDIS_ERRORS:
                # The reply may have been lost after Redis applied the batch; resending is
                # safe because the script answers a repeated seq instead of re-applying it.
                if delay is None:
                    raise
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _stored(self, batch: Sequence[tuple[EncodedEvent, str]], reply: list[Any]) -> None:
        self._in_flight = False
        first_index = self._stored_count
        del self._buffer[: len(batch)]
        self.last_seq = int(reply[0])
        cursors = reply[1:]
        self._stored_count += len(batch)
        if cursors:
            self.last_cursor = str(cursors[-1])
        while self._waiters and self._waiters[0][0] <= self._stored_count:
            index, future = self._waiters.pop(0)
            if not future.done():
                position = index - 1 - first_index
                cursor = cursors[position] if 0 <= position < len(cursors) else self.last_cursor
                seq = self.last_seq - (self._stored_count - index)
                future.set_result(Appended(str(cursor or ""), seq))
        if batch[-1][0].type == "completed":
            self._ended = asyncio.get_running_loop().create_task(
                self._record_ended(batch[-1][1]), name=f"agentstream-ended-{self.task_id}"
            )
        self._kick()
        self._progress.set()

    async def _record_ended(self, status: str) -> None:
        # The feed lives in another Cluster slot, so it cannot join the append script.
        # The stream's ``completed`` is already durable; a lost feed entry is logged, not
        # raised, so the caller never mistakes it for a failed completion.
        keys = self._settings.keys
        try:
            owner = await self._redis.hget(keys.meta(self.task_id), "owner")
            await self._redis.xadd(
                keys.tasks,
                {"task_id": self.task_id, "kind": "ended", "owner": owner or "",
                 "status": status, "at": utc_now_iso()},
                maxlen=self._settings.feed_maxlen,
                approximate=True,
            )  # fmt: skip
        except TRANSIENT_REDIS_ERRORS as exc:
            logger.warning("task %s: could not record its end in the task feed: %r", self.task_id, exc)

    def _failed(self, exc: BaseException) -> None:
        self._in_flight = False
        self._scheduled = False  # the flusher forgot it; ``flush`` schedules it again
        if isinstance(exc, ResponseError):
            exc = from_script_reply(str(exc), task_id=self.task_id, attempt=self.attempt)
        elif not isinstance(exc, (StreamsError, *TRANSIENT_REDIS_ERRORS)):
            exc = StreamsError(f"task {self.task_id!r}: append failed: {exc!r}")
        self._error = exc
        if not isinstance(exc, TRANSIENT_REDIS_ERRORS):
            # Permanent (fenced, completed, invalid): nothing buffered can ever be stored.
            self._buffer.clear()
            self._stored_count = self._accepted
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(exc)
        self._waiters.clear()
        self._progress.set()


_FIXED_ARGS = 13  # EVALSHA, sha, numkeys, 3 keys, 7 arguments before the events
_EMPTY = b"$0\r\n\r\n"
_TEXT_CACHE: dict[str, bytes] = {}


def _bulk_text(text: str) -> bytes:
    """A RESP bulk string; short ones (event types, agent ids) are packed once."""
    packed = _TEXT_CACHE.get(text)
    if packed is None:
        data = text.encode()
        packed = _bulk(data)
        if len(data) <= 64 and len(_TEXT_CACHE) < 4096:
            _TEXT_CACHE[text] = packed
    return packed


def _bulk_int(value: int) -> bytes:
    return _bulk(b"%d" % value)


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)
