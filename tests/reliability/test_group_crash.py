"""Scenario 2: a consumer of a group crashes with entries pending; a poison event.

Two consumers of one group share a task's stream while a simulated worker writes it. One
crashes (its task is cancelled) holding delivered, unacked entries; the survivor claims
them once idle for ``min_idle_ms``. One event's processing always fails, so it is never
acked: after ``max_deliveries`` it must land in the dead-letter stream with its reason,
and the group must then finish (nothing pending, no lag). Every event is processed at
least once or dead-lettered; together they are exactly the replay.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from agentstream.streams import GroupConsumer, Reader, StreamsSettings, TaskStore
from tests.reliability.invariants import assert_same_as_replay, assert_stream_sound

MAX_DELIVERIES = 3
MIN_IDLE_MS = 200
POISON = "poison"


class Poisoned(Exception):
    pass


async def write_task(store: TaskStore, task_id: str, tokens: int, poison_at: int) -> None:
    """Play the worker: ``tokens`` tokens (one of them poison), a result, ``completed``."""
    attempt = await store.open_attempt(task_id)
    async with store.writer(attempt) as writer:
        for i in range(tokens):
            await writer.append({"type": "token", "content": POISON if i == poison_at else f"w{i} "})
            if i % 10 == 0:
                await asyncio.sleep(0.005)
        await writer.append({"type": "result", "output": "done", "success": True, "execution_time": 0.1})
        await writer.append(
            {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.1}
        )


def process(event: dict[str, Any]) -> None:
    if event.get("content") == POISON:
        raise Poisoned(event["seq"])


async def consume(
    consumer: GroupConsumer, processed: dict[str, list[dict[str, Any]]], crash_after: int | None = None
) -> None:
    """An at-least-once consumer: process, then ack; a failure leaves the entry pending.
    With ``crash_after``, it dies (no ack, no cleanup) after that many successes, in the
    middle of a delivered batch."""
    done = 0
    while not await consumer.finished():
        for cursor, event in await consumer.read(count=20, block_ms=100):
            try:
                process(event)
            except Poisoned:
                continue
            processed.setdefault(cursor, []).append(event)
            done += 1
            if crash_after is not None and done >= crash_after:
                raise asyncio.CancelledError  # killed between processing and acking
            await consumer.ack(cursor)


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_crashed_consumer_entries_are_claimed_and_poison_is_dead_lettered(
    settings: StreamsSettings, store: TaskStore, reader: Reader, redis: Any
) -> None:
    task_id = f"grp-{random.randrange(10**9)}"
    await store.create_task(task_id, owner="t", agent="llm", input="x")
    tokens, poison_at = 400, random.randrange(50, 350)

    def member(name: str) -> GroupConsumer:
        return GroupConsumer(redis, settings, task_id, "billing", name,
                             max_deliveries=MAX_DELIVERIES, min_idle_ms=MIN_IDLE_MS)  # fmt: skip

    processed: dict[str, list[dict[str, Any]]] = {}
    async with member("a") as a, member("b") as b:
        writing = asyncio.create_task(write_task(store, task_id, tokens, poison_at))
        crashed = asyncio.create_task(consume(a, processed, crash_after=random.randrange(20, 120)))
        survivor = asyncio.create_task(consume(b, processed))
        await asyncio.wait([crashed], timeout=30)
        assert crashed.cancelled(), "consumer a was meant to crash"
        pending_of_a = (await a.redis.xpending(a.key, "billing"))["consumers"]
        a_left = next((int(c["pending"]) for c in pending_of_a if c["name"] == "a"), 0)
        async with asyncio.timeout(40):
            await asyncio.gather(writing, survivor)
        dead = await b.dead_letters()
        assert await b.finished()

    replayed = [event async for _, event in reader.replay(task_id)]
    assert_stream_sound(replayed, status="succeeded")
    poison = next(e for e in replayed if e.get("content") == POISON)
    # the dead-letter stream holds the poison event with its reason, and nothing else
    assert [e["dl_entry"] for _, e in dead] == [poison["id"]]
    assert dead[0][1]["dl_reason"] == f"delivered {MAX_DELIVERIES + 1} times"
    assert dead[0][1]["dl_group"] == "billing"
    # every other event processed at least once; together with the dead letter: the replay
    dead_events = [{k: v for k, v in e.items() if not k.startswith("dl_")} for _, e in dead]
    union = sorted([*(events[0] for events in processed.values()), *dead_events], key=lambda e: e["seq"])
    assert_same_as_replay(union, replayed)
    redelivered = sum(len(v) > 1 for v in processed.values())
    print(f"\nscenario 2: {len(replayed)} events, consumer a died with {a_left} pending (claimed by b), "
          f"{redelivered} processed twice, poison seq {poison['seq']} dead-lettered after {MAX_DELIVERIES + 1} deliveries")  # fmt: skip
    assert a_left > 0, "the crash left nothing pending: nothing was claimed"
