"""Side-by-side measurements of the streams core against raw redis-py on one Redis.

Run: ``python -m bench.streams_bench [--events N] [--memory-events N]``. Starts its own
redis-server on a free loopback port (so INFO memory is clean), prints a table and writes
``bench/results/streams.json``. Every figure that has a raw counterpart is reported as a
ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from agentstream.streams import (
    EventFilter,
    GroupConsumer,
    Reader,
    ReaderHub,
    StreamsSettings,
    TaskStore,
    create_redis,
)
from agentstream.streams.codec import encode
from tests.redis_server import redis_node

RESULTS = Path(__file__).parent / "results"
BATCH = 64


def token(i: int) -> dict[str, Any]:
    return {"type": "token", "content": f"tok{i % 100} ", "agent_id": "bench"}


async def timed(fn: Callable[[], Awaitable[int]]) -> dict[str, float]:
    """Run ``fn`` (returns an item count); wall rate and client CPU per item."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    count = await fn()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"items": count, "per_s": count / wall, "cpu_us_per_item": cpu / count * 1e6, "wall_s": wall}


async def fenced_writer(redis: Redis, settings: StreamsSettings, n: int) -> int:
    """``n`` token events through ``TaskStore.writer`` (batches of ``BATCH``) into a new task."""
    store = TaskStore(redis, settings)
    task_id = uuid.uuid4().hex
    await store.create_task(task_id, owner="bench", agent="llm", input="x")
    attempt = await store.open_attempt(task_id)
    w = StreamsSettings(redis_url=settings.redis_url, prefix=settings.prefix, max_batch=BATCH)
    async with TaskStore(redis, w).writer(attempt) as out:
        for i in range(n):
            await out.append(token(i))
    return n


async def redis_py_xrange(redis: Redis, key: str, page_size: int) -> int:
    """Read ``key`` from the start with redis-py ``xrange`` pages (its default parsing)."""
    count, after = 0, "-"
    while True:
        page = await redis.xrange(key, min=after, count=page_size)
        if not page:
            return count
        count += len(page)
        after = "(" + page[-1][0]


async def ingest(redis: Redis, settings: StreamsSettings, n: int) -> dict[str, Any]:

    async def raw() -> int:
        key = f"raw:{{{uuid.uuid4().hex}}}:events"
        for start in range(0, n, BATCH):
            pipe = redis.pipeline(transaction=False)
            for i in range(start, min(start + BATCH, n)):
                enc = encode(token(i))  # same encoding work as the writer: only the transport differs
                pipe.xadd(key, {"t": enc.type, "s": i + 1, "a": 1, "m": enc.ts_us, "g": enc.agent_id, "d": enc.payload},
                          maxlen=settings.maxlen, approximate=True)  # fmt: skip
            await pipe.execute()
        return n

    async def writer() -> int:
        return await fenced_writer(redis, settings, n)

    raw_r = await timed(raw)
    ours = await timed(writer)
    return {"raw_pipelined_xadd": raw_r, "writer": ours, "ratio_throughput": ours["per_s"] / raw_r["per_s"],
            "ratio_cpu": ours["cpu_us_per_item"] / raw_r["cpu_us_per_item"], "batch": BATCH}  # fmt: skip


async def finished_task(store: TaskStore, n: int) -> str:
    task_id = uuid.uuid4().hex
    await store.create_task(task_id, owner="bench", agent="llm", input="x")
    attempt = await store.open_attempt(task_id)
    async with store.writer(attempt) as out:
        for i in range(n):
            out.append_nowait(token(i))
        out.append_nowait({"type": "completed", "success": True, "status": "succeeded", "execution_time": 0})
    return task_id


async def replay(redis: Redis, settings: StreamsSettings, n: int) -> dict[str, Any]:
    store = TaskStore(redis, settings)
    task_id = await finished_task(store, n)
    key = settings.keys.events(task_id)
    reader = Reader(redis, settings)

    async def raw() -> int:
        return await redis_py_xrange(redis, key, settings.page_size)

    async def ours() -> int:
        count = 0
        async for _ in reader.replay(task_id, filter=EventFilter.parse("core")):
            count += 1
        return count

    raw_r, ours_r = await timed(raw), await timed(ours)
    return {"raw_xrange": raw_r, "replay_decoded_filtered": ours_r, "ratio": ours_r["per_s"] / raw_r["per_s"]}


async def groups(redis: Redis, settings: StreamsSettings, n: int) -> dict[str, Any]:
    store = TaskStore(redis, settings)
    task_id = await finished_task(store, n)
    key = settings.keys.events(task_id)

    async def raw() -> int:
        await redis.xgroup_create(key, "raw", id="0")
        count = 0
        while True:
            reply = await redis.xreadgroup("raw", "c", {key: ">"}, count=100)
            if not reply:
                return count
            ids = [c for c, _ in reply[0][1]]
            await redis.xack(key, "raw", *ids)
            count += len(ids)

    async def ours() -> int:
        count = 0
        async with GroupConsumer(
            redis, settings, task_id, "ours", "c", count=100, block_ms=10, min_idle_ms=0
        ) as c:
            while True:
                items = await c.read()
                if not items:
                    return count
                await c.ack(*[cursor for cursor, _ in items])
                count += len(items)

    raw_r, ours_r = await timed(raw), await timed(ours)
    return {"raw_xreadgroup_xack": raw_r, "group_consumer": ours_r, "ratio": ours_r["per_s"] / raw_r["per_s"]}


def percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    return {
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": samples[-1],
        "mean_ms": statistics.fmean(samples),
    }


async def latency(
    redis: Redis, settings: StreamsSettings, n: int, interval_s: float = 0.002
) -> dict[str, Any]:
    """Append → live reader latency at light load: one event every ``interval_s``."""
    store = TaskStore(redis, settings)

    async def raw() -> list[float]:
        key = f"rawlat:{{{uuid.uuid4().hex}}}"
        got: list[float] = []
        reader = Redis.from_url(settings.redis_url, decode_responses=True)

        async def consume() -> None:
            last = "$"
            while len(got) < n:
                reply = await reader.xread({key: last}, block=1000, count=100)
                now = time.perf_counter()
                for _, entries in reply or []:
                    for cursor, fields in entries:
                        got.append((now - float(fields["p"])) * 1000)
                        last = cursor

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        for _ in range(n):
            await redis.xadd(key, {"p": repr(time.perf_counter())})
            await asyncio.sleep(interval_s)
        await asyncio.wait_for(task, 30)
        await reader.aclose()
        return got

    async def ours() -> list[float]:
        task_id = uuid.uuid4().hex
        await store.create_task(task_id, owner="bench", agent="llm", input="x")
        attempt = await store.open_attempt(task_id)
        got: list[float] = []
        async with ReaderHub(redis, settings) as hub:
            reader = Reader(redis, settings, hub)

            async def consume() -> None:
                async for _, event in reader.tail(task_id, after="$"):
                    if event["type"] == "token":
                        got.append((time.perf_counter() - float(event["content"])) * 1000)

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.05)
            async with store.writer(attempt) as out:
                for _ in range(n):
                    out.append_nowait({"type": "token", "content": repr(time.perf_counter())})
                    await asyncio.sleep(interval_s)
                out.append_nowait(
                    {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0}
                )
            await asyncio.wait_for(task, 30)
        return got

    raw_r, ours_r = percentiles(await raw()), percentiles(await ours())
    return {"raw_xadd_xread_block": raw_r, "writer_to_tail": ours_r, "interval_ms": interval_s * 1000,
            "note": "producer and reader share one process and event loop in both columns"}  # fmt: skip


async def memory(settings: StreamsSettings, events: int, streams: int) -> dict[str, Any]:
    """Redis bytes per token event (5-char content) over ``events`` in ``streams`` streams."""
    with redis_node() as url:
        mem_settings = StreamsSettings(redis_url=url, prefix="mem", max_batch=256)
        redis = create_redis(mem_settings)
        store = TaskStore(redis, mem_settings)
        per = events // streams
        attempts = []
        for _ in range(streams):
            task_id = uuid.uuid4().hex[:16]
            await store.create_task(task_id, owner="bench", agent="llm", input="x")
            attempts.append(await store.open_attempt(task_id))
        await redis.execute_command("MEMORY", "PURGE")
        before = int((await redis.info("memory"))["used_memory"])
        sem = asyncio.Semaphore(8)

        async def fill(attempt: Any) -> None:
            async with sem, store.writer(attempt) as out:
                for i in range(per):
                    out.append_nowait({"type": "token", "content": f"w{i % 1000:04d}"})

        await asyncio.gather(*(fill(a) for a in attempts))
        after = int((await redis.info("memory"))["used_memory"])
        await redis.aclose()
    per_event = (after - before) / (per * streams)
    return {"events": per * streams, "streams": streams, "content_bytes": 5, "bytes_per_event": per_event,
            "overhead_bytes_per_event": per_event - 5, "target_overhead": 64}  # fmt: skip


def table(results: dict[str, Any]) -> str:
    i, r, g, lat, mem = (results[k] for k in ("ingest", "replay", "groups", "latency", "memory"))
    rows = [
        ("ingest events/s (batch 64)", f"{i['raw_pipelined_xadd']['per_s']:,.0f}", f"{i['writer']['per_s']:,.0f}", f"{i['ratio_throughput']:.2f}x", ">= 1.0x"),
        ("ingest client CPU us/event", f"{i['raw_pipelined_xadd']['cpu_us_per_item']:.1f}", f"{i['writer']['cpu_us_per_item']:.1f}", f"{i['ratio_cpu']:.2f}x", ""),
        ("replay entries/s (decoded)", f"{r['raw_xrange']['per_s']:,.0f}", f"{r['replay_decoded_filtered']['per_s']:,.0f}", f"{r['ratio']:.2f}x", ">= 0.70x"),
        ("group read+ack entries/s", f"{g['raw_xreadgroup_xack']['per_s']:,.0f}", f"{g['group_consumer']['per_s']:,.0f}", f"{g['ratio']:.2f}x", ""),
        ("tail latency p50 ms", f"{lat['raw_xadd_xread_block']['p50_ms']:.3f}", f"{lat['writer_to_tail']['p50_ms']:.3f}", "", ""),
        ("tail latency p99 ms", f"{lat['raw_xadd_xread_block']['p99_ms']:.3f}", f"{lat['writer_to_tail']['p99_ms']:.3f}", "", "<= 2 ms"),
        ("Redis bytes/token event", "", f"{mem['bytes_per_event']:.1f}", f"{mem['overhead_bytes_per_event']:.1f} + content", "<= 64 + content"),
    ]  # fmt: skip
    head = ("measure", "raw redis-py", "agentstream", "ratio", "target")
    widths = [max(len(str(row[c])) for row in [head, *rows]) for c in range(5)]
    lines = [
        " | ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [head, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


async def run(events: int, memory_events: int, memory_streams: int) -> dict[str, Any]:
    with redis_node() as url:
        settings = StreamsSettings(redis_url=url, prefix="bench", maxlen=10_000_000)
        redis = create_redis(settings)
        try:
            results = {
                "ingest": await ingest(redis, settings, events),
                "replay": await replay(redis, settings, events),
                "groups": await groups(redis, settings, events // 2),
                "latency": await latency(redis, settings, 2_000),
            }
        finally:
            await redis.aclose()
    results["memory"] = await memory(settings, memory_events, memory_streams)
    results["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--memory-events", type=int, default=1_000_000)
    parser.add_argument("--memory-streams", type=int, default=1_000)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.events, args.memory_events, args.memory_streams))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "streams.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'streams.json'}")


if __name__ == "__main__":
    main()
