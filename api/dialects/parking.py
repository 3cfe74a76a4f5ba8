"""Tailing a task for a dialect that ends its response when the task parks.

AG-UI ends a run with its interrupt and the Responses API ends a response with its
approval requests once the task waits for a person. The park is a change of the task's
status, not an event, so while the translator holds announced waits the tail wakes every
:data:`WAIT_POLL_S` to read the status.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agentstream.streams import EventFilter, Reader, TaskMeta

__all__ = ["WAIT_POLL_S", "Status", "tail_until_parked"]

#: how often a reader holding announced waits looks whether the task has parked
WAIT_POLL_S = 0.25
#: reads the task's meta (None once it is gone)
Status = Callable[[], Awaitable[TaskMeta | None]]

_ALL = EventFilter.parse("all")


async def tail_until_parked(
    reader: Reader,
    task_id: str,
    after: str,
    status: Status,
    *,
    waits: Callable[[], bool],
    finished: Callable[[], bool],
) -> AsyncIterator[tuple[str, dict[str, Any]] | TaskMeta]:
    """The task's events from ``after`` as ``(cursor, event)``, until ``finished()`` or the
    stream's end. While ``waits()`` (the caller's translator holds announced waits), the
    task's meta is yielded each time a look finds it parked (status ``waiting``): the
    caller ends its response then, which ``finished()`` must reflect."""
    while not finished():
        waiting = waits()
        items = reader.tail(task_id, after, _ALL, idle_timeout_s=WAIT_POLL_S if waiting else None)
        async with contextlib.aclosing(items):  # type: ignore[type-var]
            async for cursor, event in items:
                yield cursor, event
                if event["type"] not in ("gap", "reset"):
                    after = cursor
                if waits() != waiting:
                    break  # tail again, with or without the idle timeout
            else:
                if not waiting:
                    return  # the stream ended
                current = await status()
                if current is not None and current.status == "waiting":
                    yield current
