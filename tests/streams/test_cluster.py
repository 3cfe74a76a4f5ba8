"""The streams layer, unchanged, on a real 3-master Redis Cluster started by the suite."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentstream.streams import (
    FencedError,
    GroupConsumer,
    Reader,
    ReaderHub,
    StreamsSettings,
    TaskStore,
    create_redis,
    group_info,
)
from tests.streams.helpers import COMPLETED, new_task, tokens

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster_settings(cluster_url: str) -> StreamsSettings:
    return StreamsSettings(
        redis_url=cluster_url, cluster=True, prefix=f"c{uuid.uuid4().hex[:8]}", block_ms=300
    )


@pytest.fixture
async def cluster(cluster_settings: StreamsSettings) -> AsyncIterator[Any]:
    client = create_redis(cluster_settings)
    await client.initialize()
    try:
        yield client
    finally:
        await client.aclose()


async def test_tasks_spread_over_nodes_and_everything_works(
    cluster: Any, cluster_settings: StreamsSettings
) -> None:
    store = TaskStore(cluster, cluster_settings)
    attempts = [await new_task(store) for _ in range(12)]
    nodes = {cluster.get_node_from_key(cluster_settings.keys.events(a.task_id)).port for a in attempts}
    assert len(nodes) > 1  # the test really crosses nodes
    async with ReaderHub(cluster, cluster_settings) as hub:
        reader = Reader(cluster, cluster_settings, hub)
        tails = [asyncio.create_task(_collect(reader.tail(a.task_id))) for a in attempts]
        await asyncio.sleep(0.05)
        for attempt in attempts:
            async with store.writer(attempt) as writer:
                for event in tokens(40):
                    await writer.append(event)
                await writer.append(COMPLETED)
        results = await asyncio.wait_for(asyncio.gather(*tails), 20)
    for seen in results:
        assert [e["seq"] for _, e in seen] == list(range(1, 43))
    replayed = [item async for item in reader.replay(attempts[0].task_id)]
    assert replayed == results[0]


async def test_fencing_and_groups_on_a_cluster(cluster: Any, cluster_settings: StreamsSettings) -> None:
    store = TaskStore(cluster, cluster_settings)
    first = await new_task(store)
    old = store.writer(first)
    await old.write({"type": "token", "content": "a"})
    second = await store.open_attempt(first.task_id)
    with pytest.raises(FencedError):
        await old.write({"type": "token", "content": "b"})
    async with store.writer(second) as writer:
        await writer.append(COMPLETED)
    async with GroupConsumer(cluster, cluster_settings, first.task_id, "g", "c", block_ms=50, count=1) as c:
        items = await c.read()
        await c.dead_letter(items[0][0], "poison", 9)
        rest = []
        async for cursor, event in c:
            rest.append(event["seq"])
            await c.ack(cursor)
    assert rest == [2, 3]
    assert (await group_info(cluster, cluster_settings, first.task_id))[0].pending == 0
    assert len(await c.dead_letters()) == 1


async def test_a_replay_reads_its_pages_ahead_on_a_cluster_too(
    cluster: Any, cluster_settings: StreamsSettings
) -> None:
    store = TaskStore(cluster, cluster_settings)
    attempt = await new_task(store)
    async with store.writer(attempt) as writer:
        for event in tokens(60):
            writer.append_nowait(event)
        writer.append_nowait(COMPLETED)
    whole = await _collect(Reader(cluster, cluster_settings).replay(attempt.task_id))
    assert [e["seq"] for _, e in whole] == list(range(1, 63))
    reader = Reader(cluster, dataclasses.replace(cluster_settings, page_size=7))
    assert await _collect(reader.replay(attempt.task_id)) == whole
    before = asyncio.all_tasks()
    replay = reader.replay(attempt.task_id)
    assert [await anext(replay) for _ in range(10)] == whole[:10]  # page 3 asked for
    await replay.aclose()
    assert not asyncio.all_tasks() - before  # (the writer's flusher may end meanwhile)


async def _collect(aiter: Any) -> list[Any]:
    return [item async for item in aiter]
