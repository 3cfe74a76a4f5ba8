"""``python -m worker``: run one arq worker process configured from the environment
(the same as ``arq worker.settings.WorkerSettings``, with logging set up)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from agentstream.worker.settings import WorkerConfig, create_worker


def main(env: Mapping[str, str] | None = None) -> None:
    """Run the worker until SIGINT/SIGTERM, configured from ``env`` (default ``os.environ``)."""
    env = os.environ if env is None else env
    logging.basicConfig(
        level=env.get("AGENTSTREAM_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s",
    )
    create_worker(WorkerConfig.from_env(env)).run()


if __name__ == "__main__":
    main()
