"""Worker fixtures: one scripted OpenAI-compatible server for the session, clients to it;
for the tests of real worker processes, the API in this loop and workers serving an app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentstream.streams import StreamsSettings
from agentstream.worker.llm import ModelSettings, OpenAIClient
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.api.server import Api, api_settings, serve
from tests.hitl import HITL_APP, app_worker
from tests.processes import WorkerProcess


@pytest.fixture(scope="session")
async def scripted_llm() -> AsyncIterator[ScriptedLLMServer]:
    """The scripted model on loopback. Shared: prompts with counted directives
    (``[fail:429x2]``) must be unique per test, since the server counts them."""
    async with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
async def make_llm_client(scripted_llm: ScriptedLLMServer) -> AsyncIterator[Callable[..., OpenAIClient]]:
    """Build real `OpenAIClient`s to the scripted server (fast backoff); closed after the test."""
    clients: list[OpenAIClient] = []

    def make(**overrides: Any) -> OpenAIClient:
        values: dict[str, Any] = {
            "base_url": scripted_llm.base_url,
            "backoff_base_s": 0.001,
            "backoff_max_s": 0.01,
            "connect_timeout_s": 2.0,
            "read_timeout_s": 5.0,
        }
        client = OpenAIClient(ModelSettings(**(values | overrides)))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def llm_client(make_llm_client: Callable[..., OpenAIClient]) -> OpenAIClient:
    """A client to the scripted server with the default retry policy."""
    return make_llm_client()


@pytest.fixture
async def api(settings: StreamsSettings, redis: Any) -> AsyncIterator[Api]:
    """The API in this loop; it pings every half second, so a reader held through a wait
    sees the connection live."""
    async with serve(api_settings(settings, ping_interval_s=0.5)) as running:
        yield running


@pytest.fixture
def worker_app() -> str:
    """The app ``start_worker`` serves; a module overrides this fixture to serve its own."""
    return HITL_APP


@pytest.fixture
def start_worker(
    settings: StreamsSettings, scripted_llm: ScriptedLLMServer, tmp_path: Path, worker_app: str
) -> Iterator[Callable[[str], WorkerProcess]]:
    """Start a one-slot worker serving ``worker_app`` in ``tmp_path``, named by its log, with a
    short lease (a killed one's task is taken over quickly); all are stopped after the test."""
    started: list[WorkerProcess] = []

    def start(name: str) -> WorkerProcess:
        env = {"AGENTSTREAM_MAX_JOBS": "1", "AGENTSTREAM_LEASE_S": "2"}
        started.append(app_worker(settings, scripted_llm.base_url, tmp_path, name, worker_app, **env))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def worker(start_worker: Callable[[str], WorkerProcess]) -> WorkerProcess:
    """One worker of ``start_worker``."""
    return start_worker("worker")
