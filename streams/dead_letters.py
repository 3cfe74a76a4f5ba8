"""Dead letters of a task's consumer groups: list them, and requeue one.

A group consumer moves an entry delivered more than ``max_deliveries`` times to the task's
dead-letter stream (``{prefix}:{<task>}:dead``) with the reason, and acks it, so one
poison event cannot stall its group (PROTOCOL section 7). Once the cause is fixed, an
operator requeues it: the entry goes back to the group's pending entries with its delivery
count reset, idle long enough that the next consumer of the group to look for stale
entries (within ``min_idle_ms / 2``) claims it, and it leaves the dead-letter stream.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError

from .codec import decode
from .connection import RedisClient
from .errors import DeadLetterNotFound, from_script_reply
from .keys import public_task_id, validate_group_name
from .reader import parse_cursor
from .scripts import REQUEUE
from .settings import StreamsSettings

__all__ = ["REQUEUE_CONSUMER", "list_dead_letters", "requeue_dead_letter"]

Item = tuple[str, dict[str, Any]]

#: the consumer a requeued entry is assigned to until a live consumer claims it
REQUEUE_CONSUMER = "requeued"
#: the idle time a requeued entry gets: any consumer's ``min_idle_ms`` is shorter
_REQUEUE_IDLE_MS = 365 * 24 * 3600 * 1000


async def list_dead_letters(
    redis: RedisClient, settings: StreamsSettings, task_id: str, group: str | None = None, count: int = 1000
) -> list[Item]:
    """Up to ``count`` dead letters of the task (of ``group`` only, if given), oldest
    first: ``(dead-letter id, event)``, the event with its own ``id`` (the stream cursor)
    and the ``dl_group``, ``dl_entry``, ``dl_reason``, ``dl_consumer``, ``dl_deliveries`` fields."""
    if group is not None:
        validate_group_name(group)
    raw = await redis.xrange(settings.keys.dead(task_id), count=count)
    shown = public_task_id(task_id)
    out: list[Item] = []
    for cursor, fields in raw:
        if group is not None and fields.get("dl_group") != group:
            continue
        event = decode(str(fields.get("dl_entry", cursor)), fields, shown)
        event.update({k: v for k, v in fields.items() if k.startswith("dl_")})
        out.append((str(cursor), event))
    return out


async def requeue_dead_letter(
    redis: RedisClient, settings: StreamsSettings, task_id: str, group: str, dead_id: str
) -> str:
    """Deliver dead letter ``dead_id`` of ``group`` again; returns the event's cursor.

    :class:`DeadLetterNotFound` when the group has no such dead letter (or its event was
    trimmed from the stream): nothing changed."""
    validate_group_name(group)
    dead_id = parse_cursor(dead_id)
    script = redis.register_script(REQUEUE)
    try:
        entry = await script(
            keys=[settings.keys.events(task_id), settings.keys.dead(task_id)],
            args=[dead_id, group, REQUEUE_CONSUMER, _REQUEUE_IDLE_MS],
        )
    except ResponseError as exc:
        code = str(exc).partition(" ")[0]
        if code == "NODEAD":
            raise DeadLetterNotFound(
                f"group {group!r} of task {public_task_id(task_id)!r} has no dead letter {dead_id!r}",
                task_id=task_id,
            ) from None
        if code == "TRIMMED":
            raise DeadLetterNotFound(
                f"dead letter {dead_id!r}: its event was trimmed from the stream; nothing to requeue",
                task_id=task_id,
            ) from None
        raise from_script_reply(str(exc), task_id=task_id) from None
    return str(entry)
