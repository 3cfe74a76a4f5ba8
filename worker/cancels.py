"""One poll, for the whole process, of the cancel requests of the tasks it runs.

Each running attempt used to poll its own task every ``cancel_poll_s`` (one HEXISTS, a send
and a reply of its own): at a model's pace, 20 tasks made 80 round trips a second for this
alone, about a tenth of the worker's round trips to Redis. Here every attempt of a process
registers its task with the :class:`CancelWatch` of its store's Redis client, which asks
for all of them in one pipeline per interval and wakes the attempts whose task a user
cancelled. A task is seen at most one interval after the request, as before.

The poll runs only while some task is watched; a transient Redis error is logged and the
next interval asks again (the attempts keep running meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from agentstream.streams import TaskStore
from agentstream.worker.outcomes import TRANSIENT_ERRORS

__all__ = ["CancelWatch", "cancel_watch_for"]

logger = logging.getLogger(__name__)


class CancelWatch:
    """Polls the cancel requests of the watched tasks, all in one round trip per interval.

    Get the one of a store's Redis client with :func:`cancel_watch_for`. Bound to the event
    loop it was made in."""

    def __init__(self, store: TaskStore, poll_s: float) -> None:
        self._store = store
        self.poll_s = poll_s
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.loop = asyncio.get_running_loop()
        #: polls made (one round trip each), for tests and benchmarks
        self.polls = 0

    async def requested(self, task_id: str) -> None:
        """Return once cancellation of ``task_id`` is requested (cancel the caller to stop
        watching)."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._waiters.setdefault(task_id, set()).add(waiter)
        if self._task is None:
            self._task = self.loop.create_task(self._run(), name="agentstream-cancel-watch")
        try:
            await waiter
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[task_id]

    async def _run(self) -> None:
        try:
            while self._waiters:
                await asyncio.sleep(self.poll_s)
                task_ids = list(self._waiters)
                if not task_ids:
                    break
                try:
                    requested = await self._store.cancel_requests(task_ids)
                except TRANSIENT_ERRORS as exc:
                    logger.warning("cancel check of %d tasks failed: %r", len(task_ids), exc)
                    continue
                self.polls += 1
                for task_id, yes in zip(task_ids, requested, strict=True):
                    if yes:
                        for waiter in self._waiters.get(task_id, ()):
                            if not waiter.done():
                                waiter.set_result(None)
        finally:
            self._task = None


_watches: weakref.WeakKeyDictionary[Any, dict[float, CancelWatch]] = weakref.WeakKeyDictionary()


def cancel_watch_for(store: TaskStore, poll_s: float) -> CancelWatch:
    """The cancel watch of ``store``'s Redis client and ``poll_s`` in the running loop
    (made on first use)."""
    by_interval = _watches.setdefault(store.redis, {})
    watch = by_interval.get(poll_s)
    if watch is None or watch.loop is not asyncio.get_running_loop():
        watch = by_interval[poll_s] = CancelWatch(store, poll_s)
    return watch
