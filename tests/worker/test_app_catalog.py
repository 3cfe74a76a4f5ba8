"""The catalog workers publish (real Redis): entries, expiry, removal, conflicts between
workers of one queue, and what a submit may ask for."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
import pytest

from agentstream.streams import StreamsSettings
from agentstream.worker.app import App
from agentstream.worker.catalog import CatalogPublisher, catalog_hash, read_catalog
from agentstream.worker.tools import ToolSettings


def document(app: App) -> dict[str, Any]:
    return app.describe(app.build_registry(ToolSettings()), "gpt-4o-mini")


def support_app(*, extra_tool: bool = False) -> App:
    app = App(name="support")

    @app.tool
    def lookup_order(order_id: str) -> dict[str, str]:
        """Look up an order."""
        return {"order_id": order_id}

    if extra_tool:

        @app.tool
        def refund(order_id: str) -> str:
            """Refund an order."""
            return order_id

    app.agent("support", tools=["lookup_order"], system_prompt="ACME support.", max_iterations=6)
    return app


def publisher(redis: Any, settings: StreamsSettings, worker: str, doc: dict[str, Any], **kw: Any) -> Any:
    return CatalogPublisher(redis, settings.keys, f"{settings.prefix}:queue", worker, doc, **kw)


async def test_describe_lists_agents_and_tools_with_their_schemas() -> None:
    doc = document(support_app())

    agents = {agent["name"]: agent for agent in doc["agents"]}
    assert list(agents) == ["llm", "tool", "hybrid", "support"]
    assert agents["support"] == {
        "name": "support", "kind": "hybrid", "builtin": False, "model": "gpt-4o-mini",
        "tools": ["lookup_order"], "max_iterations": 6, "description": None, "has_system_prompt": True,
    }  # fmt: skip
    assert agents["llm"]["tools"] == [] and agents["hybrid"]["tools"] == [
        "calculator",
        "current_time",
        "lookup_order",
    ]
    tools = {tool["name"]: tool for tool in doc["tools"]}
    assert (
        tools["lookup_order"]["parameters"]["required"] == ["order_id"]
        and not tools["lookup_order"]["builtin"]
    )
    assert tools["calculator"]["builtin"] is True
    assert catalog_hash(doc) == catalog_hash(document(support_app())) != catalog_hash(document(App()))


async def test_a_worker_entry_lives_while_refreshed_and_goes_when_it_stops(
    redis: Any, settings: StreamsSettings
) -> None:
    queue = f"{settings.prefix}:queue"
    async with publisher(redis, settings, "w1", document(support_app()), ttl_s=3.0) as pub:
        catalog = await read_catalog(redis, settings.keys, queue)
        assert [w.worker_id for w in catalog.workers] == ["w1"] and catalog.conflicts == []
        first = catalog.workers[0].expires_at
        await pub.publish()  # what the refresh loop does every ttl / 3
        assert (await read_catalog(redis, settings.keys, queue)).workers[0].expires_at > first
        assert await redis.ttl(settings.keys.catalog(queue)) > 0  # the key dies with its workers
    assert (await read_catalog(redis, settings.keys, queue)).workers == ()


async def test_a_dead_workers_entry_counts_for_nothing_and_is_pruned(
    redis: Any, settings: StreamsSettings
) -> None:
    queue = f"{settings.prefix}:queue"
    key = settings.keys.catalog(queue)
    stale = {**document(App()), "hash": "old", "published_at": 1.0, "expires_at": time.time() - 1}
    await redis.hset(key, mapping={"dead": orjson.dumps(stale), "garbage": b"not json"})

    assert (await read_catalog(redis, settings.keys, queue)).workers == ()
    async with publisher(redis, settings, "w1", document(support_app())):
        assert sorted(await redis.hkeys(key)) == ["w1"]


async def test_workers_serving_different_apps_are_a_reported_conflict(
    redis: Any, settings: StreamsSettings, caplog: pytest.LogCaptureFixture
) -> None:
    queue = f"{settings.prefix}:queue"
    caplog.set_level(logging.ERROR, logger="agentstream.worker.catalog")
    async with (
        publisher(redis, settings, "w1", document(support_app())),
        publisher(redis, settings, "w2", document(support_app(extra_tool=True))),
    ):
        catalog = await read_catalog(redis, settings.keys, queue)

    assert len(catalog.conflicts) == 2 and "serve different catalogs" in caplog.text
    view = catalog.view()
    assert view["hash"] is None and len(view["workers"]) == 2
    support = next(agent for agent in view["agents"] if agent["name"] == "support")
    assert support["workers"] == 2 and support["available"] is True
    # only what every worker serves is accepted: w1 has no refund tool
    assert catalog.refusal("hybrid", ["lookup_order"]) is None
    refusal = catalog.refusal("hybrid", ["refund"])
    assert refusal is not None and "no tool(s) 'refund' on worker w1" in refusal


async def test_what_a_submit_may_ask_for(redis: Any, settings: StreamsSettings) -> None:
    queue = f"{settings.prefix}:queue"
    assert (await read_catalog(redis, settings.keys, queue)).refusal(
        "anything", ["rm_rf"]
    ) is None  # no worker
    async with publisher(redis, settings, "w1", document(support_app())):
        catalog = await read_catalog(redis, settings.keys, queue)

    assert catalog.refusal("support", None) is None
    assert catalog.refusal("support", ["lookup_order"]) is None
    assert catalog.refusal("llm", None) is None and catalog.refusal("hybrid", ["calculator"]) is None
    assert catalog.refusal("wizard", None) == (
        "no live worker serves agent 'wizard'; agents: llm, tool, hybrid, support"
    )
    assert "no tool(s) 'rm_rf'" in (catalog.refusal("hybrid", ["rm_rf"]) or "")
    assert "its tools: lookup_order" in (catalog.refusal("support", ["calculator"]) or "")


async def test_the_entry_is_refreshed_while_the_worker_lives(redis: Any, settings: StreamsSettings) -> None:
    queue = f"{settings.prefix}:queue"
    # ttl 3 s: the entry outlives a loaded machine's pause between two polls of this test
    async with publisher(redis, settings, "w1", document(App()), ttl_s=3.0):
        first = (await read_catalog(redis, settings.keys, queue)).workers[0].published_at
        async with asyncio.timeout(20):
            while True:  # the refresh comes every ttl / 3
                if (await read_catalog(redis, settings.keys, queue)).workers[0].published_at > first:
                    break
                await asyncio.sleep(0.05)
