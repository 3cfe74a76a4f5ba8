"""A real API server: uvicorn on a free loopback port, in the test's event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from agentstream.api import ApiSettings, create_app
from agentstream.api.state import Services
from agentstream.serving import InLoopServer
from agentstream.streams import StreamsSettings

KEYS = (("alice", "key-alice"), ("bob", "key-bob"))
ALICE = {"Authorization": "Bearer key-alice"}
BOB = {"Authorization": "Bearer key-bob"}


@dataclass
class Api:
    """A running server: its URL, settings and the services its lifespan built."""

    url: str
    app: FastAPI
    settings: ApiSettings

    @property
    def services(self) -> Services:
        svc = self.app.state.services
        assert isinstance(svc, Services)
        return svc

    def client(self, headers: dict[str, str] | None = ALICE, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10.0, **kwargs)


def api_settings(streams: StreamsSettings, **overrides: Any) -> ApiSettings:
    """Test settings: two tenants (their queue is ``<prefix>:queue``, the test's own)."""
    values: dict[str, Any] = {
        "streams": streams,
        "api_keys": KEYS,
        "rate_limit_per_min": 1000,
        "ping_interval_s": 5.0,
        "sse_slow_client_s": 2.0,
    }
    values.update(overrides)
    return ApiSettings(**values)


@contextlib.asynccontextmanager
async def serve(settings: ApiSettings) -> AsyncIterator[Api]:
    """Run the app in uvicorn on a free port of 127.0.0.1 until the block ends."""
    app = create_app(settings)
    async with InLoopServer(
        app, lifespan="on", log_level="warning", http="h11", ws="none", timeout_graceful_shutdown=2
    ) as server:
        yield Api(server.url, app, settings)


async def submit(client: httpx.AsyncClient, text: str = "hello", **fields: Any) -> str:
    """Submit a task and return its id (asserting 202)."""
    response = await client.post("/v1/tasks", json={"input": text, "agent": "llm", **fields})
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    assert isinstance(task_id, str)
    return task_id
