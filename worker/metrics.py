"""The metrics of one worker process, in the Prometheus format of ``prometheus-client``,
served on a port of their own when ``AGENTSTREAM_WORKER_METRICS_PORT`` is set (off by
default; bound to loopback unless ``AGENTSTREAM_WORKER_METRICS_HOST`` says otherwise).

One registry per process (:data:`REGISTRY`, not the library's global one): a process
running several in-process workers (tests, the CLI's demo) reports their sum. Several
worker processes on one host need one port each; Prometheus sums them with ``sum()``.

The figures, fed by :mod:`agentstream.worker.observability`:

- ``agentstream_worker_tasks_running`` (gauge): attempts executing now;
- ``agentstream_worker_task_duration_seconds{status}``: the ``completed`` event's
  ``execution_time``, by final status (``succeeded``, ``failed``, ``cancelled``);
- ``agentstream_worker_tokens_total{kind}``: model tokens (``prompt``, ``completion``)
  from each call's usage report: ``rate()`` of it is tokens per second;
- ``agentstream_worker_model_call_seconds{outcome}``: one streamed model call, from the
  request to its last delta; ``outcome`` is ``ok``, ``cancelled`` or the error kind;
- ``agentstream_worker_model_errors_total{kind}``: failed model calls by kind
  (``rate_limited``, ``timeout``, ``stream_broken``, ...: ``ModelError.error_type``);
- ``agentstream_worker_tool_seconds{tool,outcome}``: one tool call (``ok`` or ``error``);
- ``agentstream_worker_retries_total``: attempts after a task's first (a crash, a lost
  lease, a retryable failure).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

from agentstream.streams.settings import env_integer
from agentstream.worker.errors import ConfigurationError

__all__ = [
    "MODEL_CALLS",
    "MODEL_ERRORS",
    "REGISTRY",
    "RETRIES",
    "TASKS_RUNNING",
    "TASK_DURATION",
    "TOKENS",
    "TOOL_DURATION",
    "MetricsServer",
    "WorkerMetricsSettings",
    "serve_metrics",
]

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

TASKS_RUNNING = Gauge(
    "agentstream_worker_tasks_running", "Task attempts executing in this process.", registry=REGISTRY
)
TASK_DURATION = Histogram(
    "agentstream_worker_task_duration_seconds",
    "Execution time of finished tasks (the completed event's), by final status.",
    ["status"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
    registry=REGISTRY,
)
TOKENS = Counter(
    "agentstream_worker_tokens", "Model tokens by kind (prompt, completion), from usage reports.",
    ["kind"], registry=REGISTRY,
)  # fmt: skip
MODEL_CALLS = Histogram(
    "agentstream_worker_model_call_seconds",
    "One streamed model call, request to last delta, by outcome (ok, cancelled or the error kind).",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
    registry=REGISTRY,
)
MODEL_ERRORS = Counter(
    "agentstream_worker_model_errors", "Failed model calls by error kind.", ["kind"], registry=REGISTRY
)
TOOL_DURATION = Histogram(
    "agentstream_worker_tool_seconds",
    "One tool call, by tool and outcome (ok, error).",
    ["tool", "outcome"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
RETRIES = Counter(
    "agentstream_worker_retries", "Attempts after a task's first (crash, lost lease, retryable failure).",
    registry=REGISTRY,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class WorkerMetricsSettings:
    """Where the worker serves its metrics; ``port`` 0 serves none."""

    port: int = 0
    host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerMetricsSettings:
        """``AGENTSTREAM_WORKER_METRICS_PORT`` (0: off) and ``AGENTSTREAM_WORKER_METRICS_HOST``."""
        env = os.environ if env is None else env
        port = env_integer(env, "AGENTSTREAM_WORKER_METRICS_PORT", 0, minimum=0, error=ConfigurationError)
        if port > 65535:
            raise ConfigurationError(f"AGENTSTREAM_WORKER_METRICS_PORT must be at most 65535, got {port}")
        return cls(port=port, host=(env.get("AGENTSTREAM_WORKER_METRICS_HOST") or "127.0.0.1").strip())


class MetricsServer:
    """The HTTP server of :data:`REGISTRY` (a daemon thread); :meth:`close` stops it."""

    def __init__(self, server: WSGIServer) -> None:
        self._server = server

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen when asked for port 0)."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(settings: WorkerMetricsSettings) -> MetricsServer | None:
    """Serve ``/metrics`` on ``settings.host:port``; ``None`` when the port is 0 (off)."""
    if not settings.port:
        return None
    try:
        server, _ = start_http_server(settings.port, addr=settings.host, registry=REGISTRY)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot serve worker metrics on {settings.host}:{settings.port}: {exc} "
            "(AGENTSTREAM_WORKER_METRICS_PORT: one free port per worker process)"
        ) from exc
    return MetricsServer(server)
