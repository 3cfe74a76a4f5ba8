"""The worker at the pace real models stream (issue 14, item 2), for ``bench/worker_bench.py``.

Tasks stream ``[tokens:N] [slow:MS]`` from the scripted model: one token per wake-up, 1000 /
MS tokens/s each (20-50/s in production), so no batch forms in the writer. Measured: the
CPU of the worker's process per event appended, beside the bare ``TaskStore.writer``
appending the same events at the same pace for as many tasks (tasks staggered over one
token interval in both). Target (issue 14): <= 150 µs of worker CPU per event.

Run: ``python -m bench.worker_pace [--tasks 20,50] [--rounds 3] [--tokens 150] [--slow-ms 30] [--quick]``
(each round runs every task count; 50 is a worker full at its default ``max_jobs``)
(``python -m bench worker`` runs it after ``worker_bench``). It lives beside
``worker_bench.py`` and uses its helpers. Writes ``bench/results/worker_pace.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis

from agentstream.streams import StreamsSettings, TaskStore
from agentstream.worker.config import WorkerConfig
from agentstream.worker.enqueue import enqueue_task
from bench import procs, profile, provenance, spread
from bench import worker_common as wc

RESULTS = Path(__file__).parent / "results"
TARGET_CPU_US_PER_EVENT = 150.0


async def warm_up(redis: Any, settings: StreamsSettings, pool: ArqRedis, tasks: int) -> None:
    """Short tasks first, as many as the run's: imports, the model's first reply, and the
    connections (HTTP to the model, Redis) a worker running this many tasks keeps."""
    ids = await wc.create_tasks(TaskStore(redis, settings), tasks, wc.prompt(5))
    after = await wc.feed_position(redis, settings)
    for task_id in ids:
        await enqueue_task(pool, task_id)
    await wc.wait_ended(redis, settings, ids, after, timeout_s=60)


async def worker_at_pace(
    redis: Any,
    settings: StreamsSettings,
    pool: ArqRedis,
    model_pid: int,
    tasks: int,
    tokens: int,
    slow_ms: int,
) -> dict[str, Any]:
    """The arq worker running in this process: CPU from the first enqueue to the last ``ended``."""
    store = TaskStore(redis, settings)
    ids = await wc.create_tasks(store, tasks, wc.prompt(tokens, slow_ms))
    after = await wc.feed_position(redis, settings)
    load0 = os.getloadavg()[0]
    redis0 = await procs.redis_cpu_s(redis)
    cpu0, model0, t0 = time.process_time(), procs.process_cpu_s(model_pid), time.perf_counter()
    wake0 = wc.wakeups()
    for task_id in ids:
        await enqueue_task(pool, task_id)
        await asyncio.sleep(slow_ms / 1000 / tasks)  # spread the tasks over one token interval
    t1, cpu1, stuck = await wc.wait_ended(
        redis, settings, ids, after, timeout_s=tokens * slow_ms / 1000 * 3 + 60
    )
    wakes = wc.wakeups() - wake0
    redis_cpu = await procs.redis_cpu_s(redis) - redis0
    events, statuses = await wc.appended_events(redis, settings, ids)
    wall = t1 - t0
    return {
        "wakeups_per_event": wakes / events,
        "tasks": tasks, "tokens_per_task": tokens, "tokens_per_s_per_task": 1000 / slow_ms, "events": events,
        "statuses": statuses, "never_ended": stuck, "wall_s": wall, "per_s": events / wall,
        "cpu_us_per_item": (cpu1 - cpu0) / events * 1e6, "cores": (cpu1 - cpu0) / wall,
        "model_server_cpu_us_per_event": (procs.process_cpu_s(model_pid) - model0) / events * 1e6,
        "redis_cpu_us_per_event": redis_cpu / events * 1e6,
        "loadavg_1m_before": load0,
    }  # fmt: skip


async def writer_at_pace(
    redis: Any, settings: StreamsSettings, tasks: int, tokens: int, slow_ms: int
) -> dict[str, Any]:
    """The bare writer appending the same events at the same pace, in this process."""
    store = TaskStore(redis, settings)
    ids = await wc.create_tasks(store, tasks, wc.prompt(tokens, slow_ms))
    attempts = [await store.open_attempt(task_id) for task_id in ids]
    period = slow_ms / 1000

    load0, redis0 = os.getloadavg()[0], await procs.redis_cpu_s(redis)
    cpu0, t0, wake0 = time.process_time(), time.perf_counter(), wc.wakeups()
    runs = (wc.paced_writer(store, a, i / tasks, tokens, slow_ms) for i, a in enumerate(attempts))
    await asyncio.wait_for(asyncio.gather(*runs), tokens * period * 3 + 60)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    wakes = wc.wakeups() - wake0
    redis_cpu = await procs.redis_cpu_s(redis) - redis0
    events, statuses = await wc.appended_events(redis, settings, ids)
    return {"tasks": tasks, "events": events, "statuses": statuses, "wall_s": wall, "per_s": events / wall,
            "wakeups_per_event": wakes / events,
            "cpu_us_per_item": cpu / events * 1e6, "cores": cpu / wall, "loadavg_1m_before": load0,
            "redis_cpu_us_per_event": redis_cpu / events * 1e6}  # fmt: skip


def summary(worker: dict[str, Any], writer: dict[str, Any]) -> dict[str, Any]:
    return {
        "worker": worker, "writer": writer, "target_worker_cpu_us_per_event_max": TARGET_CPU_US_PER_EVENT,
        "ratio_cpu": worker["cpu_us_per_item"] / writer["cpu_us_per_item"],
        "met": worker["cpu_us_per_item"] <= TARGET_CPU_US_PER_EVENT and not worker["never_ended"],
    }  # fmt: skip


async def run(tasks: int, tokens: int, slow_ms: int, with_profile: bool = False) -> dict[str, Any]:
    sampled: dict[str, Any] = {}
    # The queue polled as deployed (WorkerConfig's default, 0.5 s) rather than the
    # throughput run's 0.05 s: arq's polls are the worker's CPU at pace too (three paired
    # runs at 50 tasks could not tell the two apart: 281-324 against 304-339 us/event).
    async with wc.worker_stack(tasks, poll_delay_s=WorkerConfig().poll_delay_s) as stack:
        redis, settings, pool, model_pid, worker_running = stack
        async with worker_running:
            await warm_up(redis, settings, pool, tasks)
            sampling = await profile.start(os.getpid()) if with_profile else None
            worker = await worker_at_pace(redis, settings, pool, model_pid, tasks, tokens, slow_ms)
            if sampling is not None:
                sampled["profile"] = await profile.finish(sampling)
        writer = await writer_at_pace(redis, settings, tasks, tokens, slow_ms)
    return summary(worker, writer) | sampled | {
        "params": {"tasks": tasks, "tokens": tokens, "slow_ms": slow_ms}, "loadavg": os.getloadavg(),
        "meaning": "cpu_us_per_item: CPU of the process running the arq worker (worker column) or the bare "
        "writer (writer column) from the first enqueue / append to the last `ended`, per event appended "
        "(status, tokens, usage, result, completed); the scripted model runs in its own process",
    }  # fmt: skip


def sizes_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task count, over the rounds: the worker's and the writer's CPU per event and
    their ratio, paired within each round; the target is judged on the medians."""
    out: dict[str, Any] = {}
    for tasks in sorted({r["params"]["tasks"] for r in runs}):
        mine = [r for r in runs if r["params"]["tasks"] == tasks]
        worker = spread([r["worker"]["cpu_us_per_item"] for r in mine])
        out[str(tasks)] = {
            "worker_cpu_us_per_event": worker,
            "writer_cpu_us_per_event": spread([r["writer"]["cpu_us_per_item"] for r in mine]),
            "ratio_cpu": spread([r["ratio_cpu"] for r in mine]),
            "worker_per_s": spread([r["worker"]["per_s"] for r in mine]),
            "writer_per_s": spread([r["writer"]["per_s"] for r in mine]),
            "never_ended": sum(len(r["worker"]["never_ended"]) for r in mine),
            "met": worker["median"] <= TARGET_CPU_US_PER_EVENT and not any(r["worker"]["never_ended"] for r in mine),
        }  # fmt: skip
    return out


def table(r: dict[str, Any]) -> str:
    w, b, p = r["worker"], r["writer"], r["params"]
    return "\n".join([
        f"{p['tasks']} tasks x {p['tokens']} tokens at {1000 / p['slow_ms']:.0f} tokens/s each (load average "
        f"{', '.join(f'{x:.2f}' for x in r['loadavg'])})",
        f"  bare writer  {b['cpu_us_per_item']:8.1f} us CPU/event  {b['per_s']:8,.0f} events/s  {b['cores']:.2f} cores"
        f"  {b['wakeups_per_event']:.2f} wake-ups/event",
        f"  worker       {w['cpu_us_per_item']:8.1f} us CPU/event  {w['per_s']:8,.0f} events/s  {w['cores']:.2f} cores"
        f"  {w['wakeups_per_event']:.2f} wake-ups/event"
        f"  (model server {w['model_server_cpu_us_per_event']:.1f} us/event)",
        f"  ratio {r['ratio_cpu']:.2f}x; target worker <= {TARGET_CPU_US_PER_EVENT:g} us/event: "
        f"{'met' if r['met'] else 'missed'}; never ended: {len(w['never_ended'])}",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tasks",
        default="20,50",
        help="task counts, comma-separated (50: a worker full at its default max_jobs)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the task counts interleaved in each")
    parser.add_argument("--tokens", type=int, default=150, help="tokens per task")
    parser.add_argument("--slow-ms", type=int, default=30, help="model delay per token (30 ms: 33 tokens/s)")
    parser.add_argument("--profile", action="store_true", help="py-spy this process during the worker run")
    parser.add_argument("--quick", action="store_true", help="5 tasks x 40 tokens")
    args = parser.parse_args(argv)
    if not 20 <= args.slow_ms <= 50:
        print(f"note: {1000 / args.slow_ms:.0f} tokens/s is outside the 20-50/s of real models")
    if args.quick:
        args.tasks, args.tokens, args.rounds = "5", 40, 1
    counts = [int(n) for n in str(args.tasks).split(",")]
    runs = []
    for round_no in range(args.rounds):
        for tasks in counts:
            # py-spy samples the largest run of the last round only (its own CPU competes)
            sample = args.profile and round_no == args.rounds - 1 and tasks == max(counts)
            runs.append(wc.run_on_worker_loop(run(tasks, args.tokens, args.slow_ms, sample)))
            print(table(runs[-1]))
    # The top level is the largest run of the last round (its profile); ``sizes`` has the
    # spread over every round of each task count.
    results = runs[-1] | {"sizes": sizes_summary(runs), "rounds": args.rounds, "runs": runs}
    results |= provenance(args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "worker_pace.json").write_text(json.dumps(results, indent=2))
    for tasks, size in results["sizes"].items():
        print(f"{tasks} tasks over {args.rounds} rounds: worker {size['worker_cpu_us_per_event']['median']:.1f} "
              f"us/event, writer {size['writer_cpu_us_per_event']['median']:.1f}, ratio "
              f"{size['ratio_cpu']['median']:.2f}x ({size['ratio_cpu']['min']:.2f}-{size['ratio_cpu']['max']:.2f})")  # fmt: skip
    print(f"\nwritten: {RESULTS / 'worker_pace.json'}")


if __name__ == "__main__":
    main()
