"""Worker fixtures: one scripted OpenAI-compatible server for the session, clients to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agentstream.worker.llm import ModelSettings, OpenAIClient
from agentstream.worker.scripted_llm import ScriptedLLMServer


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
