"""Latency matrix: token -> SSE client at 1, 100 and 500 concurrent tasks (issue 5).

Run: ``python -m bench.latency_bench [--seconds 8] [--quick]``. Starts its own redis-server
and ONE API process, and reuses ``api_bench.fan_out`` for every cell: a writer process appends
token events to every task at ``rate`` per task through ``TaskStore.writer`` — the "model
token" is the writer's ``time.time()`` just before ``append`` (the full worker + model path is
not driven here: 500 concurrent agent runs plus their clients do not fit 2 cores next to the
API; ``bench.worker_bench`` measures what the worker adds on top of the writer) — and a load
process holds ``consumers`` SSE connections per task (``GET /v1/tasks/{id}/events``).
Latency = receipt in the client process - that time, per token event and connection.

The raw column is the same shape on the same Redis in the same run: raw XADD at the same
rate, one blocking XREAD (redis-py, own connection) per consumer.

Cells are short (``--seconds`` of writing each) so the matrix fits the bench budget. The
token rate per task is part of each cell (``--plan``): 1 task at 100 tokens/s (enough samples
for a p99), 100 tasks at 10/s, 500 tasks at 2/s and at 10/s (1,000 and 5,000 appends/s).
Writes ``bench/results/latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.api_bench import api_process, fan_out
from bench.procs import render
from bench.sse_load import raise_nofile
from tests.redis_server import redis_node

RESULTS = Path(__file__).parent / "results"
TARGETS = {1: 5.0, 100: None, 500: 100.0}  # p99 ms


def cpu_times() -> tuple[float, float]:
    """Machine-wide (busy, total) jiffies from /proc/stat: is the whole box saturated?"""
    cols = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = cols[3] + cols[4]
    return sum(cols) - idle, sum(cols)


async def sample_cpu(samples: list[tuple[float, float, float]], stop: asyncio.Event) -> None:
    """Every 0.25 s: (time, busy, total) of the whole machine, until ``stop``."""
    while not stop.is_set():
        samples.append((time.perf_counter(), *cpu_times()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    samples.append((time.perf_counter(), *cpu_times()))


def busy_in_window(samples: list[tuple[float, float, float]], start: float, end: float) -> float | None:
    """Fraction of all cores busy between the samples closest to ``start`` and ``end``."""
    inside = [s for s in samples if start - 0.13 <= s[0] <= end + 0.13]
    if len(inside) < 2:
        return None
    (_, b0, t0), (_, b1, t1) = inside[0], inside[-1]
    return (b1 - b0) / max(1.0, t1 - t0)


def cell_summary(phase: dict[str, Any]) -> dict[str, Any]:
    load = phase["load"]
    return {
        "p50_ms": load.get("p50_ms"), "p99_ms": load.get("p99_ms"), "max_ms": load.get("max_ms"),
        "mean_ms": load.get("mean_ms"), "samples": load["token_latencies"],
        "expected": phase["expected_deliveries"], "clients": load["clients"], "completed": load["completed"],
        "errors": load["errors"], "delivered_per_s": phase["delivered_per_s"],
        "cpu_cores_used": phase["cpu_cores_used"],
    }  # fmt: skip


async def measured_phase(*args: Any) -> dict[str, Any]:
    """One ``fan_out`` phase (same arguments) with how busy the whole machine was meanwhile."""
    load0, samples, stop = os.getloadavg()[0], [], asyncio.Event()
    sampler = asyncio.create_task(sample_cpu(samples, stop))
    try:
        phase = await fan_out(*args)
    finally:
        stop.set()
        await sampler
    end = time.perf_counter()
    busy = busy_in_window(samples, end - phase["writer"]["wall_s"] - 0.2, end - 0.2)
    summary = cell_summary(phase)
    ours = sum(summary["cpu_cores_used"].values())
    summary["machine_busy_fraction"] = busy
    summary["other_processes_cores"] = None if busy is None else busy * (os.cpu_count() or 1) - ours
    summary["loadavg_1m_before"] = load0
    return summary


async def run(plan: list[tuple[int, float]], consumers: list[int], seconds: float) -> dict[str, Any]:
    raise_nofile()
    cells: list[dict[str, Any]] = []
    with redis_node("--maxclients", "20000") as url:
        redis = Redis.from_url(url, decode_responses=True)
        try:
            async with api_process(url) as (base, api_pid):
                for tasks, r in plan:
                    for per_task in consumers:
                        cell: dict[str, Any] = {"tasks": tasks, "consumers": per_task, "rate_per_task": r,
                                                "seconds": seconds, "target_p99_ms": TARGETS.get(tasks)}  # fmt: skip
                        for mode in ("raw", "sse"):
                            args = (mode, url, redis, base, api_pid, tasks, per_task, r, seconds)
                            cell[mode] = await measured_phase(*args)
                        p99 = cell["sse"]["p99_ms"]
                        cell["p99_ratio_vs_raw"] = (
                            p99 / cell["raw"]["p99_ms"] if p99 and cell["raw"]["p99_ms"] else None
                        )
                        target = cell["target_p99_ms"]
                        cell["met"] = None if target is None or p99 is None else p99 <= target
                        cells.append(cell)
                        print(f"  {tasks:>4} tasks x {per_task} consumers: raw p99 {cell['raw']['p99_ms']:.1f} ms, "
                              f"sse p99 {p99:.1f} ms", flush=True)  # fmt: skip
        finally:
            await redis.aclose()
    return {
        "cells": cells,
        "source": "writer-driven: token = TaskStore.writer append in a separate writer process (time.time() "
        "just before append); the worker + model path is not driven at 500 tasks here, see worker.json for what "
        "the worker adds",
        "meaning": __doc__,
        "params": {
            "seconds": seconds,
            "plan": [{"tasks": t, "rate_per_task": r} for t, r in plan],
            "consumers": consumers,
        },
        "evidence": "cpu_cores_used per process (API, Redis, writer, load clients; CPU s / writer wall) and "
        "machine_busy_fraction (whole box from /proc/stat, sampled every 0.25 s, over about the writing window) show "
        "when a cell is CPU-bound: 2 cores run the writer, the API, Redis and every client. other_processes_cores = "
        "busy cores - the bench processes' cores: this bench's orchestrator and anything else running on the machine",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }


def table(results: dict[str, Any]) -> str:
    rows = []
    for c in results["cells"]:
        raw, sse = c["raw"], c["sse"]
        f = lambda x, k: "-" if x.get(k) is None else f"{x[k]:.1f}"  # noqa: E731
        target = c["target_p99_ms"]
        rows.append((
            f"{c['tasks']} x {c['consumers']} @ {c['rate_per_task']:.0f}/s",
            f"{f(raw, 'p50_ms')} / {f(raw, 'p99_ms')} / {f(raw, 'max_ms')}",
            f"{f(sse, 'p50_ms')} / {f(sse, 'p99_ms')} / {f(sse, 'max_ms')}",
            "-" if c["p99_ratio_vs_raw"] is None else f"{c['p99_ratio_vs_raw']:.2f}x",
            f"{sse['completed']}/{sse['clients']}",
            "" if target is None else f"<= {target:.0f} ms: {'met' if c['met'] else 'MISSED'}",
        ))  # fmt: skip
    head = (
        "tasks x consumers",
        "raw p50/p99/max ms",
        "SSE p50/p99/max ms",
        "p99 ratio",
        "SSE done",
        "target p99",
    )
    return render(head, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--plan",
        default="1:100,100:10,500:2,500:10",
        help="comma-separated cells tasks:token events/s per task",
    )
    parser.add_argument("--consumers", default="1,3", help="comma-separated SSE consumers per task")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of writing per cell and column")
    parser.add_argument("--quick", action="store_true", help="1 and 100 tasks, 2 s per cell")
    args = parser.parse_args(argv)
    if args.quick:
        args.plan, args.seconds = "1:100,100:10", 2.0
    plan = [(int(t), float(r)) for t, r in (cell.split(":") for cell in args.plan.split(","))]
    consumers = [int(x) for x in args.consumers.split(",")]
    results = asyncio.run(run(plan, consumers, args.seconds))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latency.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'latency.json'}")


if __name__ == "__main__":
    main()
