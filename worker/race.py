"""Racing an attempt's agent against a cancel request and the loss of its lease."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Coroutine
from typing import Any

from agentstream.streams import TaskStore
from agentstream.worker.cancels import cancel_watch_for

__all__ = ["AgentRace", "Stop"]

logger = logging.getLogger(__name__)

#: how long, beyond one cancel poll, stopping the agent's helper tasks may take
_STOP_GRACE_S = 5.0


class Stop(enum.Enum):
    """Why the race ended."""

    FINISHED = "finished"
    CANCEL_REQUESTED = "cancel requested"
    LEASE_LOST = "lease lost"


class AgentRace:
    """Runs an agent until it ends, cancellation of the task is requested (polled every
    ``cancel_poll_s``, for all the process's tasks at once) or ``lease_lost`` is set;
    :attr:`cancel_reason` holds the reason recorded with a cancel request."""

    def __init__(
        self, store: TaskStore, task_id: str, *, cancel_poll_s: float, lease_lost: asyncio.Event
    ) -> None:
        self.task_id = task_id
        self.cancel_reason: str | None = None
        self._store = store
        self._cancel_poll_s = cancel_poll_s
        self._lease_lost = lease_lost

    async def run(self, work: Coroutine[Any, Any, None], cancel_event: asyncio.Event) -> Stop:
        """Run ``work`` to one of the :class:`Stop` reasons; re-raise its failure.

        The agent runs in a child task, so stopping it never looks like this task being
        cancelled; a cancellation of this task reaches the child through ``finally``, and
        ``cancel_event`` tells the agent to stop at its next safe point.
        """
        agent = asyncio.create_task(work, name=f"agentstream-agent-{self.task_id}")
        watcher = asyncio.create_task(self._watch_cancel(), name=f"agentstream-cancel-{self.task_id}")
        lease = asyncio.create_task(self._lease_lost.wait(), name=f"agentstream-lease-{self.task_id}")
        tasks = {agent, watcher, lease}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not agent.done():
                cancel_event.set()
            # redis-py can swallow a cancel() that lands inside a command (the watcher's
            # one command, reading the reason): the wait is bounded.
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=self._cancel_poll_s + _STOP_GRACE_S)
            for task in stuck:
                logger.error("task %s: %s did not stop after cancel()", self.task_id, task.get_name())
        if agent.done() and not agent.cancelled():
            agent.result()  # re-raises the agent's failure
            return Stop.FINISHED
        if watcher.done() and not watcher.cancelled() and watcher.result():
            return Stop.CANCEL_REQUESTED
        return Stop.LEASE_LOST

    async def _watch_cancel(self) -> bool:
        """True once cancellation of the task was requested (the process's one poll of
        every running task, :mod:`agentstream.worker.cancels`); cancel it to stop."""
        await cancel_watch_for(self._store, self._cancel_poll_s).requested(self.task_id)
        meta = await self._store.meta(self.task_id)
        if meta is not None and meta.cancel_reason:
            self.cancel_reason = meta.cancel_reason
        return True
