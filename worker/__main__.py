"""``python -m agentstream.worker``: run one worker process configured from the environment
(what ``agentstream worker`` runs), with logging, tracing and the metrics port set up."""

from __future__ import annotations

import os
from collections.abc import Mapping

from agentstream.telemetry.logs import LogSettings, configure_logging
from agentstream.telemetry.tracing import configure_tracing
from agentstream.worker.config import WorkerConfig
from agentstream.worker.metrics import WorkerMetricsSettings, serve_metrics


def main(env: Mapping[str, str] | None = None) -> None:
    """Run the worker until SIGINT/SIGTERM; ``env`` defaults to this process's environment,
    read here once and nowhere else."""
    env = os.environ if env is None else env
    config = WorkerConfig.from_env(env)
    configure_logging(LogSettings.from_env(env))
    configure_tracing("agentstream-worker", env)
    # Imported once logging is set up; the arq side loads the agents, the model client, arq.
    from agentstream.worker.settings import create_worker

    serve_metrics(WorkerMetricsSettings.from_env(env))  # a daemon thread, gone with the process
    create_worker(config).run()


if __name__ == "__main__":
    main()
