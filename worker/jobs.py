"""The arq job ``run_task``: one run of it is one attempt of one task.

What arq 0.28 does around it (``arq/worker.py``), and what this job relies on:

- a job stays in the queue until a run of it *finishes*; returning (or raising anything but
  ``Retry``/``CancelledError``) finishes it, so the job returns only once the stream has
  its ``completed`` (or a newer attempt owns the task);
- ``Retry(defer=...)`` puts the job back for a later run (``max_tries`` is set out of
  reach, so arq never drops it: our budget decides);
- a run is skipped while ``arq:in-progress:<job_id>`` exists; the worker sets that key for
  ``lease_s`` when it takes the job and :class:`~agentstream.worker.lease.Lease` keeps it
  alive only while this run is, so a SIGKILLed worker's job runs again within ``lease_s``,
  whether it died before or during this function;
- on SIGTERM (after ``job_completion_wait``) arq cancels the *run_job* task, and the
  cancellation reaches this job through ``wait_for``; arq then deletes the in-progress key
  and leaves the job queued, so another worker resumes it at once. ``Job.abort()`` cancels
  only this job's own task, and arq then finishes the job. The two are told apart by
  whether the run_job task is itself being cancelled (:func:`remember_run_job_task`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from arq import Retry

from agentstream.worker.deps import WorkerDeps
from agentstream.worker.enqueue import enqueue_expiry
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.lease import Lease
from agentstream.worker.observability import bind_key_id
from agentstream.worker.outcomes import TRANSIENT_ERRORS, Outcome
from agentstream.worker.run import AttemptRunner

__all__ = ["DEPS_KEY", "RUN_JOB_TASK_KEY", "deps_from", "expire_input", "remember_run_job_task", "run_task"]

logger = logging.getLogger(__name__)

#: the one ctx key holding the worker's :class:`WorkerDeps`
DEPS_KEY = "agentstream"
#: per-job ctx key: arq's run_job task of this job (set by ``on_job_start``)
RUN_JOB_TASK_KEY = "agentstream_run_job_task"


def deps_from(ctx: dict[str, Any]) -> WorkerDeps:
    """The worker's dependencies; raises if ``on_startup`` did not build them."""
    deps = ctx.get(DEPS_KEY)
    if not isinstance(deps, WorkerDeps):
        raise ConfigurationError(
            f"ctx[{DEPS_KEY!r}] holds no WorkerDeps: run the worker made by "
            "agentstream.worker.settings.create_worker, whose on_startup builds them"
        )
    return deps


async def remember_run_job_task(ctx: dict[str, Any]) -> None:
    """arq ``on_job_start``: arq awaits it inside the job's run_job task and passes the job
    the same ``ctx`` dict, so the job can later tell a shutdown (that task is cancelled)
    from an abort (only the job's own task is)."""
    ctx[RUN_JOB_TASK_KEY] = asyncio.current_task()
    if ctx.get("job_id"):
        # The job id is the task's key id (``:<suffix>`` for a requeue after input or a
        # wait's deadline; key ids hold no colon): arq's job lines carry it.
        bind_key_id(str(ctx["job_id"]).split(":", 1)[0])


def _shutdown_probe(ctx: dict[str, Any]) -> Callable[[], bool]:
    run_job_task = ctx.get(RUN_JOB_TASK_KEY)
    if not isinstance(run_job_task, asyncio.Task):
        return lambda: False
    return lambda: run_job_task.cancelling() > 0


async def run_task(ctx: dict[str, Any], task_id: str) -> None:
    """Run the next attempt of ``task_id`` under a lease; raise ``Retry`` for another one."""
    deps = deps_from(ctx)
    bind_key_id(task_id)
    config = deps.config
    job_id = str(ctx.get("job_id") or task_id)
    owner = f"{deps.worker_id}/{secrets.token_hex(3)}"
    # arq's own connection holds the lease: its in-progress key is on the queue's Redis.
    lease = Lease(
        ctx.get("redis") or deps.redis,
        job_id,
        config.lease_s,
        owner,
        meta_key=config.streams.keys.meta(task_id),
        meta_redis=deps.redis,
    )
    try:
        async with lease:
            runner = AttemptRunner(
                deps, task_id, interrupted=_shutdown_probe(ctx), lease_lost=lease.lost,
                schedule_deadline=_deadline_scheduler(ctx, deps, task_id),
            )  # fmt: skip
            outcome = await runner.run()
    except TRANSIENT_ERRORS as exc:
        # Redis failed outside the attempt (lease, open_attempt): nothing was decided.
        logger.warning("task %s: Redis unavailable (%r); job retried", task_id, exc)
        raise Retry(defer=config.retry_backoff_s) from exc
    if outcome.kind not in (Outcome.DONE, Outcome.WAITING):
        # SUPERSEDED retries too: arq finishing this run would take the job out of the queue
        # under the newer attempt, which could then not be recovered if its worker died.
        raise Retry(defer=outcome.defer_s)


def _deadline_scheduler(ctx: dict[str, Any], deps: WorkerDeps, task_id: str) -> Callable[[int, float], Any]:
    async def schedule(attempt: int, defer_s: float) -> None:
        pool = ctx.get("redis")
        if pool is None:
            raise ConfigurationError("the arq job has no queue connection to arrange its input deadline")
        async with asyncio.timeout(deps.config.lease_s):
            await enqueue_expiry(pool, task_id, attempt, defer_s, queue_name=deps.config.queue_name)

    return schedule


async def expire_input(ctx: dict[str, Any], task_id: str, attempt: int) -> None:
    """The deferred job of a wait's deadline: end the task if it still waits under ``attempt``."""
    deps = deps_from(ctx)
    bind_key_id(task_id)
    meta = await deps.store.meta(task_id)
    if meta is None or meta.status != "waiting" or meta.attempt != attempt:
        return
    limit = (meta.request or {}).get("input_timeout_s") or deps.config.input_timeout_s
    message = f"nobody answered within the input timeout of {limit:g}s"
    events = [
        {"type": "error", "error": message, "error_type": "InputTimeout", "retryable": False},
        {"type": "completed", "success": False, "status": "failed", "execution_time": 0.0},
    ]
    if await deps.store.end_wait(task_id, attempt, events, "failed"):
        logger.info("task %s: its wait for input passed the deadline; ended", task_id)
