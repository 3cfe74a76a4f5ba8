"""Consumer groups, dead-lettering and the task feed against a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentstream.streams import (
    ClosedError,
    EventFilter,
    FeedConsumer,
    GroupConsumer,
    StreamsSettings,
    TaskNotFound,
    TaskStore,
    group_info,
)
from tests.streams.helpers import COMPLETED, new_task, tokens


async def finished_task(store: TaskStore, n: int) -> str:
    attempt = await new_task(store)
    async with store.writer(attempt) as writer:
        for event in tokens(n):
            writer.append_nowait(event)
        writer.append_nowait(COMPLETED)
    return attempt.task_id


def consumer(
    redis: Any, settings: StreamsSettings, task_id: str, group: str, name: str, **kw: Any
) -> GroupConsumer:
    kw.setdefault("block_ms", 50)
    return GroupConsumer(redis, settings, task_id, group, name, **kw)


async def drain(c: GroupConsumer, ack: bool = True) -> list[int]:
    seqs = []
    async for cursor, event in c:
        seqs.append(event["seq"])
        if ack:
            await c.ack(cursor)
    return seqs


async def test_consumers_of_one_group_share_and_groups_fan_out(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 300)
    async with (
        consumer(redis, settings, task_id, "g1", "a", count=7) as a,
        consumer(redis, settings, task_id, "g1", "b", count=5) as b,
        consumer(redis, settings, task_id, "g2", "solo") as solo,
    ):
        seen_a, seen_b, seen_solo = await asyncio.gather(drain(a), drain(b), drain(solo))
    assert not set(seen_a) & set(seen_b)
    assert sorted(seen_a + seen_b) == list(range(1, 303))
    assert seen_solo == list(range(1, 303))
    infos = {g.name: g for g in await group_info(redis, settings, task_id)}
    assert infos["g1"].pending == 0 and infos["g1"].lag == 0 and infos["g1"].consumers == 2


async def test_a_late_group_sees_every_event_of_a_live_stream(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempt = await new_task(store)
    writer = store.writer(attempt)
    for event in tokens(50):
        writer.append_nowait(event)
    await writer.flush()
    async with consumer(redis, settings, attempt.task_id, "late", "c1") as c:
        reading = asyncio.create_task(drain(c))
        for event in tokens(50, 50):
            await writer.append(event)
        await writer.append(COMPLETED)
        await writer.aclose()
        assert await asyncio.wait_for(reading, 10) == list(range(1, 103))


async def test_a_dead_consumers_entries_are_claimed_by_the_survivor(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 20)
    async with consumer(redis, settings, task_id, "g", "doomed", count=10) as doomed:
        taken = await doomed.read()  # received, never acked: the consumer "crashes"
    assert len(taken) == 10
    async with consumer(redis, settings, task_id, "g", "survivor", min_idle_ms=100) as survivor:
        await asyncio.sleep(0.15)
        seqs = await drain(survivor)
    assert sorted(seqs) == list(range(1, 23))
    infos = await group_info(redis, settings, task_id)
    assert infos[0].pending == 0


async def test_a_restarted_consumer_gets_its_own_pending_first(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 10)
    async with consumer(redis, settings, task_id, "g", "c", count=4) as c:
        first = [e["seq"] for _, e in await c.read()]
    async with consumer(redis, settings, task_id, "g", "c", count=4, min_idle_ms=0) as again:
        redelivered = [e["seq"] for _, e in await again.read()]
        assert redelivered == first
        rest = await drain(again)
    assert sorted(set(first + rest)) == list(range(1, 13))


async def test_a_poison_event_is_dead_lettered_after_max_deliveries(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 3)
    delivered = 0
    for _ in range(5):
        async with consumer(
            redis, settings, task_id, "g", "c", count=1, max_deliveries=3, min_idle_ms=0
        ) as c:
            items = await c.read()
            if items and items[0][1]["seq"] == 1:
                delivered += 1  # processing "fails": never acked
            if c.dead_lettered:
                break
    assert delivered == 3
    assert [d.deliveries for d in c.dead_lettered] == [4]
    dead = await c.dead_letters()
    assert len(dead) == 1 and dead[0][1]["seq"] == 1 and dead[0][1]["dl_group"] == "g"
    assert dead[0][1]["dl_reason"] == "delivered 4 times"
    async with consumer(redis, settings, task_id, "g", "c") as c2:
        assert 1 not in await drain(c2)


async def test_ack_through_acks_up_to_a_cursor_and_redelivers_the_rest(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 10)
    async with consumer(redis, settings, task_id, "g", "sse", count=8) as c:
        items = await c.read()
        acked = await c.ack_through(items[4][0])
        assert acked == 5
        again = await c.read()
        assert [e["seq"] for _, e in again] == [e["seq"] for _, e in items[5:]]


async def test_filtered_out_entries_are_acked_not_left_pending(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 10)
    async with consumer(redis, settings, task_id, "g", "c", filter=EventFilter.parse("output")) as c:
        got = await drain(c)
    assert got == [12]  # only completed passes "output" here
    assert (await group_info(redis, settings, task_id))[0].pending == 0


async def test_misuse_and_missing_tasks(redis: Any, settings: StreamsSettings) -> None:
    with pytest.raises(TaskNotFound):
        async with consumer(redis, settings, "missing", "g", "c"):
            pass
    c = consumer(redis, settings, "missing", "g", "c")
    with pytest.raises(ClosedError, match="async with"):
        await c.read()


async def test_the_feed_follows_every_task(store: TaskStore, redis: Any, settings: StreamsSettings) -> None:
    follower = FeedConsumer(redis, settings, after="0", block_ms=50)
    group_member = FeedConsumer(redis, settings, group="audit", consumer="c1", block_ms=50)
    await group_member.ensure_group()
    task_a = await finished_task(store, 1)
    task_b = await finished_task(store, 1)
    entries = await follower.read()
    assert [(e["task_id"], e["kind"]) for _, e in entries] == [
        (task_a, "created"), (task_a, "ended"), (task_b, "created"), (task_b, "ended"),
    ]  # fmt: skip
    got = await group_member.read()
    assert len(got) == 4
    assert await group_member.ack(*[c for c, _ in got]) == 4
