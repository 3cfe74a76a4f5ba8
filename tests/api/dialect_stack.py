"""The whole stack for the dialect tests: the API (two tenants) and a real arq worker in
this loop, the scripted OpenAI-compatible model behind the worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from agentstream.streams import StreamsSettings
from agentstream.worker.jobs import DEPS_KEY
from agentstream.worker.scripted_llm import ScriptedLLMServer
from agentstream.worker.settings import WorkerConfig, create_worker
from tests.api.server import Api, api_settings, serve
from tests.harness import worker_task

_STARTUP_S = 20.0


@contextlib.asynccontextmanager
async def running_worker(settings: StreamsSettings, queue: str, model_url: str) -> AsyncIterator[None]:
    """A worker built the production way (``create_worker``) on ``queue``, its model at
    ``model_url``."""
    env = {**os.environ, "OPENAI_BASE_URL": model_url, "AGENTSTREAM_MODEL_RETRIES": "1"}
    config = WorkerConfig.from_env(
        env, streams=settings, queue_name=queue, poll_delay_s=0.05, retry_backoff_s=0.05
    )
    worker = create_worker(config, handle_signals=False)
    async with worker_task(worker, config.poll_delay_s) as main:
        async with asyncio.timeout(_STARTUP_S):
            while DEPS_KEY not in worker.ctx:
                if main.done():
                    main.result()
                await asyncio.sleep(0.01)
        yield


@contextlib.asynccontextmanager
async def dialect_stack(
    settings: StreamsSettings, llm: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """API + worker on the test's Redis prefix; the worker's model is ``llm``."""
    # The model client reads its settings from the process environment at startup.
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("AGENTSTREAM_MODEL_RETRIES", "1")
    served = api_settings(settings)
    async with running_worker(settings, served.resolved_queue_name, llm.base_url), serve(served) as api:
        yield api
