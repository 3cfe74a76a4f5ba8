"""``python -m agentstream.worker``: run one worker process configured from the environment
(what ``agentstream worker`` runs), with logging set up."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from agentstream.worker.config import WorkerConfig


def main(env: Mapping[str, str] | None = None) -> None:
    """Run the worker until SIGINT/SIGTERM; ``env`` defaults to this process's environment,
    read here once and nowhere else."""
    config = WorkerConfig.from_env(os.environ if env is None else env)
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s",
    )
    # Imported once logging is set up; the arq side loads the agents, the model client, arq.
    from agentstream.worker.settings import create_worker

    create_worker(config).run()


if __name__ == "__main__":
    main()
