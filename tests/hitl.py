"""What the human-in-the-loop tests share: prompts that make a task wait, a worker process
serving an app (``agentstream worker --app``), and the HTTP steps they repeat. The
fixtures built on these live in ``tests/worker/conftest.py`` and ``tests/api/conftest.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from agentstream.streams import StreamsSettings
from tests.api.helpers import read_sse
from tests.processes import REPO, WorkerProcess, child_env

#: the app of ``tests/hitl_app.py``
HITL_APP = "tests.hitl_app:app"
#: a prompt whose model turn calls ``delete_file``, which waits for approval
DELETE = "Clean up [call:delete_file:path=/tmp/x]"
#: a prompt whose model turn asks the user
ASK = "Paint it [call:ask_user:prompt=Which colour?]"


def app_worker(
    settings: StreamsSettings, llm_url: str, folder: Path, name: str, app: str = HITL_APP, **env: str
) -> WorkerProcess:
    """``agentstream worker --app <app>`` started in ``folder`` (a module written there is
    found; so is ``tests``), its log ``<folder>/<name>.log``; ``env`` adds settings."""
    child = child_env(settings.redis_url, settings.prefix, llm_url, PYTHONPATH=str(REPO), **env)
    return WorkerProcess(child, folder / f"{name}.log", app=app, cwd=folder)


async def submit(client: httpx.AsyncClient, text: str, **fields: Any) -> str:
    """Submit a task (``fields``: more of the request); its id."""
    accepted = await client.post("/v1/tasks", json={"input": text, **fields})
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["task_id"])


async def events(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    """Every event of the task (``mode=all``) once it has ended."""
    return [f.json for f in await read_sse(client, f"/v1/tasks/{task_id}/events", params={"mode": "all"})]


async def wait_status(
    client: httpx.AsyncClient, worker: WorkerProcess, task_id: str, *wanted: str
) -> dict[str, Any]:
    """The task's view once its status is one of ``wanted`` (polled; the worker must stay
    up meanwhile)."""
    async with asyncio.timeout(60):
        while True:
            worker.assert_running()
            view = (await client.get(f"/v1/tasks/{task_id}")).json()
            if view["status"] in wanted:
                return dict(view)
            await asyncio.sleep(0.05)
