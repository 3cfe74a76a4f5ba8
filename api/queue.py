"""The arq queue as the API sees it: enqueue a task's job, probe the queue.

Enqueueing goes through ``worker.enqueue`` (the job name and its one argument, the task
id); the arq job id is the task id too, so enqueueing is idempotent.
"""

from __future__ import annotations

import logging

from arq.connections import ArqRedis

from agentstream.api.settings import ApiSettings
from agentstream.worker.enqueue import enqueue_task

__all__ = ["JobQueue"]

logger = logging.getLogger(__name__)


class JobQueue:
    """Owns the arq pool. Build it in the lifespan: ``async with JobQueue(settings) as q``."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.name = settings.resolved_queue_name
        self._pool: ArqRedis | None = None

    async def __aenter__(self) -> JobQueue:
        streams = self.settings.streams
        # Built directly rather than by arq.create_pool, which sets no socket timeout.
        pool = ArqRedis.from_url(
            self.settings.resolved_queue_url,
            socket_timeout=streams.command_timeout_s,
            socket_connect_timeout=streams.connect_timeout_s,
        )
        pool.default_queue_name = self.name
        self._pool = pool
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    @property
    def pool(self) -> ArqRedis:
        if self._pool is None:
            raise RuntimeError("the job queue is closed: use it as 'async with JobQueue(...)'")
        return self._pool

    async def enqueue(self, task_id: str, *, job_id: str | None = None) -> None:
        """Enqueue the task's job (``job_id`` defaults to the task id); a job already known
        under its id is left alone."""
        await enqueue_task(self.pool, task_id, queue_name=self.name, job_id=job_id)

    async def ping(self) -> None:
        """Raise unless the queue's Redis answers and the queue key is readable."""
        await self.pool.ping()
        await self.pool.zcard(self.name)
