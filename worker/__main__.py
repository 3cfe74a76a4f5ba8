"""``python -m worker``: run one arq worker process configured from the environment
(the same as ``arq worker.settings.WorkerSettings``, with logging set up)."""

from __future__ import annotations

import logging
import os

from agentstream.worker.settings import WorkerConfig, create_worker


def main() -> None:
    """Run the worker until SIGINT/SIGTERM."""
    logging.basicConfig(
        level=os.environ.get("AGENTSTREAM_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s",
    )
    create_worker(WorkerConfig.from_env()).run()


if __name__ == "__main__":
    main()
