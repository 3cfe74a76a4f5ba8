"""Fixtures: a real API server per test, against the session's real Redis; for the
dialects' and the viewer's human-in-the-loop tests, the API with a real worker process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentstream.streams import StreamsSettings
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.api.server import ALICE, BOB, Api, api_settings, serve
from tests.hitl import app_worker
from tests.processes import WorkerProcess, stopping


@pytest.fixture
async def api(settings: StreamsSettings, redis: Any) -> AsyncIterator[Api]:
    async with serve(api_settings(settings)) as running:
        yield running


@pytest.fixture
async def alice(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client(ALICE) as client:
        yield client


@pytest.fixture
async def bob(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client(BOB) as client:
        yield client


@pytest.fixture
async def hitl_stack(
    settings: StreamsSettings, redis: Any, tmp_path: Path
) -> AsyncIterator[tuple[Api, WorkerProcess]]:
    """The API in this loop (two tenants, a ping every half second) and a two-slot worker
    process serving ``tests/hitl_app.py``, a scripted model of their own behind it."""
    async with ScriptedLLMServer() as llm:
        worker = app_worker(settings, llm.base_url, tmp_path, "worker", AGENTSTREAM_MAX_JOBS="2")
        with stopping(worker):
            async with serve(api_settings(settings, ping_interval_s=0.5)) as api:
                yield api, worker
