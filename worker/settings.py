"""The arq worker's configuration: :class:`WorkerConfig` (typed, read once from the
environment), the dependencies built at startup, and the :class:`WorkerSettings` that
``arq worker.settings.WorkerSettings`` (or ``python -m worker``) runs.

Timing, and why each figure is what it is:

- a task attempt is bounded by ``task_timeout_s``; arq's own ``job_timeout`` sits well
  above it, so our code always gets to write ``error`` + ``completed`` first;
- arq re-runs a job only after its in-progress key expires. The running attempt turns that
  key into a lease of ``lease_s`` renewed every ``lease_s / 3``
  (:class:`worker.lease.Lease`), so a SIGKILLed worker's task is picked up by another worker
  within ``lease_s + poll_delay_s`` (default 15.5 s), however long the task runs;
- ``max_tries`` is effectively unlimited: arq never gives up on a job by itself, our retry
  budget (``max_attempts``) decides, and our code writes the final ``completed``;
- on SIGTERM arq stops taking jobs and lets running ones finish for ``shutdown_grace_s``;
  the rest are cancelled, flush what they have and are resumed elsewhere at once.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentstream.streams import Reader, StreamsSettings, TaskStore, create_redis
from agentstream.streams.settings import env_integer, env_number
from agentstream.worker.enqueue import resolve_queue_name
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.jobs import DEPS_KEY, deps_from, remember_run_job_task, run_task
from agentstream.worker.llm import ModelSettings, OpenAIClient
from agentstream.worker.payload import JOB_NAME
from agentstream.worker.run import WorkerDeps
from agentstream.worker.tools import ToolSettings, default_registry
from arq import Worker
from arq.connections import RedisSettings
from arq.worker import func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "ARQ_MAX_TRIES",
    "WorkerConfig",
    "build_deps",
    "create_worker",
    "shutdown",
    "startup",
    "worker_options",
]

logger = logging.getLogger(__name__)

#: arq's own retry limit, far out of reach: our retry budget decides, never arq
ARQ_MAX_TRIES = 1_000_000
#: how far arq's job timeout sits above ours, so our timeout handling always runs first
_JOB_TIMEOUT_MARGIN_S = 60.0


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything the worker needs to know, read once (``from_env``)."""

    streams: StreamsSettings = field(default_factory=StreamsSettings)
    #: tasks one worker process runs concurrently
    max_jobs: int = 50
    #: wall-clock limit of one attempt; exceeding it ends the task with ``TaskTimeout``
    task_timeout_s: float = 600.0
    #: attempts a task gets in all (first run and retries, crashes included)
    max_attempts: int = 3
    #: lease of a running attempt: a dead worker's task is recovered after at most this
    lease_s: float = 15.0
    #: on SIGTERM, how long running tasks may go on before they are checkpointed
    shutdown_grace_s: float = 10.0
    #: arq queue name; empty means ``<prefix>:queue``
    queue_name: str = ""
    #: Redis of the arq queue when it is not the streams' (a Cluster cannot hold it)
    queue_url: str | None = None
    #: how often an idle worker polls the queue
    poll_delay_s: float = 0.5
    #: delay before the first retry after a retryable failure, doubled per attempt
    retry_backoff_s: float = 1.0
    #: how often a running attempt checks whether cancellation was requested
    cancel_poll_s: float = 0.25

    def __post_init__(self) -> None:
        if self.lease_s < 1.0:
            raise ConfigurationError(f"lease_s must be at least 1 second, got {self.lease_s}")
        if min(self.task_timeout_s, self.shutdown_grace_s, self.poll_delay_s, self.cancel_poll_s) <= 0:
            raise ConfigurationError("worker timeouts and delays must be positive numbers of seconds")
        if self.retry_backoff_s < 0 or self.max_jobs < 1 or self.max_attempts < 1:
            raise ConfigurationError("max_jobs and max_attempts must be >= 1, retry_backoff_s >= 0")
        if not self.queue_name:
            object.__setattr__(self, "queue_name", resolve_queue_name(self.streams.keys, {}))

    @property
    def job_timeout_s(self) -> float:
        """arq's job timeout: above the task timeout, the grace period and a margin."""
        return self.task_timeout_s + self.shutdown_grace_s + _JOB_TIMEOUT_MARGIN_S

    def redis_settings(self) -> RedisSettings:
        """arq's connection settings: ``queue_url``, else the streams' Redis."""
        return RedisSettings.from_dsn(self.queue_url or self.streams.redis_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> WorkerConfig:
        """Read ``REDIS_URL`` and the rest of :meth:`StreamsSettings.from_env`, then
        ``AGENTSTREAM_MAX_JOBS``, ``AGENTSTREAM_TASK_TIMEOUT_S``, ``AGENTSTREAM_MAX_ATTEMPTS``,
        ``AGENTSTREAM_LEASE_S``, ``AGENTSTREAM_SHUTDOWN_GRACE_S``, ``AGENTSTREAM_QUEUE``,
        ``AGENTSTREAM_QUEUE_URL``,
        ``AGENTSTREAM_POLL_DELAY_S`` and ``AGENTSTREAM_RETRY_BACKOFF_S``; keyword overrides win."""
        env = os.environ if env is None else env
        streams = StreamsSettings.from_env(env)
        default = cls(streams=streams)
        values: dict[str, Any] = {
            "streams": streams,
            "max_jobs": env_integer(
                env, "AGENTSTREAM_MAX_JOBS", default.max_jobs, minimum=1, error=ConfigurationError
            ),
            "task_timeout_s": env_number(
                env, "AGENTSTREAM_TASK_TIMEOUT_S", default.task_timeout_s, above=0, error=ConfigurationError
            ),
            "max_attempts": env_integer(
                env, "AGENTSTREAM_MAX_ATTEMPTS", default.max_attempts, minimum=1, error=ConfigurationError
            ),
            "lease_s": env_number(
                env, "AGENTSTREAM_LEASE_S", default.lease_s, above=0, error=ConfigurationError
            ),
            "shutdown_grace_s": env_number(
                env,
                "AGENTSTREAM_SHUTDOWN_GRACE_S",
                default.shutdown_grace_s,
                above=0,
                error=ConfigurationError,
            ),
            "queue_name": resolve_queue_name(streams.keys, env),
            "queue_url": env.get("AGENTSTREAM_QUEUE_URL") or None,
            "poll_delay_s": env_number(
                env, "AGENTSTREAM_POLL_DELAY_S", default.poll_delay_s, above=0, error=ConfigurationError
            ),
            "retry_backoff_s": env_number(
                env,
                "AGENTSTREAM_RETRY_BACKOFF_S",
                default.retry_backoff_s,
                minimum=0,
                error=ConfigurationError,
            ),
        }
        values.update(overrides)
        return cls(**values)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def build_deps(config: WorkerConfig) -> WorkerDeps:
    """The clients one worker process shares between its tasks (nothing is connected yet)."""
    redis = create_redis(config.streams)
    return WorkerDeps(
        config=config,
        redis=redis,
        store=TaskStore(redis, config.streams),
        reader=Reader(redis, config.streams),
        llm=OpenAIClient(ModelSettings.from_env()),
        registry=default_registry(ToolSettings.from_env()),
        worker_id=_worker_id(),
    )


async def startup(ctx: dict[str, Any], config: WorkerConfig | None = None) -> None:
    """arq ``on_startup``: build :class:`WorkerDeps` and keep them under one ctx key."""
    deps = build_deps(config if config is not None else WorkerConfig.from_env())
    ctx[DEPS_KEY] = deps
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
    if DEPS_KEY in ctx:
        await deps_from(ctx).aclose()
        del ctx[DEPS_KEY]


def worker_options(config: WorkerConfig) -> dict[str, Any]:
    """The arq ``Worker`` keyword arguments for ``config``."""
    return {
        "functions": [func(run_task, name=JOB_NAME, max_tries=ARQ_MAX_TRIES)],
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
        # arq reads this only when it takes a job (``start_jobs``); the job timeout that
        # bounds a run stays arq's ``job_timeout``.
        self.in_progress_timeout_s = lease_s

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            delay = self._outage_backoff_s
            logger.warning("queue poll failed (%r); polling again in %.2fs", exc, delay)
            self._outage_backoff_s = min(delay * 2, 2.0)
            await asyncio.sleep(delay)
        else:
            self._outage_backoff_s = 0.05

    async def close(self) -> None:
        try:
            await super().close()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            logger.warning("closing the worker without Redis: %r", exc)


def create_worker(config: WorkerConfig | None = None, **overrides: Any) -> Worker:
    """An arq ``Worker`` for ``config`` (default: from the environment); ``overrides`` win."""
    options = worker_options(config if config is not None else WorkerConfig.from_env())
    return ResilientWorker(**{**options, **overrides})
