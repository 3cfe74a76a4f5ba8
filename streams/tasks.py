"""Task lifecycle in Redis: create (with the ``queued`` event), open an attempt, cancel,
read the meta hash, and the cross-task feed."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from redis.exceptions import ResponseError

from .codec import decode_entry, encode
from .connection import RedisClient
from .errors import from_script_reply
from .events import utc_now_iso
from .keys import validate_task_id
from .scripts import CLOSE_INBOX, CREATE, END_WAIT, OPEN_ATTEMPT, RECORD_INPUT, REQUEST_CANCEL, SET_WAITING
from .settings import StreamsSettings
from .writer import StreamWriter

__all__ = ["Attempt", "Created", "InputRecorded", "QueuedMessage", "TaskMeta", "TaskStore"]

INPUT_PREVIEW_CHARS = 200
#: messages a running task holds before it answered them; more are refused (409)
MAX_QUEUED_MESSAGES = 100
#: what the agent is given for a message trimmed from the stream before it was delivered
#: (only a stream past its ``maxlen`` trims; the message must still be accounted for)
TRIMMED_MESSAGE = "(a message sent during the task was trimmed from its stream before it was read)"

#: how often a cancel re-reads a task whose attempt moved under it before leaving the
#: request to the worker that moved it
_CANCEL_TRIES = 3
_ENDED_HERE = 2
_RACED = 3


@dataclass(frozen=True, slots=True)
class Created:
    """Outcome of :meth:`TaskStore.create_task`."""

    task_id: str
    created: bool
    owner: str
    status: str
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """A fencing token: only the writer of the current attempt may append."""

    task_id: str
    number: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class InputRecorded:
    """Outcome of :meth:`TaskStore.record_input`: the ``input`` event's seq and id, how
    many approvals or questions still wait, and whether the input queued the task again
    (it waited for nothing else; the caller enqueues its job)."""

    seq: int
    remaining: int
    cursor: str
    queued: bool = False


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message sent to a queued or running task: the seq of its ``input`` event."""

    seq: int
    message: str


@dataclass(frozen=True, slots=True)
class TaskMeta:
    """The task's meta hash, typed."""

    task_id: str
    owner: str
    status: str
    attempt: int
    seq: int
    done: bool
    agent: str
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    last_id: str | None
    cancel_requested: str | None
    cancel_reason: str | None
    request: dict[str, Any] = field(default_factory=dict)
    #: what a waiting task waits for: ``{"tool_call_id", "kind"}`` (approval or question)
    pending_input: list[dict[str, Any]] = field(default_factory=list)
    input_deadline: str | None = None
    #: how many times input requeued the task (those attempts spend no retry budget)
    resumes: int = 0

    @classmethod
    def from_hash(cls, task_id: str, raw: Mapping[str, str]) -> TaskMeta:
        request = raw.get("request")
        return cls(
            task_id=task_id,
            owner=raw.get("owner", ""),
            status=raw.get("status", "unknown"),
            attempt=int(raw.get("attempt", 0)),
            seq=int(raw.get("seq", 0)),
            done=raw.get("done") == "1",
            agent=raw.get("agent", ""),
            created_at=raw.get("created_at"),
            started_at=raw.get("started_at"),
            ended_at=raw.get("ended_at"),
            last_id=raw.get("last_id"),
            cancel_requested=raw.get("cancel_requested"),
            cancel_reason=raw.get("cancel_reason"),
            request=orjson.loads(request) if request else {},
            pending_input=orjson.loads(raw["pending_input"]) if raw.get("pending_input") else [],
            input_deadline=raw.get("input_deadline"),
            resumes=int(raw.get("resumes", 0)),
        )


class TaskStore:
    """Creates tasks and hands out fenced writers. Cheap: share one per process."""

    def __init__(self, redis: RedisClient, settings: StreamsSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = settings.keys
        self._create = redis.register_script(CREATE)
        self._open = redis.register_script(OPEN_ATTEMPT)
        self._cancel = redis.register_script(REQUEST_CANCEL)
        self._set_waiting = redis.register_script(SET_WAITING)
        self._record_input = redis.register_script(RECORD_INPUT)
        self._end_wait = redis.register_script(END_WAIT)
        self._close_inbox = redis.register_script(CLOSE_INBOX)

    async def create_task(
        self,
        task_id: str,
        *,
        owner: str,
        agent: str,
        input: str,
        request: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
    ) -> Created:
        """Create the task with its ``queued`` event (seq 1); idempotent per task id.

        A second call with the same id changes nothing and reports ``created=False`` with
        the existing owner, so the caller can tell a retry from a clash between tenants.
        """
        validate_task_id(task_id)
        queued: dict[str, Any] = {
            "type": "queued",
            "agent": agent,
            "input": input[:INPUT_PREVIEW_CHARS],
        }
        if agent_id:
            queued["agent_id"] = agent_id
        enc = encode(queued)
        now = utc_now_iso()
        reply = await self._create(
            keys=[self.keys.events(task_id), self.keys.meta(task_id)],
            args=[
                owner, now, orjson.dumps(dict(request or {})), self.settings.maxlen,
                self.settings.stale_ttl_s, enc.type, enc.ts_us, enc.agent_id, enc.payload,
                enc.extra, agent,
            ],
        )  # fmt: skip
        if int(reply[0]) == 0:
            return Created(task_id, False, str(reply[1]), str(reply[2]))
        await self._feed(task_id, "created", owner, "queued", now)
        return Created(task_id, True, owner, "queued", str(reply[1]))

    async def _feed(self, task_id: str, kind: str, owner: str, status: str, at: str) -> None:
        await self.redis.xadd(
            self.keys.tasks,
            {"task_id": task_id, "kind": kind, "owner": owner, "status": status, "at": at},
            maxlen=self.settings.feed_maxlen,
            approximate=True,
        )

    async def open_attempt(self, task_id: str) -> Attempt:
        """Start the next attempt: from now on, writers of older attempts are fenced."""
        try:
            reply = await self._open(
                keys=[self.keys.events(task_id), self.keys.meta(task_id)],
                args=[utc_now_iso(), self.settings.stale_ttl_s],
            )
        except ResponseError as exc:
            raise from_script_reply(str(exc), task_id=task_id) from None
        return Attempt(task_id, int(reply[0]), int(reply[1]))

    def writer(self, attempt: Attempt) -> StreamWriter:
        """A batching writer for ``attempt``; use it as an async context manager."""
        return StreamWriter(self.redis, self.settings, attempt.task_id, attempt.number, attempt.last_seq)

    async def meta(self, task_id: str) -> TaskMeta | None:
        """The task's meta, ``None`` when it does not exist (or expired)."""
        raw = await self.redis.hgetall(self.keys.meta(task_id))
        return TaskMeta.from_hash(task_id, raw) if raw else None

    async def request_cancel(self, task_id: str, reason: str = "cancelled by request") -> TaskMeta:
        """Cancel the task (idempotent); returns its meta afterwards.

        A task some worker holds (its lease is live) is only marked: that worker sees the
        mark within a poll and ends the stream ``cancelled``, ``completed`` itself, after
        what it already streamed. A task nobody holds (queued, waiting for a retry, or
        whose worker died) is ended here at once, as a new attempt that fences off any
        older writer: a worker that takes its job later finds it completed and writes
        nothing. A task that already ended is left as it is.
        """
        for _ in range(_CANCEL_TRIES):
            meta = await self.meta(task_id)
            if meta is None:
                raise from_script_reply("NOTASK", task_id=task_id)
            if meta.done or await self._cancel_unheld(meta, reason) != _RACED:
                break
        meta = await self.meta(task_id)
        if meta is None:
            raise from_script_reply("NOTASK", task_id=task_id)
        return meta

    async def _cancel_unheld(self, meta: TaskMeta, reason: str) -> int:
        """One try of the cancel script for ``meta`` as read; returns its outcome code."""
        events: list[dict[str, Any]] = []
        if meta.attempt > 0:
            # A new attempt opens with ``retry`` (PROTOCOL rule 4), this one included.
            interrupted = f"attempt {meta.attempt} was interrupted; cancelled while no worker held the task"
            events.append({"type": "retry", "attempt": meta.attempt + 1, "reason": interrupted})
        events.append({"type": "cancelled", "reason": reason})
        events.append({"type": "completed", "success": False, "status": "cancelled",
                       "execution_time": _seconds_since(meta.started_at)})  # fmt: skip
        now = utc_now_iso()
        args: list[Any] = [reason, now, self.settings.maxlen, self.settings.retention_s, now,
                           meta.attempt, len(events)]  # fmt: skip
        for event in events:
            args.extend(encode(event))
        try:
            reply = await self._cancel(keys=list(self.keys.task_keys(meta.task_id)), args=args)
        except ResponseError as exc:
            raise from_script_reply(str(exc), task_id=meta.task_id) from None
        outcome = int(reply[0])
        if outcome == _ENDED_HERE:
            await self._feed(meta.task_id, "ended", meta.owner, "cancelled", now)
        return outcome

    async def set_waiting(self, attempt: Attempt, pending: list[dict[str, Any]], deadline: str) -> bool:
        """Park the task of ``attempt`` (status ``waiting``) until input answers ``pending``
        (``{"tool_call_id", "kind"}`` items) and return True; False when every one of them
        was answered while the attempt ran (the task is queued again: run it at once).
        Raises ``FencedError``/``TaskCompleted`` if the attempt lost the task,
        ``InputRejected`` (reason ``cancelreq``) if a cancel came in."""
        reply = await self._script(
            self._set_waiting, attempt.task_id, [self.keys.meta(attempt.task_id)],
            [attempt.number, orjson.dumps(pending), deadline],
        )  # fmt: skip
        return int(reply) == 1

    async def record_input(
        self, task_id: str, event: Mapping[str, Any], answered: list[str], idempotency_key: str | None = None
    ) -> InputRecorded:
        """Append the ``input`` event of a waiting task atomically, if every tool call id
        in ``answered`` is pending; queue the task again once nothing is. The same
        ``idempotency_key`` returns the first outcome and records nothing. Raises
        ``InputRejected`` (not waiting, nothing pending matches) or ``TaskNotFound``."""
        return await self._record(task_id, event, answered, idempotency_key, queue=False)

    async def record_message(
        self, task_id: str, message: str, idempotency_key: str | None = None
    ) -> InputRecorded:
        """Append the ``input`` event of a message to a queued or running task, which its
        agent takes before its next model turn (:meth:`queued_messages`); idempotent per
        ``idempotency_key`` like :meth:`record_input`. Raises ``InputRejected``: the task
        ended (``ended``), gave its final answer (``finishing``), holds too many messages
        (``inboxfull``) or waits for input (``waitingnow``: answer its question instead)."""
        event = {"type": "input", "message": message}
        return await self._record(task_id, event, [], idempotency_key, queue=True)

    async def _record(
        self, task_id: str, event: Mapping[str, Any], answered: list[str], key: str | None, *, queue: bool
    ) -> InputRecorded:
        args = [key or "", orjson.dumps(answered), self.settings.maxlen, *encode(dict(event)),
                "1" if queue else "0", MAX_QUEUED_MESSAGES]  # fmt: skip
        keys = [self.keys.events(task_id), self.keys.meta(task_id)]
        reply = await self._script(self._record_input, task_id, keys, args)
        # a reply kept for an idempotency key before ``queued`` was returned has 3 items
        queued = bool(int(reply[3])) if len(reply) > 3 else int(reply[1]) == 0 and not queue
        return InputRecorded(int(reply[0]), int(reply[1]), str(reply[2]), queued)

    async def queued_count(self, task_id: str) -> int:
        """How many messages were sent to the task while it was queued or running: the
        cheap check (one HGET) an agent makes before each model turn."""
        return int(await self.redis.hget(self.keys.meta(task_id), "inbox_n") or 0)

    async def queued_messages(self, task_id: str, skip: Collection[int] = ()) -> list[QueuedMessage]:
        """The messages sent to the task while it ran, in order, but those whose seq is
        in ``skip`` (those its agent was given)."""
        raw = await self.redis.hget(self.keys.meta(task_id), "inbox")
        recorded = orjson.loads(raw or "[]")
        wanted = [(int(seq), str(cursor)) for seq, cursor in recorded if int(seq) not in skip]
        if not wanted:
            return []
        events_key = self.keys.events(task_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for _, cursor in wanted:
                pipe.xrange(events_key, cursor, cursor)
            found = await pipe.execute()
        messages = []
        for (seq, cursor), entries in zip(wanted, found, strict=True):
            event = decode_entry(cursor, entries[0][1], task_id) if entries else {}
            messages.append(QueuedMessage(seq, str(event.get("message") or TRIMMED_MESSAGE)))
        return messages

    async def close_inbox(self, task_id: str, attempt: int, given: int) -> bool:
        """Refuse further messages (``finishing``) unless more than ``given`` were sent:
        then False, and the agent takes them before it finishes. Raises ``FencedError``."""
        reply = await self._script(self._close_inbox, task_id, [self.keys.meta(task_id)], [attempt, given])
        return int(reply) == 1

    async def end_wait(self, task_id: str, attempt: int, events: list[dict[str, Any]], status: str) -> bool:
        """End a task still waiting under ``attempt`` with ``events`` (the last one
        ``completed``); False when it no longer waits (answered, cancelled, ended)."""
        now = utc_now_iso()
        args: list[Any] = [attempt, self.settings.maxlen, self.settings.retention_s, now, status, len(events)]
        for event in events:
            args.extend(encode(event))
        reply = await self._script(self._end_wait, task_id, list(self.keys.task_keys(task_id)), args)
        if int(reply[0]) != 1:
            return False
        owner = await self.redis.hget(self.keys.meta(task_id), "owner")
        await self._feed(task_id, "ended", owner or "", status, now)
        return True

    async def _script(self, script: Any, task_id: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except ResponseError as exc:
            raise from_script_reply(str(exc), task_id=task_id) from None

    async def cancel_requested(self, task_id: str) -> bool:
        """Cheap check a running attempt makes between steps."""
        return bool(await self.redis.hexists(self.keys.meta(task_id), "cancel_requested"))

    async def cancel_requests(self, task_ids: Sequence[str]) -> list[bool]:
        """:meth:`cancel_requested` of many tasks in one round trip (one per node of a
        Cluster): the worker's process-wide cancel watch."""
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hexists(self.keys.meta(task_id), "cancel_requested")
        return [bool(answer) for answer in await pipe.execute()]


def _seconds_since(started_at: str | None) -> float:
    """Seconds since an ISO ``started_at``; 0 for a task that never started."""
    if not started_at:
        return 0.0
    try:
        started = datetime.fromisoformat(started_at).timestamp()
    except ValueError:
        return 0.0
    return round(max(0.0, time.time() - started), 6)
