"""The flusher shared by the writers of one Redis client: many tasks in one round trip,
each still fenced and dense on its own, against a real Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import random
import weakref
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agentstream.streams import FencedError, StreamsSettings, TaskStore, UsageError, create_redis, decode
from agentstream.streams.flusher import RETRY_DELAYS_S, _flushers, flusher_for
from agentstream.streams.pace import Pace
from tests.streams.helpers import COMPLETED, new_task, tokens


async def stored(redis: Any, settings: StreamsSettings, task_id: str) -> list[dict[str, Any]]:
    return [decode(c, f, task_id) for c, f in await redis.xrange(settings.keys.events(task_id))]


def flaky_exchange(monkeypatch: pytest.MonkeyPatch, redis: Any, failures: int, *, after: bool) -> list[int]:
    """Make the next ``failures`` round trips of ``redis``'s flusher fail with a connection
    error, before the write reaches Redis or (``after``) once Redis applied it and only the
    replies are lost. Returns the list of payload counts that were attempted."""
    flusher = flusher_for(redis)
    real = flusher._exchange
    attempted: list[int] = []
    left = failures

    async def exchange(payload: bytes, count: int) -> list[Any]:
        nonlocal left
        attempted.append(count)
        if left:
            left -= 1
            if after:
                await real(payload, count)
            raise RedisConnectionError("connection reset by peer")
        return await real(payload, count)

    monkeypatch.setattr(flusher, "_exchange", exchange)
    return attempted


async def test_many_tasks_are_flushed_in_one_round_trip(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempts = [await new_task(store) for _ in range(50)]
    writers = [store.writer(a) for a in attempts]
    flusher = flusher_for(redis)
    before = flusher.round_trips
    for i, writer in enumerate(writers):  # all in one turn of the loop, as tokens of one wake-up
        writer.append_nowait({"type": "token", "content": f"t{i}"})
    await asyncio.gather(*(w.flush() for w in writers))
    assert flusher.round_trips - before == 1
    for i, attempt in enumerate(attempts):
        events = await stored(redis, settings, attempt.task_id)
        assert [(e["seq"], e.get("content")) for e in events] == [(1, None), (2, f"t{i}")]
    await asyncio.gather(*(w.aclose() for w in writers))


async def test_a_fenced_task_is_refused_while_the_others_in_its_round_trip_are_stored(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    stale, fresh_a, fresh_b = [await new_task(store) for _ in range(3)]
    old = store.writer(stale)
    await old.write({"type": "token", "content": "before"})
    await store.open_attempt(stale.task_id)  # a newer attempt fences ``old`` off
    a, b = store.writer(fresh_a), store.writer(fresh_b)
    flusher = flusher_for(redis)
    before = flusher.round_trips
    for writer in (a, old, b):
        writer.append_nowait({"type": "token", "content": "same round trip"})
    results = await asyncio.gather(a.flush(), old.flush(), b.flush(), return_exceptions=True)
    assert flusher.round_trips - before == 1
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], FencedError) and results[1].current == 2
    assert [e.get("content") for e in await stored(redis, settings, stale.task_id)] == [None, "before"]
    for attempt in (fresh_a, fresh_b):
        assert [e["seq"] for e in await stored(redis, settings, attempt.task_id)] == [1, 2]
    # the others go on; the fenced writer stays refused
    await a.write({"type": "token", "content": "next"})
    with pytest.raises(FencedError):
        old.append_nowait({"type": "token", "content": "later"})
    await asyncio.gather(a.aclose(), b.aclose())


async def test_a_connection_failure_fails_only_the_writers_of_that_round_trip(
    store: TaskStore, redis: Any, settings: StreamsSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers in a round trip share its connection: once its retries are spent, each of
    them fails with the connection error and keeps its buffer; a writer of a later round
    trip is stored, and the failed ones store everything exactly once on their next flush."""
    first, second, later = [await new_task(store) for _ in range(3)]
    x, y, z = store.writer(first), store.writer(second), store.writer(later)
    attempted = flaky_exchange(monkeypatch, redis, len(RETRY_DELAYS_S) + 1, after=False)
    for event in tokens(3):
        x.append_nowait(event)
        y.append_nowait(event)
    results = await asyncio.gather(x.flush(), y.flush(), return_exceptions=True)
    assert all(isinstance(r, RedisConnectionError) for r in results)
    assert attempted == [2] * (len(RETRY_DELAYS_S) + 1)  # the whole round trip, every time
    assert x.pending == y.pending == 3  # kept for the next flush
    await z.write({"type": "token", "content": "unaffected"})
    await asyncio.gather(x.flush(), y.flush())  # resent
    for attempt in (first, second):
        events = await stored(redis, settings, attempt.task_id)
        assert [e["seq"] for e in events] == [1, 2, 3, 4]
        assert [e.get("content") for e in events[1:]] == ["w0 ", "w1 ", "w2 "]
    await asyncio.gather(x.aclose(), y.aclose(), z.aclose())


async def test_a_lost_reply_is_resent_and_stored_once(
    store: TaskStore, redis: Any, settings: StreamsSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = [await new_task(store) for _ in range(5)]
    writers = [store.writer(a) for a in attempts]
    attempted = flaky_exchange(monkeypatch, redis, 2, after=True)
    for writer in writers:
        for event in tokens(4):
            writer.append_nowait(event)
    await asyncio.gather(*(w.flush() for w in writers))
    assert attempted == [5, 5, 5]
    for attempt in attempts:
        assert [e["seq"] for e in await stored(redis, settings, attempt.task_id)] == [1, 2, 3, 4, 5]
    await asyncio.gather(*(w.aclose() for w in writers))


async def test_each_task_stays_ordered_and_dense_across_interleaved_round_trips(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempts = [await new_task(store) for _ in range(20)]
    rng = random.Random(7)

    async def produce(attempt: Any, n: int) -> None:
        async with store.writer(attempt) as writer:
            for i in range(n):
                await writer.append({"type": "token", "content": f"{attempt.task_id}:{i}"})
                if rng.random() < 0.3:
                    await asyncio.sleep(0)  # another task's events join the next round trip
                if rng.random() < 0.02:
                    await writer.flush()
            await writer.append(COMPLETED)

    counts = [rng.randrange(1, 400) for _ in attempts]
    flusher = flusher_for(redis)
    before = flusher.round_trips
    await asyncio.gather(*(produce(a, n) for a, n in zip(attempts, counts, strict=True)))
    assert flusher.round_trips - before < sum(counts)  # batched, across tasks and within them
    for attempt, n in zip(attempts, counts, strict=True):
        events = await stored(redis, settings, attempt.task_id)
        assert [e["seq"] for e in events] == list(range(1, n + 3))
        assert [e["content"] for e in events[1:-1]] == [f"{attempt.task_id}:{i}" for i in range(n)]
        assert events[-1]["type"] == "completed"


async def test_a_lone_token_is_sent_at_once_in_a_round_trip_of_its_own(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    """No timer, no waiting for other tasks: the token leaves on the next turn of the loop
    although other writers of the same client are open and idle, and no flush is asked."""
    busy, idle = await new_task(store), await new_task(store)
    quiet = store.writer(idle)
    await quiet.write({"type": "token", "content": "earlier"})
    writer = store.writer(busy)
    flusher = flusher_for(redis)
    before = flusher.round_trips
    writer.append_nowait({"type": "token", "content": "alone"})
    for _ in range(1_000):
        if await redis.xlen(settings.keys.events(busy.task_id)) == 2:
            break
        await asyncio.sleep(0.005)
    assert await redis.xlen(settings.keys.events(busy.task_id)) == 2
    assert flusher.round_trips - before == 1
    assert writer.pending == 0
    await asyncio.gather(writer.aclose(), quiet.aclose())


async def test_the_script_is_loaded_again_after_redis_forgot_it(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempts = [await new_task(store) for _ in range(3)]
    writers = [store.writer(a) for a in attempts]
    await writers[0].write({"type": "token", "content": "loaded"})
    await redis.script_flush()  # as after a restart of Redis
    for writer in writers:
        writer.append_nowait({"type": "token", "content": "after the flush"})
    await asyncio.gather(*(w.flush() for w in writers))
    assert [w.last_seq for w in writers] == [3, 2, 2]
    await asyncio.gather(*(w.aclose() for w in writers))


async def test_a_client_dropped_after_use_leaves_no_flusher_behind(settings: StreamsSettings) -> None:
    """The registry of flushers holds clients weakly: neither it nor the idle flusher keeps
    a client (or its writers) alive."""
    client = create_redis(settings)
    store = TaskStore(client, settings)
    async with store.writer(await new_task(store)) as writer:
        await writer.write({"type": "token", "content": "x"})
    assert client in _flushers
    probe = weakref.ref(client)
    await client.aclose()
    del client, store, writer
    gc.collect()
    assert probe() is None  # and with it, its entry in the registry


async def test_a_connection_killed_by_redis_is_replaced_without_loss_or_duplicates(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempts = [await new_task(store) for _ in range(3)]
    writers = [store.writer(a) for a in attempts]
    await asyncio.gather(*(w.write({"type": "token", "content": "before"}) for w in writers))
    # every other client's connection, the flusher's (held while it lingers) included
    await redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    await asyncio.gather(*(w.write({"type": "token", "content": "after"}) for w in writers))
    for attempt in attempts:
        events = await stored(redis, settings, attempt.task_id)
        assert [(e["seq"], e.get("content")) for e in events] == [(1, None), (2, "before"), (3, "after")]
    await asyncio.gather(*(w.aclose() for w in writers))


async def test_a_stopped_flusher_fails_its_waiting_writers_and_the_next_flush_starts_another(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    attempt = await new_task(store)
    writer = store.writer(attempt)
    await writer.write({"type": "token", "content": "first"})
    flusher = flusher_for(redis)
    stopped = flusher._task
    assert stopped is not None  # lingering for the next event
    writer.append_nowait({"type": "token", "content": "second"})
    stopped.cancel()
    with pytest.raises(RedisConnectionError, match="stopped"):
        await writer.flush()
    assert writer.pending == 1  # kept
    await writer.flush()
    assert flusher._task is not stopped
    assert [e.get("content") for e in await stored(redis, settings, attempt.task_id)] == [
        None,
        "first",
        "second",
    ]
    await writer.aclose()


def test_the_pace_lingers_only_while_items_come_one_per_linger_or_faster() -> None:
    """The rule the flusher (and the reader hub) lingers by, on a clock of its own."""
    trickle = Pace(linger_s=0.002, batch=1.0)
    for i in range(100):  # one task's tokens, 30 ms apart
        trickle.observe(1, 1.0 + i * 0.03)
        assert not trickle.busy(1.0 + i * 0.03 + 0.001)
    busy = Pace(linger_s=0.002, batch=1.0)
    for i in range(100):  # 50 tasks at 33 tokens/s: 1,650 batches a second
        busy.observe(3, 1.0 + i * 0.002)
    assert busy.busy(1.2)
    assert not busy.busy(1.2 + 0.021)  # a pause of ten lingers: the burst is over
    off = Pace(linger_s=0.0, batch=1.0)
    off.observe(100, 1.0)
    assert not off.busy(1.0)


async def test_a_busy_flusher_waits_one_linger_and_takes_the_tokens_of_many_tasks_in_one_round_trip(
    redis: Any, settings: StreamsSettings
) -> None:
    """While several tasks stream, at least one batch per linger, a token waits for the
    others: five tasks' tokens, a turn of the loop apart, share one round trip under a
    (test-sized) 100 ms linger."""
    store = TaskStore(redis, dataclasses.replace(settings, flush_linger_ms=100.0))
    attempts = [await new_task(store) for _ in range(5)]
    writers = [store.writer(a) for a in attempts]
    flusher = flusher_for(redis, 0.1)
    assert flusher.pace.linger_s == 0.1

    async def round_of_tokens(gap_s: float) -> int:
        before = flusher.round_trips
        for writer in writers:
            writer.append_nowait({"type": "token", "content": "together"})
            await asyncio.sleep(gap_s)  # without the linger, the first token leaves alone here
        await asyncio.gather(*(w.flush() for w in writers))
        return flusher.round_trips - before

    # The tasks stream for a while (the flusher counts them over ten lingers, 1 s here).
    for _ in range(1_000):
        await round_of_tokens(0.001)
        if flusher.lingers:
            break
    assert flusher.lingers
    # The flusher runs between two tokens (it takes the first one at once unless it
    # lingers), yet all five come within microseconds: far inside the linger, however
    # loaded the machine; 1 ms apart, a descheduled test could miss the 100 ms.
    assert await round_of_tokens(0) == 1
    for attempt in attempts:
        assert await redis.xlen(settings.keys.events(attempt.task_id)) >= 3
    await asyncio.gather(*(w.aclose() for w in writers))


async def test_one_task_alone_is_never_held_back_however_fast_it_writes(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    writer = store.writer(await new_task(store))
    flusher = flusher_for(redis, 0.1)
    for _ in range(100):  # 1,000 tokens a second: far more than one per linger
        await writer.write({"type": "token", "content": "alone"})
        await asyncio.sleep(0.001)
    assert flusher.pace.rate * flusher.pace.linger_s >= 1
    assert flusher.lingers == 0
    await writer.aclose()


def test_the_flush_linger_is_read_from_the_environment_and_checked() -> None:
    assert StreamsSettings.from_env({"AGENTSTREAM_FLUSH_LINGER_MS": "2"}).flush_linger_ms == 2.0
    assert StreamsSettings.from_env({}).flush_linger_ms == 0.0
    with pytest.raises(UsageError, match="flush_linger_ms must be between 0 and 100"):
        StreamsSettings(flush_linger_ms=500)
