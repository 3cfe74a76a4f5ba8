"""Enqueueing a task's job: what the API calls after ``TaskStore.create_task``.

Light on purpose (arq and the job name only), so the API can import it without pulling in
agents, model client or tools.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from agentstream.streams.keys import Keys
from agentstream.worker.payload import JOB_NAME
from arq.connections import ArqRedis

__all__ = ["enqueue_task", "resolve_queue_name"]


def resolve_queue_name(keys: Keys, env: Mapping[str, str] | None = None) -> str:
    """The arq queue of this deployment: ``AGENTSTREAM_QUEUE``, else ``<prefix>:queue``.

    Deriving the default from the key prefix keeps two deployments sharing one Redis (or
    two test runs) from running each other's jobs. API and worker must agree on it.
    """
    env = os.environ if env is None else env
    return env.get("AGENTSTREAM_QUEUE") or keys.queue


async def enqueue_task(arq_pool: ArqRedis, task_id: str, *, queue_name: str | None = None) -> None:
    """Enqueue the job that runs ``task_id`` (all its attempts); idempotent per task id.

    The arq job id is the task id, so a repeated call while the job is queued, running or
    its result is kept is a no-op; a job that slips through anyway finds the task already
    completed and returns without writing. ``queue_name`` defaults to the pool's.
    """
    await arq_pool.enqueue_job(JOB_NAME, task_id, _job_id=task_id, _queue_name=queue_name)
