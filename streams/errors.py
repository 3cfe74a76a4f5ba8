"""The exceptions of the streams layer.

Every exception raised on purpose by ``streams`` derives from :class:`StreamsError`, itself
under the stack's root, :class:`agentstream.errors.StackError` (documented there)::

    StreamsError
    ├── UsageError                  misuse: fix the calling code
    │   ├── InvalidTaskId           task id outside ``^[A-Za-z0-9_-]{1,64}$``
    │   ├── InvalidTenant           tenant name outside ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$``
    │   ├── InvalidCursor           a cursor that is not ``<ms>-<seq>``, ``<ms>``, ``0`` or ``$``
    │   ├── InvalidFilter           an unknown streaming mode or scope
    │   ├── InvalidEvent            an event that cannot be encoded (no type, bad field)
    │   └── ClosedError             the writer/reader/consumer was used after it was closed
    └── StreamStateError            the task's state in Redis forbids the operation
        ├── TaskNotFound            no such task (or it expired)
        ├── FencedError             a newer attempt owns the task: this writer wrote nothing
        ├── GroupLimitReached       the stream has its maximum of consumer groups
        ├── DeadLetterNotFound      no such dead letter of this group (or it was requeued)
        └── TaskCompleted           the stream already ended with ``completed``

Redis connection failures and timeouts are not wrapped: they surface as redis-py's
``redis.exceptions.ConnectionError`` / ``TimeoutError`` so that callers keep one retry
policy for the network: :data:`TRANSIENT_REDIS_ERRORS` is that policy's one tuple.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentstream.errors import StackError

__all__ = [
    "REDIS_FAILURES",
    "TRANSIENT_REDIS_ERRORS",
    "ClosedError",
    "DeadLetterNotFound",
    "FencedError",
    "GroupLimitReached",
    "InputRejected",
    "InvalidCursor",
    "InvalidEvent",
    "InvalidFilter",
    "InvalidTaskId",
    "InvalidTenant",
    "StreamStateError",
    "StreamsError",
    "TaskCompleted",
    "TaskNotFound",
    "TaskWaiting",
    "UsageError",
    "from_script_reply",
]


if TYPE_CHECKING:  # built by __getattr__ below
    TRANSIENT_REDIS_ERRORS: tuple[type[Exception], ...]
    REDIS_FAILURES: tuple[type[Exception], ...]


def __getattr__(name: str) -> tuple[type[Exception], ...]:
    """The two tuples of Redis failures, built on first use (PEP 562) so that the light
    modules of the core (keys, settings) import without redis-py:

    - ``TRANSIENT_REDIS_ERRORS``: Redis unreachable, a command timed out, or the socket
      failed: the same call may succeed once Redis is back (every retry policy of the
      stack catches exactly these);
    - ``REDIS_FAILURES``: any failed Redis call, error replies included: what a background
      loop that must outlive Redis trouble (a lease renewal, a catalog refresh) catches,
      logs and retries.
    """
    if name not in ("TRANSIENT_REDIS_ERRORS", "REDIS_FAILURES"):  # (the import system asks too)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    tuples: dict[str, tuple[type[Exception], ...]] = {
        "TRANSIENT_REDIS_ERRORS": (RedisConnectionError, RedisTimeoutError, OSError),
        "REDIS_FAILURES": (RedisError, OSError, TimeoutError),
    }
    globals().update(tuples)
    return tuples[name]


class StreamsError(StackError):
    """Base of every error the streams layer raises on purpose."""


class UsageError(StreamsError, ValueError):
    """The caller passed something the streams layer cannot accept."""


class InvalidTaskId(UsageError):
    """A task id must match ``^[A-Za-z0-9_-]{1,64}$``."""


class InvalidTenant(UsageError):
    """A tenant name must match ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`` (it is part of Redis keys)."""


class InvalidCursor(UsageError):
    """A cursor must be a stream entry id (``<ms>-<seq>``), ``<ms>``, ``0`` or ``$``."""


class InvalidFilter(UsageError):
    """An unknown streaming mode, scope or type list."""


class InvalidEvent(UsageError):
    """An event that cannot be stored: missing ``type`` or a field of the wrong kind."""


class ClosedError(StreamsError, RuntimeError):
    """An object was used after ``aclose()``."""


class StreamStateError(StreamsError):
    """The task's state in Redis forbids the operation."""

    def __init__(self, message: str, *, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id


class TaskNotFound(StreamStateError):
    """No task with this id exists (never created, or expired after retention)."""


class FencedError(StreamStateError):
    """A newer attempt took the task over; this writer's batch was not written."""

    def __init__(self, message: str, *, task_id: str, attempt: int, current: int) -> None:
        super().__init__(message, task_id=task_id)
        self.attempt = attempt
        self.current = current


class GroupLimitReached(StreamStateError):
    """Creating one more consumer group would pass the stream's limit of groups."""


class DeadLetterNotFound(StreamStateError):
    """No dead letter of this id for this group (never, already requeued, or expired); or
    its event was trimmed from the stream, so there is nothing to deliver again."""


class TaskCompleted(StreamStateError):
    """The stream already ended with ``completed``; nothing may follow it."""


class TaskWaiting(StreamStateError):
    """The task waits for input: no attempt opens until the input requeues it."""


class InputRejected(StreamStateError):
    """Input the task does not wait for (it is not waiting, or nothing pending matches);
    also a wait refused because a cancel came in (``reason`` says which)."""

    def __init__(self, message: str, *, task_id: str, reason: str) -> None:
        super().__init__(message, task_id=task_id)
        self.reason = reason


_INPUT_REFUSALS = {
    "NOTWAITING": "task {task_id!r} is not waiting for input (its status is {detail})",
    "NOTPENDING": "task {task_id!r} has no pending approval or question {detail!r}",
    "CANCELREQ": "task {task_id!r} was cancelled; it does not wait for input",
    "ENDED": "task {task_id!r} has ended ({detail}): it is not waiting for input",
    "FINISHING": "task {task_id!r} is finishing: its final answer is given, it takes no more messages",
    "INBOXFULL": "task {task_id!r} already holds {detail} messages not yet answered; send more later",
    "WAITINGNOW": "task {task_id!r} waits for input now; read it again",
}


def from_script_reply(message: str, *, task_id: str, attempt: int = 0) -> StreamsError:
    """The exception for an error reply of one of :mod:`streams.scripts`."""
    code, _, detail = message.partition(" ")
    if code == "NOTASK":
        return TaskNotFound(f"task {task_id!r} does not exist (or expired)", task_id=task_id)
    if code == "FENCED":
        current = int(detail) if detail.isdigit() else -1
        return FencedError(
            f"task {task_id!r}: attempt {attempt} was fenced off by attempt {current}; "
            "nothing of this batch was written",
            task_id=task_id,
            attempt=attempt,
            current=current,
        )
    if code == "COMPLETED":
        return TaskCompleted(f"task {task_id!r} already ended with 'completed'", task_id=task_id)
    if code == "WAITING":
        return TaskWaiting(f"task {task_id!r} waits for input", task_id=task_id)
    if code in _INPUT_REFUSALS:
        return InputRejected(_INPUT_REFUSALS[code].format(task_id=task_id, detail=detail),
                             task_id=task_id, reason=code.lower())  # fmt: skip
    if code == "AFTERCOMPLETED":
        return InvalidEvent(f"task {task_id!r}: no event may follow 'completed' in a batch")
    if code == "SEQMISMATCH":
        return FencedError(
            f"task {task_id!r}: another writer appended under attempt {attempt} ({detail}); "
            "use one writer per attempt",
            task_id=task_id,
            attempt=attempt,
            current=attempt,
        )
    return StreamsError(f"task {task_id!r}: unexpected script reply {message!r}")
