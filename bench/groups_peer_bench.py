"""Consumer groups: ``streams.GroupConsumer`` vs FastStream's Redis stream subscriber (issue 5).

Run: ``python -m bench.groups_peer_bench [--events 100000] [--quick]``. Starts its own
redis-server, writes ONE finished task's stream (``--events`` tokens, plus ``queued`` and
``completed``) through the fenced writer, then lets each consumer drain the same stream
with its own consumer group (created at ``0``), one after the other, in this process:

- ``raw``: redis-py XREADGROUP COUNT 100 + one XACK per batch (no decoding): the floor;
- ``group_consumer_batch``: ``GroupConsumer.read(100)`` (decoded, filtered events) + one
  ``ack(*cursors)`` per batch;
- ``group_consumer_each``: ``async for cursor, event in GroupConsumer`` + ``ack(cursor)``
  per event (one XACK per event, as FastStream's default);
- ``faststream_each``: FastStream ``StreamSub(group=..., consumer=..., max_records=100)``,
  handler per message (body = the entry's fields as a dict), ``AckPolicy.ACK``: one XACK
  per message after the handler;
- ``faststream_batch``: ``StreamSub(..., batch=True, max_records=100)``, one handler call
  and one XACK per batch.

events/s = entries processed and acked / wall time until the group has nothing pending;
CPU = this process's CPU per entry. FastStream runs with its access log off (``logger=None``:
it logs two lines per message otherwise). Writes ``bench/results/groups.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from agentstream.streams import GroupConsumer, StreamsSettings, TaskStore, create_redis
from bench.procs import render
from bench.streams_bench import finished_task
from tests.redis_server import redis_node

RESULTS = Path(__file__).parent / "results"
PREFIX = "gbench"
COUNT = 100


async def pending(redis: Any, key: str, group: str) -> int:
    return int((await redis.xpending(key, group))["pending"])


async def measure(
    redis: Any, key: str, group: str, total: int, fn: Callable[[], Awaitable[int]]
) -> dict[str, Any]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    count = await asyncio.wait_for(fn(), 600)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    left = await pending(redis, key, group)
    return {"items": count, "expected": total, "pending_after": left, "per_s": count / wall, "wall_s": wall,
            "cpu_us_per_item": cpu / max(1, count) * 1e6}  # fmt: skip


async def run_raw(redis: Any, key: str, total: int) -> int:
    await redis.xgroup_create(key, "raw", id="0")
    count = 0
    while count < total:
        reply = await redis.xreadgroup("raw", "c", {key: ">"}, count=COUNT, block=100)
        if not reply:
            continue
        ids = [c for c, _ in reply[0][1]]
        await redis.xack(key, "raw", *ids)
        count += len(ids)
    return count


async def run_ours_batch(redis: Any, settings: StreamsSettings, task_id: str, total: int) -> int:
    count = 0
    async with GroupConsumer(redis, settings, task_id, "ours_batch", "c", count=COUNT, block_ms=100) as c:
        while count < total:
            items = await c.read()
            if items:
                await c.ack(*[cursor for cursor, _ in items])
                count += len(items)
    return count


async def run_ours_each(redis: Any, settings: StreamsSettings, task_id: str, total: int) -> int:
    count = 0
    async with GroupConsumer(redis, settings, task_id, "ours_each", "c", count=COUNT, block_ms=100) as c:
        async for cursor, _event in c:
            await c.ack(cursor)
            count += 1
    return count


async def run_faststream(url: str, redis: Any, key: str, group: str, total: int, batch: bool) -> int:
    from faststream import AckPolicy
    from faststream.redis import RedisBroker, StreamSub

    await redis.xgroup_create(key, group, id="0")  # FastStream would create it at "$"
    broker = RedisBroker(url, logger=None)
    done = asyncio.Event()
    count = 0
    sub = StreamSub(key, group=group, consumer="c", batch=batch, max_records=COUNT)

    if batch:

        @broker.subscriber(stream=sub, ack_policy=AckPolicy.ACK)
        async def handle_batch(body: list[dict[str, Any]]) -> None:
            nonlocal count
            count += len(body)
            if count >= total:
                done.set()

    else:

        @broker.subscriber(stream=sub, ack_policy=AckPolicy.ACK)
        async def handle(body: dict[str, Any]) -> None:
            nonlocal count
            count += 1
            if count >= total:
                done.set()

    await broker.start()
    try:
        await asyncio.wait_for(done.wait(), 600)
        async with asyncio.timeout(30):  # the last ack goes out after the handler returns
            while True:  # Redis state is polled: no event to wait on
                if not await pending(redis, key, group):
                    break
                await asyncio.sleep(0.01)
    finally:
        await broker.stop()
    return count


async def run(events: int) -> dict[str, Any]:
    with redis_node() as url:
        settings = StreamsSettings(redis_url=url, prefix=PREFIX, maxlen=10_000_000)
        redis = create_redis(settings)
        try:
            store = TaskStore(redis, settings)
            task_id = await finished_task(store, events)
            key = settings.keys.events(task_id)
            total = int(await redis.xlen(key))
            out: dict[str, Any] = {"entries": total}
            out["raw"] = await measure(redis, key, "raw", total, lambda: run_raw(redis, key, total))
            out["group_consumer_batch"] = await measure(
                redis, key, "ours_batch", total, lambda: run_ours_batch(redis, settings, task_id, total)
            )
            out["faststream_batch"] = await measure(
                redis,
                key,
                "fs_batch",
                total,
                lambda: run_faststream(url, redis, key, "fs_batch", total, True),
            )
            out["group_consumer_each"] = await measure(
                redis, key, "ours_each", total, lambda: run_ours_each(redis, settings, task_id, total)
            )
            out["faststream_each"] = await measure(
                redis, key, "fs_each", total, lambda: run_faststream(url, redis, key, "fs_each", total, False)
            )
            info = await redis.info("server")
        finally:
            await redis.aclose()
    out["ratios"] = {
        "ours_batch_vs_faststream_batch": out["group_consumer_batch"]["per_s"]
        / out["faststream_batch"]["per_s"],
        "ours_each_vs_faststream_each": out["group_consumer_each"]["per_s"] / out["faststream_each"]["per_s"],
        "ours_batch_vs_raw": out["group_consumer_batch"]["per_s"] / out["raw"]["per_s"],
        "faststream_batch_vs_raw": out["faststream_batch"]["per_s"] / out["raw"]["per_s"],
    }
    out["versions"] = {"faststream": version("faststream"), "redis_py": version("redis"), "redis_server": info.get("redis_version")}  # fmt: skip
    out["meaning"] = __doc__
    out["params"] = {"events": events, "count": COUNT}
    out["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    return out


def table(r: dict[str, Any]) -> str:
    x = r["ratios"]

    def row(name: str, k: str) -> tuple[str, ...]:
        x = r[k]
        return (name, f"{x['per_s']:,.0f}", f"{x['cpu_us_per_item']:.1f}",
                f"{x['items']}/{x['expected']}, pending {x['pending_after']}")  # fmt: skip

    rows = [
        row("raw XREADGROUP+XACK (100)", "raw"),
        row("GroupConsumer read(100)+ack batch", "group_consumer_batch"),
        row("FastStream batch=True (100)", "faststream_batch"),
        row("GroupConsumer async for + ack each", "group_consumer_each"),
        row("FastStream per message + ack", "faststream_each"),
        ("ratio ours/FastStream batch | each", f"{x['ours_batch_vs_faststream_batch']:.2f}x | {x['ours_each_vs_faststream_each']:.2f}x", "", ""),
    ]  # fmt: skip
    return render(("consumer (same stream, own group)", "entries/s", "CPU us/entry", "processed"), rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10k events")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 10_000
    results = asyncio.run(run(args.events))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "groups.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'groups.json'}")


if __name__ == "__main__":
    main()
