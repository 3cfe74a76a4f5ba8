"""``python -m agentstream.worker``: run one arq worker process configured from the
environment (the same as ``arq agentstream.worker.settings.WorkerSettings``, with logging,
tracing and the metrics port set up)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from agentstream.worker.metrics import WorkerMetricsSettings, serve_metrics
from agentstream.worker.settings import WorkerConfig, create_worker

from agentstream.telemetry.logs import LogSettings, configure_logging
from agentstream.telemetry.tracing import configure_tracing


def main(env: Mapping[str, str] | None = None) -> None:
    """Run the worker until SIGINT/SIGTERM, configured from ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    configure_logging(LogSettings.from_env(env))
    configure_tracing("agentstream-worker", env)
    config = WorkerConfig.from_env(env)
    serve_metrics(WorkerMetricsSettings.from_env(env))  # a daemon thread, gone with the process
    create_worker(config).run()


if __name__ == "__main__":
    main()
