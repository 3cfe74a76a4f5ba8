"""Messages sent to a task while it is queued or running (``POST /v1/tasks/{id}/input``
with a ``message``): what an agent takes before each model turn.

The API records each message as an ``input`` event, and its seq in the task's meta
(:meth:`~agentstream.streams.TaskStore.record_message`). Before each model turn the agent
asks its :class:`Inbox` for the messages it was not given yet; it hands them to the model
as user messages and records ``input_delivered`` (their seqs), which a later attempt reads
(:func:`~agentstream.worker.agents.rebuild_resume_state`): a message is given to the model
exactly once, whatever attempt ends the task. Before its final answer the agent closes the
inbox (:meth:`Inbox.close`): a message is then refused with 409, or taken and answered.

The check costs one HGET per model turn (one more round trip, and the XRANGE of the new
messages, only when some came): nothing per token. Measured against a local Redis on a
busy 2-core machine: p50 0.10 ms, p99 0.7 ms per turn, next to a model turn's 100s of ms.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from agentstream.streams import QueuedMessage, TaskStore
from agentstream.streams.errors import TRANSIENT_REDIS_ERRORS

__all__ = ["Inbox", "InboxUnavailable", "QueuedMessage", "TaskInbox"]

logger = logging.getLogger(__name__)


class InboxUnavailable(Exception):
    """Redis failed as the agent was closing its inbox before its final answer: it cannot
    know whether a message must still be answered, so the attempt ends to be retried (the
    agent lets this through, the worker retries the task)."""


class Inbox:
    """The inbox of a run outside a worker: nothing is ever sent to it."""

    async def take(self) -> list[QueuedMessage]:
        """The messages sent since the last call, in order (none here)."""
        return []

    async def close(self) -> list[QueuedMessage]:
        """Refuse further messages, unless some were sent and not taken: those, then."""
        return []


class TaskInbox(Inbox):
    """The inbox of one attempt of a task; ``given`` are the seqs of the messages earlier
    attempts handed to the model (their ``input_delivered`` events)."""

    def __init__(self, store: TaskStore, task_id: str, attempt: int, given: Iterable[int] = ()) -> None:
        self._store = store
        self._task_id = task_id
        self._attempt = attempt
        self._given = set(given)

    async def take(self) -> list[QueuedMessage]:
        try:
            return await self._take()
        except TRANSIENT_REDIS_ERRORS as exc:
            # A message is durable: it is given before a later turn, or before the end.
            logger.warning("task %s: could not read its messages: %r", self._task_id, exc)
            return []

    async def close(self) -> list[QueuedMessage]:
        try:
            if await self._store.close_inbox(self._task_id, self._attempt, len(self._given)):
                return []
            return await self._take()
        except TRANSIENT_REDIS_ERRORS as exc:
            raise InboxUnavailable(f"task {self._task_id!r}: could not close its inbox: {exc!r}") from exc

    async def _take(self) -> list[QueuedMessage]:
        if await self._store.queued_count(self._task_id) <= len(self._given):
            return []
        messages = await self._store.queued_messages(self._task_id, self._given)
        self._given.update(message.seq for message in messages)
        return messages
