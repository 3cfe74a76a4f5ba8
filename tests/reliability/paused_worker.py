"""``python -m tests.reliability.paused_worker``: the production worker, stopped for good
between taking a job and starting it, so a test can SIGKILL it in exactly that window.

arq takes a job in ``start_jobs`` (which sets the job's in-progress key), then ``run_job``
reads the job and awaits ``on_job_start`` before it creates the job function's task. This
process replaces only that hook: it reports ``job taken: <job id>`` on stdout and never
returns, so the job function (and with it the job's lease) never starts. Everything else
(options, the in-progress key's lifetime, the poll loop) is ``create_worker``'s.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from agentstream.worker.config import WorkerConfig
from agentstream.worker.settings import create_worker

#: what this process prints once it holds a job it will never start
TAKEN = "job taken: "


async def hold_forever(ctx: dict[str, Any]) -> None:
    print(f"{TAKEN}{ctx['job_id']}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    create_worker(WorkerConfig.from_env(os.environ), on_job_start=hold_forever).run()


if __name__ == "__main__":
    main()
