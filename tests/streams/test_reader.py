"""Replay, live tails, the reader hub and gaps against a real Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import fakeredis
import pytest

from agentstream.streams import (
    EventFilter,
    InvalidCursor,
    Reader,
    ReaderHub,
    StreamsSettings,
    TaskNotFound,
    TaskStore,
    UsageError,
)
from agentstream.streams.hub import _Shard
from tests.harness import eventually
from tests.streams.helpers import COMPLETED, lose_last, new_task, tokens


async def finished_task(store: TaskStore, n: int) -> str:
    attempt = await new_task(store)
    async with store.writer(attempt) as writer:
        for event in tokens(n):
            writer.append_nowait(event)
        writer.append_nowait(
            {"type": "usage", "prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
        )
        writer.append_nowait(COMPLETED)
    return attempt.task_id


async def collect(aiter: Any) -> list[tuple[str, dict[str, Any]]]:
    return [item async for item in aiter]


async def _true(value: bool) -> bool:
    return value


async def test_replay_pages_through_everything(
    store: TaskStore, reader: Reader, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 2_500)  # several XRANGE pages
    items = await collect(reader.replay(task_id))
    assert [e["seq"] for _, e in items] == list(range(1, 2_504))
    assert all(cursor == event["id"] for cursor, event in items)
    assert items[0][1]["task_id"] == task_id


async def test_replay_from_any_cursor_resumes_exactly(store: TaskStore, reader: Reader) -> None:
    task_id = await finished_task(store, 300)
    full = await collect(reader.replay(task_id))
    rng = random.Random(7)
    for _ in range(20):
        cut = rng.randrange(len(full))
        rest = await collect(reader.replay(task_id, after=full[cut][0]))
        assert full[: cut + 1] + rest == full


async def test_filters_apply_but_cursors_stay_the_streams(store: TaskStore, reader: Reader) -> None:
    task_id = await finished_task(store, 5)
    output = await collect(reader.replay(task_id, filter=EventFilter.parse("output")))
    assert [e["type"] for _, e in output] == ["completed"]
    core = await collect(reader.replay(task_id, filter=EventFilter.parse("core")))
    assert "usage" not in {e["type"] for _, e in core}
    everything = await collect(reader.replay(task_id, filter=EventFilter.parse("all")))
    assert {c for c, _ in core} <= {c for c, _ in everything}


async def test_bad_cursor_and_missing_task(reader: Reader, store: TaskStore) -> None:
    task_id = await finished_task(store, 1)
    with pytest.raises(InvalidCursor):
        await collect(reader.replay(task_id, after="yesterday"))
    with pytest.raises(TaskNotFound):
        await collect(reader.replay("no-such-task"))
    with pytest.raises(TaskNotFound):
        await collect(reader.tail("no-such-task"))


async def test_a_trimmed_cursor_gets_a_gap_marker_first(
    redis: Any, settings: StreamsSettings, hub: ReaderHub
) -> None:
    small = StreamsSettings(redis_url=settings.redis_url, prefix=settings.prefix, maxlen=50)
    store = TaskStore(redis, small)
    reader = Reader(redis, small, hub)
    task_id = await finished_task(store, 2_000)
    items = await collect(reader.replay(task_id, after="0"))
    cursor, gap = items[0]
    assert gap["type"] == "gap" and cursor == "0-0"
    assert gap["first_cursor"] == items[1][0] and gap["first_seq"] == items[1][1]["seq"] > 1
    seqs = [e["seq"] for _, e in items[1:]]
    assert seqs == list(range(seqs[0], 2_004))
    # a cursor still inside the kept history gets no gap
    inside = await collect(reader.replay(task_id, after=items[5][0]))
    assert inside[0][1]["type"] != "gap"
    tailed = await collect(reader.tail(task_id, after="0"))
    assert tailed[0][1]["type"] == "gap" and tailed[-1][1]["type"] == "completed"


async def test_tail_follows_a_live_writer_to_completed(store: TaskStore, reader: Reader) -> None:
    attempt = await new_task(store)

    async def produce() -> None:
        async with store.writer(attempt) as writer:
            for event in tokens(300):
                await writer.append(event)
                if random.random() < 0.05:
                    await asyncio.sleep(0.002)
            await writer.append(COMPLETED)

    producer = asyncio.create_task(produce())
    seen = await asyncio.wait_for(collect(reader.tail(attempt.task_id)), 20)
    await producer
    assert [e["seq"] for _, e in seen] == list(range(1, 303))
    assert seen[-1][1]["type"] == "completed"


async def test_tail_dollar_sees_only_new_events(store: TaskStore, reader: Reader, hub: ReaderHub) -> None:
    attempt = await new_task(store)
    writer = store.writer(attempt)
    await writer.write({"type": "token", "content": "old"})
    tail = reader.tail(attempt.task_id, after="$")
    first = asyncio.create_task(anext(tail))
    # subscribed: "$" was resolved before, so "new" is written after the point it names
    await eventually(lambda: _true(hub.subscriptions == 1))
    await writer.write({"type": "token", "content": "new"})
    _cursor, event = await asyncio.wait_for(first, 10)
    assert event["content"] == "new"
    await writer.append(COMPLETED)
    await writer.aclose()
    rest = await asyncio.wait_for(collect(tail), 5)
    assert [e["type"] for _, e in rest] == ["completed"]


async def test_many_tails_share_a_few_connections(store: TaskStore, reader: Reader, hub: ReaderHub) -> None:
    attempts = [await new_task(store) for _ in range(200)]
    tails = [asyncio.create_task(collect(reader.tail(a.task_id))) for a in attempts for _ in range(2)]
    await eventually(lambda: _true(hub.subscriptions == len(tails)), timeout_s=30)
    assert hub.connections <= 1  # 400 live readers, one blocking XREAD
    writers = [store.writer(a) for a in attempts]
    for round_ in range(5):
        for writer in writers:
            writer.append_nowait({"type": "token", "content": f"r{round_}"})
    for writer in writers:
        writer.append_nowait(COMPLETED)
        await writer.aclose()
    results = await asyncio.wait_for(asyncio.gather(*tails), 30)
    for seen in results:
        assert [e["seq"] for _, e in seen] == list(range(1, 8))
    assert hub.subscriptions == 0


async def test_a_slow_tail_overflows_to_xrange_and_loses_nothing(
    redis: Any, settings: StreamsSettings
) -> None:
    tiny = StreamsSettings(redis_url=settings.redis_url, prefix=settings.prefix, reader_queue=10, page_size=7)
    store = TaskStore(redis, tiny)
    async with ReaderHub(redis, tiny) as hub:
        reader = Reader(redis, tiny, hub)
        attempt = await new_task(store)
        seen: list[int] = []
        tail = reader.tail(attempt.task_id)
        async with store.writer(attempt) as writer:
            for event in tokens(500):
                writer.append_nowait(event)
                if len(seen) < 3:
                    seen.append((await anext(tail))[1]["seq"])
            writer.append_nowait(COMPLETED)
        async for _, event in tail:
            seen.append(event["seq"])
            await asyncio.sleep(0)  # slower than the writer
    assert seen == list(range(1, 503))


async def test_disconnect_and_resume_in_random_pieces_equals_one_read(
    store: TaskStore, reader: Reader
) -> None:
    attempt = await new_task(store)
    rng = random.Random(3)

    async def produce() -> None:
        async with store.writer(attempt) as writer:
            for event in tokens(400):
                await writer.append(event)
                if rng.random() < 0.1:
                    await asyncio.sleep(0.001)
            await writer.append(COMPLETED)

    producer = asyncio.create_task(produce())
    pieces: list[tuple[str, dict[str, Any]]] = []
    cursor = "0"
    while not pieces or pieces[-1][1]["type"] != "completed":
        take = rng.randint(1, 60)
        tail = reader.tail(attempt.task_id, after=cursor, filter=EventFilter.parse("chunk"))
        async for item in tail:
            pieces.append(item)
            cursor = item[0]
            take -= 1
            if take == 0:
                break
        await tail.aclose()
    await producer
    whole = await collect(reader.replay(attempt.task_id, filter=EventFilter.parse("chunk")))
    assert pieces == whole


async def test_a_tail_survives_its_hub_connection_being_killed(
    store: TaskStore, reader: Reader, hub: ReaderHub, redis: Any
) -> None:
    attempt = await new_task(store)
    tail = asyncio.create_task(collect(reader.tail(attempt.task_id)))
    writer = store.writer(attempt)
    await writer.write({"type": "token", "content": "before"})

    async def connected() -> bool:
        shard = next(iter(hub._shards.values()), None)
        return shard is not None and shard.client_id is not None

    await eventually(connected, timeout_s=20)
    shard = next(iter(hub._shards.values()))
    await redis.client_kill_filter(_id=shard.client_id)
    for event in tokens(20):
        await writer.append(event)
    await writer.append(COMPLETED)
    await writer.aclose()
    seen = await asyncio.wait_for(tail, 15)
    assert [e["seq"] for _, e in seen] == list(range(1, 24))


async def test_a_tail_from_the_end_of_a_finished_task_ends_at_once(store: TaskStore, reader: Reader) -> None:
    task_id = await finished_task(store, 3)
    items = await collect(reader.replay(task_id))
    assert await asyncio.wait_for(collect(reader.tail(task_id, after=items[-1][0])), 5) == []
    assert await asyncio.wait_for(collect(reader.tail(task_id, after="$")), 5) == []
    assert await asyncio.wait_for(collect(reader.tail(task_id, after=items[-2][0])), 5) == items[-1:]


async def test_cursor_after_seq_finds_each_events_cursor(
    store: TaskStore, reader: Reader, redis: Any, settings: StreamsSettings
) -> None:
    attempt = await new_task(store)
    async with store.writer(attempt) as writer:
        for i, event in enumerate(tokens(1_200)):  # several pages, many milliseconds
            await writer.append(event)
            if i % 97 == 0:
                await asyncio.sleep(0.002)
        await writer.append(COMPLETED)
    task_id = attempt.task_id
    items = await collect(reader.replay(task_id))
    # small pages, so that most look-ups bisect before they read forward
    reader = Reader(redis, dataclasses.replace(settings, page_size=16))
    by_seq = {e["seq"]: cursor for cursor, e in items}
    last = items[-1]
    assert await reader.cursor_after_seq(task_id, 0) == "0-0"
    for seq in [1, 2, 3, 500, 999, 1_000, 1_001, *random.Random(3).sample(range(1, 1_202), 40)]:
        assert await reader.cursor_after_seq(task_id, seq) == by_seq[seq]
        rest = await collect(reader.replay(task_id, after=by_seq[seq]))
        assert [e["seq"] for _, e in rest] == list(range(seq + 1, last[1]["seq"] + 1))
    assert await reader.cursor_after_seq(task_id, last[1]["seq"]) == last[0]
    assert await reader.cursor_after_seq(task_id, 10**9) == last[0]  # past the end: the newest
    # Trimmed history: a seq retention dropped reads from the start, which says so with a gap.
    await redis.xtrim(settings.keys.events(task_id), maxlen=100, approximate=False)
    assert await reader.cursor_after_seq(task_id, 5) == "0-0"
    assert await reader.cursor_after_seq(task_id, last[1]["seq"] - 50) == by_seq[last[1]["seq"] - 50]
    with pytest.raises(UsageError):
        await reader.cursor_after_seq(task_id, -1)


async def test_a_cursor_ahead_of_the_stream_gets_a_reset_marker(
    store: TaskStore, reader: Reader, redis: Any, settings: StreamsSettings
) -> None:
    attempt = await new_task(store)
    async with store.writer(attempt) as writer:
        for event in tokens(10):
            await writer.append(event)
    seen = await collect(reader.replay(attempt.task_id))
    await lose_last(redis, settings, attempt.task_id, 4)  # seqs 8..11 are gone
    cursor, marker = (await collect(reader.replay(attempt.task_id, after=seen[-1][0])))[0]
    assert marker["type"] == "reset" and marker["last_seq"] == 7 and cursor == seen[6][0]
    # the stream goes on: the next attempt writes seq 8 again, and the reader hears of it
    second = await store.open_attempt(attempt.task_id)
    assert second.last_seq == 7
    tail = reader.tail(attempt.task_id, after=seen[-1][0])
    first = await asyncio.wait_for(anext(tail), 5)
    assert first[1]["type"] == "reset"
    async with store.writer(second) as writer:
        await writer.append({"type": "token", "content": "again"})
        await writer.append(COMPLETED)
    rest = await asyncio.wait_for(collect(tail), 5)
    assert [(e["seq"], e.get("content")) for _, e in rest] == [(8, "again"), (9, None)]


async def test_a_live_tail_is_told_when_the_stream_is_rewound(
    store: TaskStore, reader: Reader, redis: Any, settings: StreamsSettings
) -> None:
    attempt = await new_task(store)
    tail = reader.tail(attempt.task_id)
    async with store.writer(attempt) as writer:
        for event in tokens(6):
            await writer.append(event)
    seen = [await asyncio.wait_for(anext(tail), 5) for _ in range(7)]
    assert [e["seq"] for _, e in seen] == list(range(1, 8))
    await lose_last(redis, settings, attempt.task_id, 3)  # the tail saw seqs 5..7; they are gone
    second = await store.open_attempt(attempt.task_id)
    async with store.writer(second) as writer:
        await writer.append({"type": "retry", "reason": "redis restarted"})
        await writer.append(COMPLETED)
    rest = await asyncio.wait_for(collect(tail), 5)
    assert rest[0][1]["type"] == "reset" and rest[0][1]["last_seq"] == 4
    assert [(e["type"], e["seq"]) for _, e in rest[1:]] == [("retry", 5), ("completed", 6)]
    # never two different events under one seq without a reset between them


async def test_a_reader_leaving_while_its_shard_connects_stops_the_shard_cleanly(
    redis: Any, settings: StreamsSettings, store: TaskStore
) -> None:
    """A slow connect let ``subscribe`` return before the shard was connected; if the only
    reader then left, the shard sent an XREAD with no streams and died (found by a bench)."""
    attempt = await new_task(store)
    async with ReaderHub(redis, settings) as hub:
        slow_connect = asyncio.Event()
        original = ReaderHub._shard_for

        def shard_for(self: ReaderHub, key: str) -> Any:
            shard = original(self, key)
            connect = shard._connect

            async def slow() -> Any:
                await slow_connect.wait()
                return await connect()

            shard._connect = slow  # type: ignore[method-assign]
            return shard

        hub._shard_for = shard_for.__get__(hub)  # type: ignore[method-assign]
        sub = await hub.subscribe(settings.keys.events(attempt.task_id), "0-0")
        sub.close()
        task = next(iter(hub._shards.values())).task
        slow_connect.set()
        assert task is not None
        await asyncio.wait_for(task, 5)  # ends by itself, no exception
        assert task.exception() is None


def test_a_hub_lingers_only_while_entries_come_fast(settings: StreamsSettings) -> None:
    """One stream's tokens (one every 10 ms) are never held back; a thousand entries a
    second make the shard pause after each read so that they share reads and writes."""
    hub = ReaderHub(fakeredis.FakeAsyncRedis(), settings, linger_s=0.01)
    trickle = _Shard(hub, 0, None)
    assert not any(trickle._busy(1, 1.0 + i * 0.01) for i in range(200))
    burst = _Shard(hub, 0, None)
    busy = [burst._busy(1, 1.0 + i * 0.001) for i in range(50)]
    assert all(busy[10:])
    lingering = [burst._busy(10, 2.0 + i * 0.0102) for i in range(50)]  # 10 per pause: stays
    assert all(lingering)
    unset = _Shard(ReaderHub(fakeredis.FakeAsyncRedis(), settings), 0, None)  # linger 0: never
    assert not any(unset._busy(10, 1.0 + i * 0.001) for i in range(50))
