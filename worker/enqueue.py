"""Enqueueing a task's job: what the API calls after ``TaskStore.create_task``.

Light on purpose (arq, the job name and the queue's name only), so the API can import it
without pulling in agents, model client or tools.
"""

from __future__ import annotations

from arq.connections import ArqRedis

from agentstream.worker.config import resolve_queue_name
from agentstream.worker.payload import EXPIRE_JOB_NAME, JOB_NAME

__all__ = ["enqueue_expiry", "enqueue_task", "resolve_queue_name"]


async def enqueue_task(
    arq_pool: ArqRedis, task_id: str, *, queue_name: str | None = None, job_id: str | None = None
) -> None:
    """Enqueue the job that runs ``task_id`` (all its attempts); idempotent per task id.

    The arq job id is the task id, so a repeated call while the job is queued, running or
    its result is kept is a no-op; a job that slips through anyway finds the task already
    completed and returns without writing. ``queue_name`` defaults to the pool's.

    Input requeues a waiting task under a ``job_id`` of its own (``<task id>:input:<seq>``):
    the job that ended waiting may not be forgotten by arq yet, and a known id is a no-op.
    """
    await arq_pool.enqueue_job(JOB_NAME, task_id, _job_id=job_id or task_id, _queue_name=queue_name)


async def enqueue_expiry(
    arq_pool: ArqRedis, task_id: str, attempt: int, defer_s: float, *, queue_name: str | None = None
) -> None:
    """Arrange for attempt ``attempt``'s wait for input to end after ``defer_s`` (arq's
    deferred job, kept in the queue's Redis: no worker is held meanwhile)."""
    await arq_pool.enqueue_job(
        EXPIRE_JOB_NAME, task_id, attempt, _job_id=f"{task_id}:deadline:{attempt}", _defer_by=defer_s,
        _queue_name=queue_name,
    )  # fmt: skip
