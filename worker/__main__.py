"""``python -m worker``: run one arq worker process configured from the environment
(the same as ``arq worker.settings.WorkerSettings``, with logging, tracing and the
metrics port set up)."""

from __future__ import annotations

from agentstream.worker.metrics import WorkerMetricsSettings, serve_metrics
from agentstream.worker.settings import WorkerConfig, create_worker

from agentstream.telemetry.logs import configure_logging
from agentstream.telemetry.tracing import configure_tracing


def main() -> None:
    """Run the worker until SIGINT/SIGTERM."""
    configure_logging()
    configure_tracing("agentstream-worker")
    config = WorkerConfig.from_env()
    serve_metrics(WorkerMetricsSettings.from_env())  # a daemon thread, gone with the process
    create_worker(config).run()


if __name__ == "__main__":
    main()
