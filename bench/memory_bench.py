"""Redis memory over finished tasks with retention (issue 5).

Run: ``python -m bench.memory_bench [--tasks 1000] [--events 100] [--retention-s 2] [--cycles 2]``.
Starts its own redis-server (so INFO memory is this bench's alone; ``used_memory`` is read
less ``mem_clients_normal``, the connections' buffers). Per cycle: ``--tasks``
tasks created through ``TaskStore``, ``--events`` events written to each through the
fenced writer (status, tokens, result, then ``completed``), finished with
``retention_s``; ``used_memory`` (after ``MEMORY PURGE``) is read before, once every
task has finished, and once Redis has expired the finished tasks' keys. The task feed
(``<prefix>:tasks``, one ``created`` and one ``ended`` entry per task) does not expire:
it is capped by ``feed_maxlen`` instead, so it is reported on its own.

Raw counterpart in the same run: the same number of entries XADDed by redis-py to one
raw stream per task (same field encoding, no meta hash, no feed), EXPIREd by the client.

Writes ``bench/results/memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import uuid
from pathlib import Path
from typing import Any

from agentstream.streams import StreamsSettings, TaskStore, create_redis
from agentstream.streams.codec import encode
from tests.redis_server import redis_node

RESULTS = Path(__file__).parent / "results"
PREFIX = "mbench"


async def used_memory(redis: Any) -> int:
    """``used_memory`` less the clients' buffers (``mem_clients_normal``): how many
    connections the bench's pool holds open is not what the data costs."""
    await redis.execute_command("MEMORY", "PURGE")
    info = await redis.info("memory")
    return int(info["used_memory"]) - int(info["mem_clients_normal"])


def events_of(n: int) -> list[dict[str, Any]]:
    """What an llm task writes: started, tokens, result (``completed`` is added after)."""
    tokens = max(0, n - 3)
    out: list[dict[str, Any]] = [{"type": "status", "status": "started"}]
    out += [{"type": "token", "content": f"w{i % 1000:04d}"} for i in range(tokens)]
    out.append({"type": "result", "success": True, "content": "w0000 ... done"})
    return out


async def wait_expired(redis: Any, pattern: str, timeout_s: float) -> tuple[float, int]:
    """Poll until no key matches ``pattern`` (Redis expires on its own clock); returns the
    seconds waited and the keys left at the deadline."""
    t0 = time.perf_counter()
    left = 0
    async with asyncio.timeout(timeout_s + 5):
        while time.perf_counter() - t0 < timeout_s:
            left = 0
            async for _ in redis.scan_iter(match=pattern, count=1000):
                left += 1
            if left == 0:
                break
            await asyncio.sleep(0.25)
    return time.perf_counter() - t0, left


async def ours_cycle(redis: Any, settings: StreamsSettings, tasks: int, events: int) -> dict[str, Any]:
    store = TaskStore(redis, settings)
    template = events_of(events - 1)  # + completed = events per task (queued comes on top)
    sem = asyncio.Semaphore(32)

    async def one(task_id: str) -> None:
        async with sem:
            await store.create_task(task_id, owner="bench", agent="llm", input="memory bench")
            attempt = await store.open_attempt(task_id)
            async with store.writer(attempt) as out:
                for event in template:
                    out.append_nowait(event)
                out.append_nowait(
                    {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0}
                )

    ids = [f"mb_{uuid.uuid4().hex[:16]}" for _ in range(tasks)]
    before = await used_memory(redis)
    feed_before = int(await redis.memory_usage(settings.keys.tasks, samples=0) or 0)
    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(t) for t in ids)), 300)
    write_s = time.perf_counter() - t0
    finished = await used_memory(redis)
    feed_finished = int(await redis.memory_usage(settings.keys.tasks, samples=0) or 0)
    pipe = redis.pipeline(transaction=False)
    for task_id in ids[:20]:
        pipe.ttl(settings.keys.events(task_id))
    ttls = await pipe.execute()
    pipe = redis.pipeline(transaction=False)
    for task_id in ids:
        pipe.xlen(settings.keys.events(task_id))
    stored = sum(int(x) for x in await pipe.execute())
    waited, left = await wait_expired(redis, f"{settings.prefix}:{{*", settings.retention_s + 30)
    expired = await used_memory(redis)
    feed_expired = int(await redis.memory_usage(settings.keys.tasks, samples=0) or 0)
    return {
        "tasks": tasks, "entries_stored": stored, "events_per_task": stored / tasks,
        "used_memory_before": before, "used_memory_finished": finished, "used_memory_after_expiry": expired,
        "growth_finished_bytes": finished - before, "bytes_per_entry_finished": (finished - before) / stored,
        "bytes_per_task_finished": (finished - before) / tasks,
        "residual_after_expiry_bytes": expired - before,
        "feed_bytes": {"before": feed_before, "finished": feed_finished, "after_expiry": feed_expired},
        "residual_excluding_feed_bytes": (expired - before) - (feed_expired - feed_before),
        "ttl_sample_s": sorted({int(t) for t in ttls}), "expiry_wait_s": waited, "keys_left": left,
        "write_s": write_s,
    }  # fmt: skip


async def raw_cycle(redis: Any, settings: StreamsSettings, tasks: int, events: int) -> dict[str, Any]:
    """The same entries by raw XADD, one stream per task, EXPIRE by the client."""
    template = [{"type": "queued", "agent": "llm", "input": "memory bench"}, *events_of(events - 1)]
    template.append({"type": "completed", "success": True, "status": "succeeded", "execution_time": 0})
    keys = [f"rawmem:{{{uuid.uuid4().hex[:16]}}}:events" for _ in range(tasks)]
    before = await used_memory(redis)
    for key in keys:
        pipe = redis.pipeline(transaction=False)
        for seq, event in enumerate(template, 1):
            enc = encode(event)
            fields = {"t": enc.type, "s": seq, "a": 1, "m": enc.ts_us, "g": enc.agent_id, "d": enc.payload}
            pipe.xadd(key, fields, maxlen=settings.maxlen, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()
    finished = await used_memory(redis)
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.xlen(key)
        pipe.expire(key, settings.retention_s)  # only now: none may expire before it is counted
    stored = sum(int(x) for x in (await pipe.execute())[::2])
    waited, left = await wait_expired(redis, "rawmem:*", settings.retention_s + 30)
    expired = await used_memory(redis)
    return {
        "tasks": tasks, "entries_stored": stored, "used_memory_before": before,
        "used_memory_finished": finished, "used_memory_after_expiry": expired,
        "growth_finished_bytes": finished - before, "bytes_per_entry_finished": (finished - before) / stored,
        "residual_after_expiry_bytes": expired - before, "expiry_wait_s": waited, "keys_left": left,
    }  # fmt: skip


async def run(tasks: int, events: int, retention_s: int, cycles: int) -> dict[str, Any]:
    with redis_node() as url:
        settings = StreamsSettings(redis_url=url, prefix=PREFIX, retention_s=retention_s)
        redis = create_redis(settings)
        try:
            # warm-up: scripts loaded, the feed stream exists; then the baseline
            await ours_cycle(redis, settings, 1, 10)
            baseline = await used_memory(redis)
            raw = await raw_cycle(redis, settings, tasks, events)
            ours = [await ours_cycle(redis, settings, tasks, events) for _ in range(cycles)]
            final = await used_memory(redis)
            info = await redis.info("server")
        finally:
            await redis.aclose()
    last = ours[-1]
    return {
        "baseline_used_memory": baseline, "final_used_memory": final,
        "final_minus_baseline_bytes": final - baseline,
        "feed_growth_bytes": last["feed_bytes"]["after_expiry"] - ours[0]["feed_bytes"]["before"],
        "raw": raw, "ours": ours,
        "ratio_bytes_per_entry_vs_raw": last["bytes_per_entry_finished"] / raw["bytes_per_entry_finished"],
        "returned_to_baseline": all(abs(c["residual_excluding_feed_bytes"]) <= 64 * 1024 for c in ours),
        "target": {"residual_excluding_feed_bytes_max": 64 * 1024,
                   "meaning": "after expiry, memory returns to the baseline (within 64 KiB) apart from the capped task feed"},
        "params": {"tasks": tasks, "events_per_task": events, "retention_s": retention_s, "cycles": cycles},
        "meaning": {
            "ours": "per cycle: tasks created through TaskStore, events written through the fenced writer, completed "
            "with retention_s; used_memory after MEMORY PURGE before / when all finished / after Redis expired "
            "every key of the cycle's tasks (events + meta)",
            "raw": "the same entries XADDed by redis-py, one stream per task, no meta hash / feed, EXPIRE by the client "
            "once every stream is written and counted",
            "feed_bytes": "MEMORY USAGE of the task feed, which keeps 2 entries per task up to feed_maxlen (not expired)",
        },
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "redis": info.get("redis_version")},
    }  # fmt: skip


def table(results: dict[str, Any]) -> str:
    from bench.procs import render

    raw, last = results["raw"], results["ours"][-1]
    rows = [
        (f"bytes per entry ({last['tasks']} tasks x {last['events_per_task']:.0f})", f"{raw['bytes_per_entry_finished']:.1f}",
         f"{last['bytes_per_entry_finished']:.1f}", f"{results['ratio_bytes_per_entry_vs_raw']:.2f}x", ""),
        ("growth with all finished (MB)", f"{raw['growth_finished_bytes'] / 1e6:.2f}", f"{last['growth_finished_bytes'] / 1e6:.2f}", "", ""),
        ("residual after expiry (KB)", f"{raw['residual_after_expiry_bytes'] / 1e3:.1f}",
         f"{last['residual_after_expiry_bytes'] / 1e3:.1f} (feed {(last['feed_bytes']['after_expiry'] - last['feed_bytes']['before']) / 1e3:.1f})", "", ""),
        ("residual excluding feed (KB)", "", ", ".join(f"{c['residual_excluding_feed_bytes'] / 1e3:.1f}" for c in results["ours"]), "", "<= 64 KB"),
        ("expiry observed after (s)", f"{raw['expiry_wait_s']:.1f}", ", ".join(f"{c['expiry_wait_s']:.1f}" for c in results["ours"]), "", ""),
    ]  # fmt: skip
    return render(("measure", "raw XADD", "agentstream", "ratio", "target"), rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100, help="events per task (queued aside)")
    parser.add_argument("--retention-s", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="200 tasks, 1 cycle")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.cycles = 200, 1
    results = asyncio.run(run(args.tasks, args.events, args.retention_s, args.cycles))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'memory.json'}")


if __name__ == "__main__":
    main()
