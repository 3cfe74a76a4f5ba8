"""Enqueueing a task's job: what the API calls after ``TaskStore.create_task``.

Light on purpose (arq, the job name and the queue's name only), so the API can import it
without pulling in agents, model client or tools.
"""

from __future__ import annotations

from arq.connections import ArqRedis

from agentstream.worker.config import resolve_queue_name
from agentstream.worker.payload import JOB_NAME

__all__ = ["enqueue_task", "resolve_queue_name"]


async def enqueue_task(arq_pool: ArqRedis, task_id: str, *, queue_name: str | None = None) -> None:
    """Enqueue the job that runs ``task_id`` (all its attempts); idempotent per task id.

    The arq job id is the task id, so a repeated call while the job is queued, running or
    its result is kept is a no-op; a job that slips through anyway finds the task already
    completed and returns without writing. ``queue_name`` defaults to the pool's.
    """
    await arq_pool.enqueue_job(JOB_NAME, task_id, _job_id=task_id, _queue_name=queue_name)
