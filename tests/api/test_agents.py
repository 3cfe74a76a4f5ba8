"""``GET /v1/agents`` and the submit check against the live workers' catalog (issue 11;
issue 10 item 6: ``tools: ["rm_rf"]`` is refused at submit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentstream.streams import StreamsSettings
from agentstream.worker.app import App
from agentstream.worker.catalog import CatalogPublisher
from agentstream.worker.tools import ToolSettings
from tests.api.server import Api


def shop() -> App:
    app = App(name="shop")

    @app.tool
    def lookup_order(order_id: str) -> dict[str, str]:
        """Look up an order."""
        return {"order_id": order_id}

    app.agent("support", tools=["lookup_order"], system_prompt="ACME support.", description="orders")
    return app


@pytest.fixture
async def worker_catalog(api: Api, redis: Any, settings: StreamsSettings) -> AsyncIterator[CatalogPublisher]:
    """What a live worker serving ``shop`` publishes on the API's queue."""
    app = shop()
    api.services.catalog.max_age_s = 0  # read through: the test changes it under the API
    doc = app.describe(app.build_registry(ToolSettings()), "gpt-4o-mini")
    async with CatalogPublisher(redis, settings.keys, api.services.queue.name, "worker-1", doc) as publisher:
        yield publisher


async def test_without_live_workers_the_catalog_is_empty_and_submits_wait(alice: httpx.AsyncClient) -> None:
    listed = await alice.get("/v1/agents")
    assert listed.status_code == 200
    assert listed.json()["agents"] == [] and listed.json()["workers"] == []

    queued = await alice.post(
        "/v1/tasks", json={"input": "hi", "agent": "support", "tools": ["lookup_order"]}
    )
    assert queued.status_code == 202, queued.text  # a worker started later may serve it


@pytest.mark.usefixtures("worker_catalog")
async def test_the_catalog_lists_what_the_workers_serve_the_same_for_every_tenant(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    body = (await alice.get("/v1/agents")).json()

    assert body == (await bob.get("/v1/agents")).json()
    agents = {agent["name"]: agent for agent in body["agents"]}
    assert list(agents) == ["llm", "tool", "hybrid", "support"]
    assert agents["support"]["tools"] == ["lookup_order"] and agents["support"]["available"] is True
    assert agents["support"]["description"] == "orders" and agents["support"]["model"] == "gpt-4o-mini"
    tools = {tool["name"]: tool for tool in body["tools"]}
    assert tools["lookup_order"]["parameters"]["properties"] == {"order_id": {"type": "string"}}
    assert [w["worker_id"] for w in body["workers"]] == ["worker-1"]
    assert body["hash"] and body["conflicts"] == []


@pytest.mark.usefixtures("worker_catalog")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"agent": "wizard"}, "no live worker serves agent 'wizard'; agents: llm, tool, hybrid, support"),
        ({"agent": "hybrid", "tools": ["rm_rf"]}, "has no tool(s) 'rm_rf'"),
        ({"agent": "support", "tools": ["calculator"]}, "its tools: lookup_order"),
    ],
)
async def test_what_no_live_worker_serves_is_refused_at_submit(
    alice: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await alice.post("/v1/tasks", json={"input": "x", **body, "task_id": "refused-1"})

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_body"
    assert message in response.json()["error"]["message"]
    assert (await alice.get("/v1/tasks/refused-1")).status_code == 404  # nothing was created


@pytest.mark.usefixtures("worker_catalog")
async def test_what_the_workers_serve_is_accepted(alice: httpx.AsyncClient) -> None:
    for body in ({"agent": "support"}, {"agent": "support", "tools": ["lookup_order"]}, {"agent": "llm"},
                 {"agent": "hybrid", "tools": ["calculator", "lookup_order"]}):  # fmt: skip
        response = await alice.post("/v1/tasks", json={"input": "x", **body})
        assert response.status_code == 202, response.text


async def test_the_catalog_follows_workers_coming_and_going(
    api: Api, alice: httpx.AsyncClient, redis: Any, settings: StreamsSettings
) -> None:
    api.services.catalog.max_age_s = 0
    app = shop()
    doc = app.describe(app.build_registry(ToolSettings()), None)
    async with CatalogPublisher(redis, settings.keys, api.services.queue.name, "w", doc):
        assert (await alice.post("/v1/tasks", json={"input": "x", "agent": "nope"})).status_code == 422
    assert (await alice.get("/v1/agents")).json()["workers"] == []
    assert (await alice.post("/v1/tasks", json={"input": "x", "agent": "nope"})).status_code == 202
