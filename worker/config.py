"""The worker's configuration: :class:`WorkerConfig`, built from ONE environment mapping
passed in (``WorkerConfig.from_env(os.environ)`` at the entry points; nothing here reads
``os.environ`` by itself), and :data:`ENV_VARS`, every variable it reads with a one-line
help (for ``agentstream worker --help``).

Light on purpose (stdlib, the streams settings and the tool settings): the CLI imports it
to describe and check a worker without loading arq, OpenAI or the agents.

Timing, and why each figure is what it is:

- a task attempt is bounded by ``task_timeout_s``; arq's own job timeout sits well above
  it, so our code always gets to write ``error`` + ``completed`` first;
- arq runs a job only while its in-progress key is absent. The worker sets that key to
  last ``lease_s`` when it takes a job, and the running attempt renews it every
  ``lease_s / 3`` (:class:`~agentstream.worker.lease.Lease`), so a SIGKILLed worker's task
  is picked up by another worker within ``lease_s + poll_delay_s`` (default 15.5 s), at
  whatever point of the job it died and however long the task runs;
- our retry budget (``max_attempts``) decides, never arq, and our code writes the final
  ``completed``;
- on SIGTERM the worker stops taking jobs and lets running ones finish for
  ``shutdown_grace_s``; the rest are cancelled, flush what they have and are resumed
  elsewhere at once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from agentstream.streams.keys import Keys
from agentstream.streams.settings import StreamsSettings, env_integer, env_number
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.tools.settings import ToolSettings

if TYPE_CHECKING:
    from arq.connections import RedisSettings

    from agentstream.worker.llm import ModelSettings

__all__ = ["ENV_VARS", "PROCESS_ENV_VARS", "WorkerConfig", "resolve_queue_name"]

#: every environment variable the worker reads, with what it sets
ENV_VARS: tuple[tuple[str, str], ...] = (
    ("REDIS_URL", "Redis of the event streams (and of the queue, unless AGENTSTREAM_QUEUE_URL)"),
    ("AGENTSTREAM_REDIS_CLUSTER", "true: REDIS_URL is a Redis Cluster node (streams only)"),
    ("AGENTSTREAM_PREFIX", "key prefix (default agentstream)"),
    ("AGENTSTREAM_RETENTION_S", "TTL of a finished task's keys (default 86400)"),
    ("AGENTSTREAM_MAXLEN", "approximate cap of each event stream (default 100000)"),
    ("AGENTSTREAM_FEED_MAXLEN", "approximate cap of the task feed (default 100000)"),
    ("AGENTSTREAM_REDIS_TIMEOUT_S", "socket timeout of Redis commands (default 5)"),
    ("AGENTSTREAM_BLOCK_MS", "how long one blocking read waits before it is re-issued (default 5000)"),
    ("AGENTSTREAM_FLUSH_LINGER_MS", "wait for other tasks' tokens before a busy Redis write (default 0)"),
    ("AGENTSTREAM_QUEUE", "arq queue name, the same on API and workers (default <prefix>:queue)"),
    ("AGENTSTREAM_QUEUE_URL", "Redis of the queue and the leases, if not REDIS_URL (not a Cluster)"),
    ("AGENTSTREAM_APP", "the application to serve, as module:attr (default: the built-in agents)"),
    ("AGENTSTREAM_MAX_JOBS", "tasks one worker runs at once (default 50)"),
    ("AGENTSTREAM_TASK_TIMEOUT_S", "wall-clock limit of one attempt (default 600)"),
    ("AGENTSTREAM_INPUT_TIMEOUT_S", "how long a task may wait for input (default 86400)"),
    ("AGENTSTREAM_MAX_ATTEMPTS", "attempts per task, crashes included (default 3)"),
    ("AGENTSTREAM_LEASE_S", "a dead worker's task is taken over within this (default 15, at least 1)"),
    ("AGENTSTREAM_SHUTDOWN_GRACE_S", "after SIGTERM, how long running tasks go on (default 10)"),
    ("AGENTSTREAM_POLL_DELAY_S", "queue poll interval of an idle worker (default 0.5)"),
    ("AGENTSTREAM_RETRY_BACKOFF_S", "delay before the first retry, doubled per attempt (default 1)"),
    ("AGENTSTREAM_LOG_LEVEL", "log level (default INFO)"),
    ("OPENAI_BASE_URL", "any OpenAI-compatible endpoint (default OpenAI)"),
    ("OPENAI_API_KEY", "the model's key"),
    ("AGENTSTREAM_MODEL", "model name (default gpt-4o-mini)"),
    ("AGENTSTREAM_MODEL_TIMEOUT_S", "longest wait for the next bytes of a model response (default 60)"),
    ("AGENTSTREAM_MODEL_CONNECT_TIMEOUT_S", "connect timeout of the model client (default 10)"),
    ("AGENTSTREAM_MODEL_RETRIES", "retries of a failed model call (default 3)"),
    ("AGENTSTREAM_MODEL_BACKOFF_S", "first model retry delay, doubled per retry (default 0.5)"),
    ("AGENTSTREAM_MODEL_BACKOFF_MAX_S", "model retry delay cap (default 8)"),
    ("AGENTSTREAM_MODEL_STREAM_OPTIONS", "false: never send stream_options (default: send, drop if refused)"),
    ("AGENTSTREAM_MODEL_HTTP", "the model client's HTTP transport: aiohttp (default) or httpx"),
    ("AGENTSTREAM_TOOL_TIMEOUT_S", "default timeout of one tool call (default 30)"),
    ("AGENTSTREAM_HTTP_GET_ALLOW", "hosts http_get may fetch, comma list; empty: http_get off"),
    ("AGENTSTREAM_HTTP_GET_TIMEOUT_S", "http_get timeout (default 10)"),
    ("AGENTSTREAM_HTTP_GET_MAX_BYTES", "http_get response size limit (default 262144)"),
)

#: what the worker process reads besides :class:`WorkerConfig` (logging, tracing and
#: metrics are set up by ``python -m agentstream.worker`` before the config is used)
PROCESS_ENV_VARS: tuple[tuple[str, str], ...] = (
    ("AGENTSTREAM_LOG_FORMAT", "text (default) or json: one JSON object per log line"),
    ("AGENTSTREAM_OTEL_EXPORTER", "console or otlp: set up a tracer provider (needs the otel extra)"),
    ("AGENTSTREAM_WORKER_METRICS_PORT", "serve Prometheus metrics on this port (default 0: off)"),
    ("AGENTSTREAM_WORKER_METRICS_HOST", "address of the metrics port (default 127.0.0.1)"),
)

#: how far arq's job timeout sits above ours, so our timeout handling always runs first
_JOB_TIMEOUT_MARGIN_S = 60.0
#: ``module:attr``, dotted on both sides
_APP_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def resolve_queue_name(keys: Keys, env: Mapping[str, str]) -> str:
    """The arq queue of this deployment: ``AGENTSTREAM_QUEUE``, else ``<prefix>:queue``.

    Deriving the default from the key prefix keeps two deployments sharing one Redis (or
    two test runs) from running each other's jobs. API and worker must agree on it.
    """
    return env.get("AGENTSTREAM_QUEUE") or keys.queue


def _model_settings(env: Mapping[str, str] | None = None) -> ModelSettings:
    # Imported here: the model client's module loads the OpenAI SDK, which this module
    # must not load just to be imported.
    from agentstream.worker.llm import ModelSettings

    return ModelSettings() if env is None else ModelSettings.from_env(env)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything one worker process needs to know, read once (:meth:`from_env`)."""

    streams: StreamsSettings = field(default_factory=StreamsSettings)
    #: the model client's settings (``OPENAI_*``, ``AGENTSTREAM_MODEL*``)
    model: ModelSettings = field(default_factory=_model_settings)
    #: the built-in tools' settings (``AGENTSTREAM_TOOL_TIMEOUT_S``, ``AGENTSTREAM_HTTP_GET_*``)
    tools: ToolSettings = field(default_factory=ToolSettings)
    #: the application to serve, ``module:attr``; None serves the built-in agents
    app: str | None = None
    #: tasks one worker process runs concurrently
    max_jobs: int = 50
    #: wall-clock limit of one attempt; exceeding it ends the task with ``TaskTimeout``
    task_timeout_s: float = 600.0
    #: how long a task may wait for input (an approval, an answer) before it ends
    #: with ``InputTimeout``; a task's ``input_timeout_s`` overrides it
    input_timeout_s: float = 86400.0
    #: attempts a task gets in all (first run and retries, crashes included)
    max_attempts: int = 3
    #: lease of a taken job: a dead worker's task is recovered after at most this
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
    #: log level of ``agentstream worker`` / ``python -m agentstream.worker``
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.lease_s < 1.0:
            raise ConfigurationError(f"lease_s must be at least 1 second, got {self.lease_s}")
        if min(self.task_timeout_s, self.shutdown_grace_s, self.poll_delay_s, self.cancel_poll_s) <= 0:
            raise ConfigurationError("worker timeouts and delays must be positive numbers of seconds")
        if self.retry_backoff_s < 0 or self.max_jobs < 1 or self.max_attempts < 1:
            raise ConfigurationError("max_jobs and max_attempts must be >= 1, retry_backoff_s >= 0")
        if self.app is not None and not _APP_REF.match(self.app):
            raise ConfigurationError(
                f"AGENTSTREAM_APP must be module:attr (for example myagents:app), got {self.app!r}"
            )
        level = self.log_level.upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ConfigurationError(
                f"unknown log level {self.log_level!r}; use DEBUG, INFO, WARNING or ERROR"
            )
        object.__setattr__(self, "log_level", level)
        if not self.queue_name:
            object.__setattr__(self, "queue_name", self.streams.keys.queue)

    @property
    def job_timeout_s(self) -> float:
        """arq's job timeout: above the task timeout, the grace period and a margin."""
        return self.task_timeout_s + self.shutdown_grace_s + _JOB_TIMEOUT_MARGIN_S

    @property
    def queue_redis_url(self) -> str:
        """Redis of the arq queue and the leases: ``queue_url``, else the streams' Redis."""
        return self.queue_url or self.streams.redis_url

    def redis_settings(self) -> RedisSettings:
        """arq's connection settings for :attr:`queue_redis_url` (imports arq)."""
        from arq.connections import RedisSettings

        return RedisSettings.from_dsn(self.queue_redis_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> WorkerConfig:
        """Read every variable of :data:`ENV_VARS` from ``env`` (pass ``os.environ``
        explicitly); empty values count as unset, keyword overrides win."""
        streams = StreamsSettings.from_env(env)
        values: dict[str, Any] = {
            "streams": streams,
            "model": _model_settings(env),
            "tools": ToolSettings.from_env(env),
            "app": env.get("AGENTSTREAM_APP") or None,
            "queue_name": resolve_queue_name(streams.keys, env),
            "queue_url": env.get("AGENTSTREAM_QUEUE_URL") or None,
            "log_level": env.get("AGENTSTREAM_LOG_LEVEL") or _defaults()["log_level"],
            **_timing_from_env(env),
        }
        values.update(overrides)
        return cls(**values)


def _timing_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The numeric settings of :class:`WorkerConfig`, each checked as it is read."""
    d = _defaults()

    def number(name: str, default: float, **bounds: float) -> float:
        return env_number(env, name, default, error=ConfigurationError, **bounds)

    return {
        "max_jobs": env_integer(
            env, "AGENTSTREAM_MAX_JOBS", d["max_jobs"], minimum=1, error=ConfigurationError
        ),
        "task_timeout_s": number("AGENTSTREAM_TASK_TIMEOUT_S", d["task_timeout_s"], above=0),
        "input_timeout_s": number("AGENTSTREAM_INPUT_TIMEOUT_S", d["input_timeout_s"], above=0),
        "max_attempts": env_integer(
            env, "AGENTSTREAM_MAX_ATTEMPTS", d["max_attempts"], minimum=1, error=ConfigurationError
        ),
        "lease_s": number("AGENTSTREAM_LEASE_S", d["lease_s"], above=0),
        "shutdown_grace_s": number("AGENTSTREAM_SHUTDOWN_GRACE_S", d["shutdown_grace_s"], above=0),
        "poll_delay_s": number("AGENTSTREAM_POLL_DELAY_S", d["poll_delay_s"], above=0),
        "retry_backoff_s": number("AGENTSTREAM_RETRY_BACKOFF_S", d["retry_backoff_s"], minimum=0),
    }


def _defaults() -> dict[str, Any]:
    # The class attributes are slots, not defaults: the defaults live on the fields.
    return {f.name: f.default for f in fields(WorkerConfig)}
