"""A stack for the dialects' and the viewer's human-in-the-loop tests: the API in this
loop (two tenants) and a real worker process (``agentstream worker --app``) serving an app
with ``ask_user`` and a tool that always waits for approval, the scripted model behind it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from agentstream.streams import StreamsSettings
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.api.server import Api, api_settings, serve
from tests.reliability.procs import child_env
from tests.worker.test_app_example import ExampleWorker

APP = '''
from agentstream import App

app = App(ask_user=True, name="hitl-clients")


@app.tool(requires_approval=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    return f"deleted {path}"
'''
#: a prompt whose model turn calls ``delete_file``, which waits for approval
DELETE = "Clean up [call:delete_file:path=/tmp/x]"
#: a prompt whose model turn asks the user
ASK = "Paint it [call:ask_user:prompt=Which colour?]"


@contextlib.asynccontextmanager
async def hitl_stack(
    settings: StreamsSettings, llm: ScriptedLLMServer, folder: Path, **overrides: Any
) -> AsyncIterator[tuple[Api, ExampleWorker]]:
    """The API (``overrides`` of its settings) and one worker process serving :data:`APP`."""
    (folder / "hitlclients.py").write_text(APP)
    env = child_env(settings.redis_url, settings.prefix, llm.base_url, AGENTSTREAM_MAX_JOBS="2")
    env.pop("PYTHONPATH", None)
    worker = ExampleWorker(env, folder, folder / "worker.log", app="hitlclients:app")
    try:
        async with serve(api_settings(settings, ping_interval_s=0.5, **overrides)) as api:
            yield api, worker
    finally:
        worker.stop()


async def wait_status(client: httpx.AsyncClient, worker: ExampleWorker, task_id: str, *wanted: str) -> str:
    """The task's status once it is one of ``wanted`` (the worker must stay up meanwhile)."""
    async with asyncio.timeout(60):
        while True:
            assert worker.proc.poll() is None, worker.log()
            status = str((await client.get(f"/v1/tasks/{task_id}")).json()["status"])
            if status in wanted:
                return status
            await asyncio.sleep(0.05)
