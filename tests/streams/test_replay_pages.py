"""Replay reads its next XRANGE page ahead (from the second page on): one request in
flight at most, none left behind when the reader stops early, errors and cancellation
passed on; and the page decoder gives what the per-entry decoder gives."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from agentstream.streams import EventFilter, Reader, StreamsSettings, TaskStore
from agentstream.streams.codec import decode_entries, decode_entry, encode
from tests.streams.helpers import COMPLETED, new_task, tokens

#: how long the server holds every client's commands (CLIENT PAUSE): its reply comes once the
#: pause is in effect, so a request sent after it waits, however slow the box; long enough for
#: a descheduled test process to see the request waiting
PAUSE_MS = 3000


async def finished_task(store: TaskStore, n: int) -> str:
    attempt = await new_task(store)
    async with store.writer(attempt) as writer:
        for event in tokens(n):
            writer.append_nowait(event)
        writer.append_nowait({"type": "usage", "prompt_tokens": 1, "completion_tokens": n, "total_tokens": n})
        writer.append_nowait(COMPLETED)
    return attempt.task_id


def paged(redis: Any, settings: StreamsSettings, size: int) -> Reader:
    return Reader(redis, dataclasses.replace(settings, page_size=size))


def lent(redis: Any) -> set[Any]:
    """The pool's connections lent out now (the store's writer keeps one of its own)."""
    return set(redis.connection_pool._in_use_connections)


async def assert_pool_clean(redis: Any, lent_before: set[Any]) -> None:
    """No connection the replay took is still lent out, and none holds a reply meant for
    another command (each of many concurrent ECHOs gets its own answer). A connection lent
    before may have come back meanwhile (the writer's flusher lets its own go after 1 s)."""
    assert lent(redis) <= lent_before
    said = [f"echo-{i}" for i in range(12)]
    assert await asyncio.gather(*(redis.echo(word) for word in said)) == said


async def test_pages_read_ahead_give_the_same_events_at_any_page_size(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 95)
    lent_before = lent(redis)
    one = await collect(paged(redis, settings, 1000).replay(task_id))
    assert [e["seq"] for _, e in one] == list(range(1, 99))  # queued, 95 tokens, usage, completed
    core = EventFilter.parse("core")
    for size in (1, 2, 10, 97, 98, 99):
        reader = paged(redis, settings, size)
        assert await collect(reader.replay(task_id)) == one
        assert await collect(reader.replay(task_id, after=one[40][0])) == one[41:]
        assert await collect(reader.replay(task_id, filter=core)) == [i for i in one if core.matches(i[1])]
    await assert_pool_clean(redis, lent_before)


async def test_replay_pages_give_replays_events_a_page_at_a_time(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 95)
    lent_before = lent(redis)
    core = EventFilter.parse("core")
    for size in (1, 10, 97, 98, 1000):
        reader = paged(redis, settings, size)
        for after, flt in (("0", None), ("0", core), ("1-0", None)):
            pages = [page async for page in reader.replay_pages(task_id, after, flt)]
            items = await collect(reader.replay(task_id, after, flt))
            assert [i for page in pages for i in page] == items
            assert all(len(page) <= size for page in pages)
            if flt is None:  # a page of the stream each, none empty
                assert len(pages) == -(-len(items) // size) and all(pages)
    await assert_pool_clean(redis, lent_before)


async def collect(aiter: Any) -> list[tuple[str, dict[str, Any]]]:
    return [item async for item in aiter]


async def xranges(redis: Any) -> int:
    return int((await redis.info("commandstats")).get("cmdstat_xrange", {}).get("calls", 0))


async def test_a_replay_stopping_within_its_first_page_reads_nothing_ahead(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 95)
    before, calls = asyncio.all_tasks(), await xranges(redis)
    replay = paged(redis, settings, 10).replay(task_id)
    assert len([await anext(replay) for _ in range(10)]) == 10  # the whole first page
    assert not asyncio.all_tasks() - before  # (the writer's flusher may end meanwhile)
    await replay.aclose()
    assert await xranges(redis) - calls == 2  # the first page and the oldest entry, no more


@pytest.mark.parametrize("by_page", [False, True], ids=["replay", "replay_pages"])
async def test_a_replay_closed_early_leaves_no_task_and_no_reply_behind(
    store: TaskStore, redis: Any, settings: StreamsSettings, by_page: bool
) -> None:
    task_id = await finished_task(store, 95)
    lent_before = lent(redis)
    before = asyncio.all_tasks()
    reader = paged(redis, settings, 10)
    if by_page:
        replay: Any = reader.replay_pages(task_id)
        seen = [item for _ in range(2) for item in await anext(replay)]  # page 3 asked for
    else:
        replay = reader.replay(task_id)
        seen = [await anext(replay) for _ in range(15)]  # page 2 in hand, page 3 asked for
    assert len(asyncio.all_tasks() - before) == 1  # the request in flight
    await replay.aclose()
    assert not asyncio.all_tasks() - before  # (the writer's flusher may end meanwhile)
    assert [e["seq"] for _, e in seen] == list(range(1, len(seen) + 1))
    await assert_pool_clean(redis, lent_before)


async def test_a_replay_cancelled_while_its_next_page_is_in_flight_raises_and_cleans_up(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 95)
    lent_before = lent(redis)
    before = asyncio.all_tasks()
    # connected spares in the pool, so page 3 is sent at once rather than waiting to connect
    await asyncio.gather(*(redis.ping() for _ in range(6)))
    replay = paged(redis, settings, 10).replay(task_id)
    seen = [await anext(replay) for _ in range(15)]  # page 3 asked for with page 2 in hand
    (page3,) = asyncio.all_tasks() - before
    await asyncio.wait([page3], timeout=10)  # page 3 is in (not taken: the replay takes it)
    assert page3.done()
    await redis.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")  # from here a request waits

    async def drain() -> None:
        async with contextlib.aclosing(replay):
            async for item in replay:
                seen.append(item)

    reading = asyncio.create_task(drain())
    for _ in range(200):  # page 3 is read; the request for page 4 waits for the pause to end
        if len(seen) == 30:
            break
        await asyncio.sleep(0.01)
    assert not reading.done() and len(seen) == 30  # stuck on page 4
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert reading.cancelled()
    assert not asyncio.all_tasks() - before  # (the writer's flusher may end meanwhile)
    await assert_pool_clean(redis, lent_before)  # its echoes wait for the pause to end


async def test_an_error_on_a_page_read_ahead_reaches_the_reader_at_that_page(
    store: TaskStore, redis: Any, settings: StreamsSettings
) -> None:
    task_id = await finished_task(store, 95)
    lent_before = lent(redis)
    before = asyncio.all_tasks()
    replay = paged(redis, settings, 10).replay(task_id)
    seen = [await anext(replay) for _ in range(15)]  # page 3 is asked for already
    (page3,) = asyncio.all_tasks() - before
    await asyncio.wait([page3], timeout=10)  # and answered, before the stream goes
    assert page3.done()
    key = settings.keys.events(task_id)
    await redis.delete(key)
    await redis.set(key, "not a stream")  # the request for page 4 finds this
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        async for item in replay:
            seen.append(item)
    assert [e["seq"] for _, e in seen] == list(range(1, 31))
    assert not asyncio.all_tasks() - before  # (the writer's flusher may end meanwhile)
    await assert_pool_clean(redis, lent_before)


# --------------------------------------------------------------------------- the page decoder


def flat(event: dict[str, Any], seq: int, attempt: int) -> list[str]:
    """The fields of ``event`` as the append script writes them, in its order."""
    enc = encode(event)
    text = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731
    fields = ["t", enc.type, "s", str(seq), "a", str(attempt), "m", str(enc.ts_us), "g", enc.agent_id,
              "d", text(enc.payload)]  # fmt: skip
    return fields + (["x", text(enc.extra)] if enc.extra else [])


def one_by_one(entries: list[tuple[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(cursor, decode_entry(cursor, fields, "task1")) for cursor, fields in entries]


def same(got: list[tuple[str, dict[str, Any]]], want: list[tuple[str, dict[str, Any]]]) -> None:
    assert got == want
    assert [list(event) for _, event in got] == [list(event) for _, event in want]  # key order too


events = st.fixed_dictionaries(
    {"type": st.sampled_from(["token", "thinking_token", "tool_call", "x_custom"]),
     "content": st.text(max_size=12),
     "timestamp": st.integers(0, 4_102_444_800_000_000) | st.integers(1_764_000_000_000_000, 1_764_000_003_000_000)},
    optional={"agent_id": st.text(string.ascii_letters, min_size=1, max_size=6),
              "loop_scope": st.just({"kind": "dawp", "run_id": "r"})},
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(page=st.lists(st.tuples(events, st.integers(1, 3)), max_size=30))
def test_the_page_decoder_gives_what_the_entry_decoder_gives(page: list[tuple[dict[str, Any], int]]) -> None:
    entries: list[tuple[str, Any]] = [
        (f"{i + 1}-0", flat(event, i + 1, attempt)) for i, (event, attempt) in enumerate(page)
    ]
    same(decode_entries(entries, "task1"), one_by_one(entries))


def test_the_page_decoder_takes_odd_stored_timestamps_and_redis_py_dicts() -> None:
    token = flat({"type": "token", "content": "x", "agent_id": "a"}, 1, 1)
    odd = ["1764000000123456", "0001764000000123456", "1764000000123456 ", "+1764000000123456",
           "1_764000000123456", "-1000000", "999999", "7", "1764000000123457"]  # fmt: skip
    entries: list[tuple[str, Any]] = []
    for i, m in enumerate(odd):
        fields = [*token]
        fields[7] = m
        entries.append((f"{i + 1}-0", fields))
    entries.append(("20-0", dict(zip(token[::2], token[1::2], strict=True))))
    same(decode_entries(entries, "task1"), one_by_one(entries))
