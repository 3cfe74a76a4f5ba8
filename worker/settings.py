"""The arq side of the worker: the dependencies one process builds at startup, the arq
``Worker`` options made from a :class:`~agentstream.worker.config.WorkerConfig`, and
:class:`ResilientWorker`, the ``Worker`` that ``agentstream worker`` and
``python -m agentstream.worker`` run (:func:`create_worker`).

There is no ``WorkerSettings`` class for arq's own CLI (``arq module.WorkerSettings``): that
CLI always builds a plain arq ``Worker``, which would take jobs for arq's whole job timeout
instead of the lease (a worker killed right after taking a job would orphan it for minutes)
and would exit on a Redis outage. Run ``agentstream worker`` instead.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import secrets
import socket
from typing import Any

from arq import Worker
from arq.worker import func

from agentstream.streams import Reader, TaskStore, create_redis
from agentstream.worker.app.core import App
from agentstream.worker.app.loader import load_app
from agentstream.worker.catalog import start_publishing
from agentstream.worker.config import WorkerConfig
from agentstream.worker.deps import WorkerDeps
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.jobs import DEPS_KEY, deps_from, expire_input, remember_run_job_task, run_task
from agentstream.worker.llm import OpenAIClient
from agentstream.worker.outcomes import TRANSIENT_ERRORS
from agentstream.worker.payload import EXPIRE_JOB_NAME, JOB_NAME

__all__ = [
    "ARQ_MAX_TRIES",
    "ResilientWorker",
    "WorkerConfig",
    "build_app",
    "build_deps",
    "create_worker",
    "install_event_loop",
    "shutdown",
    "startup",
    "worker_options",
]

logger = logging.getLogger(__name__)

#: the ctx key of the worker's catalog publisher
CATALOG_KEY = "agentstream_catalog"
#: arq's own retry limit, far out of reach: our retry budget decides, never arq
ARQ_MAX_TRIES = 1_000_000


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def build_app(config: WorkerConfig) -> App:
    """The application this worker serves: ``config.app`` (``AGENTSTREAM_APP``,
    ``module:attr``) imported, else a plain ``App()`` (the built-in agents and tools)."""
    return load_app(config.app) if config.app else App()


def build_deps(config: WorkerConfig, app: App | None = None) -> WorkerDeps:
    """The clients one worker process shares between its tasks (nothing is connected yet);
    ``app`` (default: :func:`build_app`) decides the agents and the tools."""
    app = app if app is not None else build_app(config)
    redis = create_redis(config.streams)
    return WorkerDeps(
        config=config,
        redis=redis,
        store=TaskStore(redis, config.streams),
        reader=Reader(redis, config.streams),
        llm=OpenAIClient(config.model),
        registry=app.build_registry(config.tools),
        worker_id=_worker_id(),
        agent_factory=app.task_agent,
    )


async def startup(ctx: dict[str, Any], config: WorkerConfig) -> None:
    """arq ``on_startup``: build :class:`WorkerDeps` and keep them under one ctx key."""
    app = build_app(config)
    deps = build_deps(config, app)
    ctx[DEPS_KEY] = deps
    ctx[CATALOG_KEY] = await start_publishing(app, deps)
    # Everything alive now (modules, the SDK's models, clients) lives as long as the
    # process: keep it out of the collector's scans, whose full passes otherwise add
    # milliseconds to token latency (bench: send-lag p99 2.7 -> 1.1 ms).
    gc.collect()
    gc.freeze()
    logger.info(
        "agentstream worker %s: queue %r, max_jobs %d, lease %.1fs",
        deps.worker_id, deps.config.queue_name, deps.config.max_jobs, deps.config.lease_s,
    )  # fmt: skip


async def shutdown(ctx: dict[str, Any]) -> None:
    """arq ``on_shutdown`` (after every running job returned): close the clients."""
    if CATALOG_KEY in ctx:
        await ctx.pop(CATALOG_KEY).aclose()
    if DEPS_KEY in ctx:
        await deps_from(ctx).aclose()
        del ctx[DEPS_KEY]


def worker_options(config: WorkerConfig) -> dict[str, Any]:
    """The keyword arguments of :class:`ResilientWorker` for ``config``: arq's, and ``lease_s``."""
    return {
        "functions": [
            func(run_task, name=JOB_NAME, max_tries=ARQ_MAX_TRIES),
            func(expire_input, name=EXPIRE_JOB_NAME),
        ],
        "queue_name": config.queue_name,
        "redis_settings": config.redis_settings(),
        "max_jobs": config.max_jobs,
        "job_timeout": config.job_timeout_s,
        "max_tries": ARQ_MAX_TRIES,
        "allow_abort_jobs": True,
        "poll_delay": config.poll_delay_s,
        # arq lets running jobs go on this long after SIGTERM, then cancels them
        "job_completion_wait": config.shutdown_grace_s,
        # no job result is read by anyone; the stream is the result
        "keep_result": 0,
        "on_startup": functools.partial(startup, config=config),
        "on_shutdown": shutdown,
        "on_job_start": remember_run_job_task,
        "lease_s": config.lease_s,
    }


class ResilientWorker(Worker):
    """arq's worker, with a job taken on the lease and a Redis outage survived.

    - arq marks a job it takes with an in-progress key lasting the whole job timeout plus
      10 s (``in_progress_timeout_s``, minutes), and the job function only shortens it to
      the lease once it runs: a worker killed in between left its job to nobody until the
      key expired (~11 minutes). Here the key lasts ``lease_s`` from the moment the job is
      taken, so a kill at any point frees the job within the lease; the job's
      :class:`~agentstream.worker.lease.Lease` renews it from its first step.
    - arq lets a connection error escape its queue poll, and the worker exits; ours waits
      with capped backoff and polls again, so workers outlive a Redis restart (running
      attempts meanwhile keep their own retries and lease).
    """

    _outage_backoff_s = 0.05

    def __init__(self, *args: Any, lease_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(getattr(self, "in_progress_timeout_s", None), int | float):
            # Fail loudly rather than silently take jobs for minutes again.
            raise ConfigurationError(
                "this arq version has no Worker.in_progress_timeout_s: install the arq the "
                "project pins (pyproject.toml)"
            )
        # arq reads this only when it takes a job (``start_jobs``); the job timeout that
        # bounds a run stays arq's ``job_timeout``.
        self.in_progress_timeout_s = lease_s

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except TRANSIENT_ERRORS as exc:
            delay = self._outage_backoff_s
            logger.warning("queue poll failed (%r); polling again in %.2fs", exc, delay)
            self._outage_backoff_s = min(delay * 2, 2.0)
            await asyncio.sleep(delay)
        else:
            self._outage_backoff_s = 0.05

    async def close(self) -> None:
        try:
            await super().close()
        except TRANSIENT_ERRORS as exc:
            logger.warning("closing the worker without Redis: %r", exc)


def create_worker(config: WorkerConfig, **overrides: Any) -> ResilientWorker:
    """The arq ``Worker`` for ``config``; keyword ``overrides`` of its options win.

    Made outside a running event loop (``create_worker(config).run()``: the worker's own
    process), it runs on uvloop's loop when uvloop is installed; inside one, on that loop.
    """
    install_event_loop()
    return ResilientWorker(**{**worker_options(config), **overrides})


def install_event_loop() -> None:
    """Outside a running loop, make uvloop's loop (if installed) the current one, which
    arq's ``Worker`` picks up: the plain selector loop was a third of the worker's CPU at
    200 concurrent tasks, and its wake-ups most of a token's cost at a model's pace."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return  # the caller's loop runs the worker (tests, the in-process stack, benches)
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop(uvloop.new_event_loop())
