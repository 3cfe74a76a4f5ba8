"""The fenced batching writer against a real Redis."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agentstream.streams import (
    ClosedError,
    FencedError,
    InvalidEvent,
    StreamsSettings,
    TaskCompleted,
    TaskNotFound,
    TaskStore,
    decode,
)
from agentstream.streams.flusher import flusher_for
from agentstream.streams.writer import StreamWriter
from tests.harness import eventually
from tests.streams.helpers import COMPLETED, new_task, tokens


async def stored_events(redis: Any, settings: StreamsSettings, task_id: str) -> list[dict[str, Any]]:
    return [decode(c, f, task_id) for c, f in await redis.xrange(settings.keys.events(task_id))]


async def test_seqs_are_dense_and_the_stream_ends_once(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempt = await new_task(store)
    async with store.writer(attempt) as writer:
        for event in tokens(500):
            await writer.append(event)
        await writer.append(COMPLETED)
    events = await stored_events(redis, settings, attempt.task_id)
    assert [e["seq"] for e in events] == list(range(1, 502 + 1))
    assert events[0]["type"] == "queued" and events[-1]["type"] == "completed"
    assert [e["content"] for e in events[1:-1]] == [f"w{i} " for i in range(500)]
    meta = await store.meta(attempt.task_id)
    assert meta is not None and meta.done and meta.status == "succeeded" and meta.seq == 502


async def test_bursts_are_batched_while_a_round_trip_is_in_flight(store: TaskStore) -> None:
    attempt = await new_task(store)
    writer = store.writer(attempt)
    flusher = flusher_for(store.redis)
    before = flusher.round_trips
    for event in tokens(2_000):
        writer.append_nowait(event)
    await writer.aclose()
    assert writer.last_seq == 2_001
    assert flusher.round_trips - before <= 2_000 // 256 + 2  # batches, not one call per event


async def test_a_lone_event_goes_out_without_waiting_for_flush(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempt = await new_task(store)
    writer = store.writer(attempt)
    writer.append_nowait({"type": "token", "content": "now"})

    async def stored() -> bool:
        return await redis.xlen(settings.keys.events(attempt.task_id)) == 2

    await eventually(stored)
    await writer.aclose()


async def test_write_returns_the_cursor_and_seq(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempt = await new_task(store)
    async with store.writer(attempt) as writer:
        for event in tokens(10):
            writer.append_nowait(event)
        appended = await writer.write({"type": "token", "content": "mine"})
    events = await stored_events(redis, settings, attempt.task_id)
    mine = next(e for e in events if e.get("content") == "mine")
    assert (appended.cursor, appended.seq) == (mine["id"], mine["seq"]) == (mine["id"], 12)


async def test_an_older_attempt_is_fenced_and_writes_nothing(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    first = await new_task(store)
    old = store.writer(first)
    await old.write({"type": "token", "content": "a"})
    second = await store.open_attempt(first.task_id)
    assert second.number == 2 and second.last_seq == 2
    with pytest.raises(FencedError) as info:
        await old.write({"type": "token", "content": "late"})
    assert info.value.current == 2
    with pytest.raises(FencedError):
        old.append_nowait({"type": "token", "content": "later"})
    async with store.writer(second) as new:
        await new.append({"type": "retry", "reason": "worker lost"})
        await new.append(COMPLETED)
    events = await stored_events(redis, settings, first.task_id)
    assert [e.get("content") for e in events if e["type"] == "token"] == ["a"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["attempt"] for e in events] == [1, 1, 2, 2]


async def test_nothing_may_follow_completed(store: TaskStore) -> None:
    attempt = await new_task(store)
    writer = store.writer(attempt)
    writer.append_nowait(COMPLETED)
    with pytest.raises(TaskCompleted):
        writer.append_nowait({"type": "token", "content": "x"})
    await writer.aclose()
    with pytest.raises(TaskCompleted):
        await store.open_attempt(attempt.task_id)
    # a second writer of the same attempt cannot append after the end either
    other = StreamWriter(store.redis, store.settings, attempt.task_id, attempt.number, attempt.last_seq + 1)
    with pytest.raises(TaskCompleted):
        await other.write({"type": "token", "content": "x"})


async def test_completed_sets_retention_and_records_the_feed(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempt = await new_task(store)
    ttl_running = await redis.ttl(settings.keys.events(attempt.task_id))
    assert ttl_running > settings.retention_s  # stale TTL while unfinished: nothing lives forever
    async with store.writer(attempt) as writer:
        await writer.append(COMPLETED)
    ttl = await redis.ttl(settings.keys.events(attempt.task_id))
    assert 0 < ttl <= settings.retention_s
    assert 0 < await redis.ttl(settings.keys.meta(attempt.task_id)) <= settings.retention_s
    feed = [f for _, f in await redis.xrange(settings.keys.tasks)]
    assert [(f["task_id"], f["kind"]) for f in feed] == [
        (attempt.task_id, "created"),
        (attempt.task_id, "ended"),
    ]
    assert feed[1]["status"] == "succeeded" and feed[1]["owner"] == "tenant-a"


async def test_maxlen_trims_approximately(redis: Any, settings: StreamsSettings) -> None:
    small = StreamsSettings(redis_url=settings.redis_url, prefix=settings.prefix, maxlen=100)
    store = TaskStore(redis, small)
    attempt = await new_task(store)
    async with store.writer(attempt) as writer:
        for event in tokens(3_000):
            writer.append_nowait(event)
    length = await redis.xlen(small.keys.events(attempt.task_id))
    assert 100 <= length < 1_000


async def test_a_resent_batch_is_not_stored_twice(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempt = await new_task(store)
    writer = store.writer(attempt)
    batch = [(writer_encoded, "") for writer_encoded in map(__import__("streams").encode, tokens(3))]
    first = await writer._send(batch)
    again = await writer._send(batch)  # as if the first reply had been lost
    assert first == again
    assert await redis.xlen(settings.keys.events(attempt.task_id)) == 4


async def test_connection_loss_keeps_the_buffer_for_the_next_flush(
    store: TaskStore, settings: StreamsSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempt = await new_task(store)
    writer = store.writer(attempt)
    flusher = flusher_for(store.redis)
    real_exchange = flusher._exchange
    failures = 4  # more than the flusher's own retries

    async def flaky(payload: bytes, count: int) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise RedisConnectionError("connection reset")
        return await real_exchange(payload, count)

    monkeypatch.setattr(flusher, "_exchange", flaky)
    for event in tokens(5):
        writer.append_nowait(event)
    with pytest.raises(RedisConnectionError):
        await writer.flush()
    with pytest.raises(RedisConnectionError):
        writer.append_nowait({"type": "token", "content": "refused while broken"})
    await writer.flush()  # retried: nothing lost
    assert writer.last_seq == 6
    await writer.aclose()


async def test_backpressure_bounds_the_buffer(redis: Any, settings: StreamsSettings) -> None:
    tight = StreamsSettings(redis_url=settings.redis_url, prefix=settings.prefix, max_buffer=50, max_batch=16)
    store = TaskStore(redis, tight)
    attempt = await new_task(store)
    peak = 0
    async with store.writer(attempt) as writer:
        for event in tokens(1_000):
            await writer.append(event)
            peak = max(peak, writer.pending)
    assert peak <= 51
    assert writer.last_seq == 1_001


async def test_misuse_is_reported_clearly(store: TaskStore) -> None:
    attempt = await new_task(store)
    writer = store.writer(attempt)
    with pytest.raises(InvalidEvent):
        writer.append_nowait({"type": "completed", "success": True, "status": "done", "execution_time": 1})
    with pytest.raises(InvalidEvent):
        writer.append_nowait({"type": "token", "content": "x", "task_id": "someone-else"})
    await writer.aclose()
    with pytest.raises(ClosedError, match="closed writer"):
        writer.append_nowait({"type": "token", "content": "x"})
    with pytest.raises(TaskNotFound):
        await store.open_attempt("never-created")


async def test_create_is_idempotent_and_reports_the_owner(store: TaskStore) -> None:
    first = await store.create_task("same-id", owner="a", agent="llm", input="x" * 1000)
    again = await store.create_task("same-id", owner="b", agent="llm", input="y")
    assert first.created and not again.created and again.owner == "a"
    meta = await store.meta("same-id")
    assert meta is not None and meta.status == "queued" and meta.attempt == 0


async def test_cancel_request_is_recorded_once(store: TaskStore) -> None:
    attempt = await new_task(store)
    assert not await store.cancel_requested(attempt.task_id)
    meta = await store.request_cancel(attempt.task_id, "user asked")
    assert meta.cancel_requested and meta.cancel_reason == "user asked"
    again = await store.request_cancel(attempt.task_id, "second time")
    assert again.cancel_reason == "user asked"
    assert await store.cancel_requested(attempt.task_id)
