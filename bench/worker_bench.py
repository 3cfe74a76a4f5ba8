"""What one worker process sustains, side by side with the bare streams writer (issue 3).

Run: ``python -m bench.worker_bench [--tasks 200] [--tokens 200] [--rounds 3] [--profile] [--quick]``. Starts its own
redis-server, the scripted model as a separate process (``python -m worker.scripted_llm``,
so the CPU of this process is the worker's own), and an arq worker in this process built
by ``worker.settings.create_worker``. Tasks are created and enqueued the way the API does.

Two measurements, each against the bare writer in the same run:

- **throughput**: ``--tasks`` concurrent ``llm`` tasks of ``[tokens:N]`` each (no model
  delay); events appended by the worker / wall time from the first enqueue to the last
  ``ended`` entry of the task feed, and this process's CPU per event. The baseline is
  ``TaskStore.writer`` appending the same events for the same number of concurrent tasks:
  the ceiling a worker can reach.
- **latency**: a paced run (``[slow:MS]``); each token event's ``timestamp`` (set by the
  agent when it produced the token) against the moment a live tail (``Reader`` +
  ``ReaderHub`` in a separate process) receives it; the baseline is the writer alone with
  the timestamp set by its caller at the same pace. "Worker adds" = difference of p99s.

Each round starts a fresh stack (Redis, model, worker) and measures all four in turn; the
figures are the median (min-max) over the rounds, the ratios paired within each round.
``--profile`` samples this process with py-spy over one more throughput run after the rounds.
Writes ``bench/results/worker.json``. The worker at the pace real models stream is
``bench/worker_pace.py`` (``python -m bench worker`` runs both); the worker, its model and
its tasks are set up by ``bench/worker_common.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from arq.connections import ArqRedis

from agentstream.streams import Reader, ReaderHub, StreamsSettings, TaskStore, create_redis
from agentstream.streams.codec import now_us
from agentstream.worker.enqueue import enqueue_task
from bench import machine, profile, provenance, spread
from bench.procs import process_cpu_s, read_line, redis_cpu_s, render, spawn, stop_child
from bench.streams_bench import percentiles
from bench.worker_common import (
    AGENT_ID,
    agent_events,
    appended_events,
    create_tasks,
    feed_position,
    paced_writer,
    prompt,
    run_on_worker_loop,
    wait_ended,
    worker_stack,
)

RESULTS = Path(__file__).parent / "results"
#: issue 14, item 2: against the bare writer at the same task count (one event per wake-up)
TARGET = {"throughput_ratio_min": 0.8, "cpu_ratio_max": 1.5, "worker_adds_p99_ms_max": 1.0}
#: what each figure of worker.json is
MEANING = {
    "throughput_worker": "one arq worker process (max_jobs = tasks) running `tasks` concurrent llm tasks of "
    "[tokens:N] against the scripted model (separate process, no delay). events = entries appended after "
    "`queued` (status, N tokens, usage, result, completed per task, counted from the dense seqs); per_s = "
    "events / wall time from the first enqueue to the last `ended` entry in the task feed; cpu_us_per_item = "
    "this process's CPU (the worker and the bench's feed loop) per event, less the CPU of the enqueues (the API's "
    "work in production), measured alone right after on a queue no worker reads; model_server/redis CPU per event "
    "are those processes' CPU over the same window",
    "throughput_worker_short": "the same tasks with [tokens:2], right after, on the same worker",
    "split": "the worker's CPU as a cost per task plus one per token event, solved from the two runs "
    "(per_task_share: the per-task part of the long run's CPU)",
    "throughput_writer_interleaved": "TaskStore.writer alone, same task count and events, each task yielding "
    "to the loop after each append (one event per wake-up, as a worker's tasks)",
    "throughput_writer_burst": "the same without yielding: every task appends all its events at once, so "
    "batches fill (the ceiling of the streams layer)",
    "latency_worker": "paced run: `lat_tasks` tasks of [tokens:N] [slow:MS]; per token event, the time a live "
    "tail (Reader + ReaderHub in a separate process) received it minus the event's `timestamp`, which the "
    "agent set when it produced the token (after the model client parsed the chunk). ms",
    "latency_writer": "the same tail measurement with the bare writer appending at the same pace, timestamp "
    "set by its caller just before append. ms",
    "worker_adds_p99_ms": "latency_worker.p99_ms - latency_writer.p99_ms: what the worker adds on top of the writer",
}


# --------------------------------------------------------------------------- throughput


async def worker_throughput(
    redis: Any,
    settings: StreamsSettings,
    pool: ArqRedis,
    model_pid: int,
    tasks: int,
    tokens: int,
    timeout_s: float = 60,
) -> dict[str, Any]:
    store = TaskStore(redis, settings)
    ids = await create_tasks(store, tasks, prompt(tokens))
    after = await feed_position(redis, settings)
    cpu0, model0, redis0 = time.process_time(), process_cpu_s(model_pid), await redis_cpu_s(redis)
    t0 = time.perf_counter()
    await asyncio.gather(*(enqueue_task(pool, task_id) for task_id in ids))
    t1, cpu1, stuck = await wait_ended(redis, settings, ids, after, timeout_s=timeout_s)
    model_cpu, redis_cpu = process_cpu_s(model_pid) - model0, await redis_cpu_s(redis) - redis0
    # In production the API enqueues; here this process does, within the window: its CPU is
    # measured alone (the same enqueues onto a queue no worker reads) and taken off.
    enqueue_cpu = await enqueue_cost(pool, tasks)
    cpu, wall = cpu1 - cpu0 - enqueue_cpu, t1 - t0
    events, statuses = await appended_events(redis, settings, ids)
    return {
        "tasks": tasks, "tokens_per_task": tokens, "events": events, "statuses": statuses,
        "never_ended": stuck, "wall_note": "wall ends at the last `ended` read; never_ended tasks are excluded"
        if stuck else "",
        "wall_s": wall, "per_s": events / wall, "cpu_us_per_item": cpu / events * 1e6,
        "enqueue_cpu_us_per_item_taken_off": enqueue_cpu / events * 1e6,
        "model_server_cpu_us_per_event": model_cpu / events * 1e6,
        "redis_cpu_us_per_event": redis_cpu / events * 1e6,
        "cpu_cores_used": {"worker": cpu / wall, "model_server": model_cpu / wall, "redis": redis_cpu / wall},
    }  # fmt: skip


async def enqueue_cost(pool: ArqRedis, tasks: int) -> float:
    """CPU seconds of ``tasks`` concurrent enqueues as the run makes them, onto a queue no
    worker reads (then dropped)."""
    queue = f"bench-scratch-{uuid.uuid4().hex[:8]}"
    ids = [f"scratch_{uuid.uuid4().hex[:20]}" for _ in range(tasks)]
    cpu0 = time.process_time()
    await asyncio.gather(*(enqueue_task(pool, task_id, queue_name=queue) for task_id in ids))
    cpu = time.process_time() - cpu0
    await pool.delete(queue, *(f"arq:job:{task_id}" for task_id in ids))
    return cpu


async def writer_throughput(
    redis: Any, settings: StreamsSettings, tasks: int, tokens: int, interleave: bool
) -> dict[str, Any]:
    """The bare writer appending the same events for ``tasks`` concurrent tasks.

    ``interleave``: each task yields to the loop after every event, as a worker's tasks do
    (one model chunk per wake-up); otherwise each task appends all at once (max batching).
    """
    store = TaskStore(redis, settings)
    ids = await create_tasks(store, tasks, prompt(tokens))
    attempts = [await store.open_attempt(task_id) for task_id in ids]
    template = agent_events(tokens)

    async def one(attempt: Any) -> None:
        async with store.writer(attempt) as out:
            for event in template:
                await out.append({**event, "timestamp": now_us(), "agent_id": AGENT_ID})
                if interleave:
                    await asyncio.sleep(0)
            await out.append(
                {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0}
            )

    cpu0, redis0, t0 = time.process_time(), await redis_cpu_s(redis), time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(a) for a in attempts)), 300)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    redis_cpu = await redis_cpu_s(redis) - redis0
    events, statuses = await appended_events(redis, settings, ids)
    return {"tasks": tasks, "events": events, "statuses": statuses, "wall_s": wall, "per_s": events / wall,
            "cpu_us_per_item": cpu / events * 1e6, "redis_cpu_us_per_event": redis_cpu / events * 1e6}  # fmt: skip


# --------------------------------------------------------------------------- latency


async def tail_child(url: str, prefix: str, timeout_s: float) -> None:
    """Child process: live-tail the task ids given on stdin (one JSON line); print
    ``ready`` once every tail is following, then one JSON line of latencies (ms) of token
    events: ``[receipt - timestamp, entry id ms - timestamp]`` per token event."""
    ids = json.loads(await asyncio.to_thread(sys.stdin.readline))
    settings = StreamsSettings(redis_url=url, prefix=prefix)
    redis = create_redis(settings)
    samples: list[tuple[float, float]] = []
    started: set[str] = set()
    async with ReaderHub(redis, settings) as hub:
        reader = Reader(redis, settings, hub)

        async def one(task_id: str) -> None:
            async for cursor, event in reader.tail(task_id, after="0"):
                if event["type"] == "token":
                    now = time.time()
                    produced = datetime.fromisoformat(event["timestamp"]).timestamp()
                    stored = int(cursor.split("-")[0]) / 1000  # Redis's clock at XADD, ms resolution
                    samples.append(((now - produced) * 1000, (stored - produced) * 1000))
                elif event["type"] == "queued":
                    started.add(task_id)

        tails = asyncio.gather(*(one(task_id) for task_id in ids))
        async with asyncio.timeout(10):
            while True:
                if len(started) >= len(ids):
                    break
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # the tails have caught up and subscribed to the hub
        print("ready", flush=True)
        await asyncio.wait_for(tails, timeout_s)
    await redis.aclose()
    print(json.dumps(samples), flush=True)


@contextlib.asynccontextmanager
async def tailing(url: str, prefix: str, ids: list[str]) -> AsyncIterator[asyncio.Future[list[list[float]]]]:
    """A tail child following ``ids``; yields a future of its latency samples."""
    code = f"import asyncio, bench.worker_bench as b; asyncio.run(b.tail_child({url!r}, {prefix!r}, 120))"
    proc = await spawn("-c", code)
    assert proc.stdin is not None
    try:
        proc.stdin.write((json.dumps(ids) + "\n").encode())
        await proc.stdin.drain()
        if await read_line(proc, 20) != "ready":
            raise RuntimeError("the tail child did not get ready")
        future: asyncio.Future[list[list[float]]] = asyncio.get_running_loop().create_future()
        yield future
        future.set_result(json.loads(await read_line(proc, 120)))
    finally:
        await stop_child(proc)


def latency_summary(samples: list[list[float]]) -> dict[str, Any]:
    """Token -> live tail percentiles, plus token -> Redis (entry id ms, so 1 ms resolution)."""
    return {
        "samples": len(samples),
        **percentiles([tail for tail, _ in samples]),
        "to_redis_ms_resolution": percentiles([stored for _, stored in samples]),
    }


async def worker_latency(
    redis: Any, settings: StreamsSettings, pool: ArqRedis, tasks: int, tokens: int, slow_ms: int
) -> dict[str, Any]:
    store = TaskStore(redis, settings)
    ids = await create_tasks(store, tasks, prompt(tokens, slow_ms))
    async with tailing(settings.redis_url, settings.prefix, ids) as samples:
        for task_id in ids:
            await enqueue_task(pool, task_id)
            await asyncio.sleep(slow_ms / 1000 / tasks)  # spread the tasks over one token interval
    return latency_summary(samples.result())


async def writer_latency(
    redis: Any, settings: StreamsSettings, tasks: int, tokens: int, slow_ms: int
) -> dict[str, Any]:
    store = TaskStore(redis, settings)
    ids = await create_tasks(store, tasks, prompt(tokens, slow_ms))
    attempts = [await store.open_attempt(task_id) for task_id in ids]

    async with tailing(settings.redis_url, settings.prefix, ids) as samples:
        runs = (paced_writer(store, a, i / tasks, tokens, slow_ms) for i, a in enumerate(attempts))
        await asyncio.wait_for(asyncio.gather(*runs), 120)
    return latency_summary(samples.result())


# --------------------------------------------------------------------------- run


async def run(tasks: int, tokens: int, lat_tasks: int, lat_tokens: int, slow_ms: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with worker_stack(max(tasks, lat_tasks)) as (redis, settings, pool, model_pid, worker):
        async with worker:
            # warm-up at the run's concurrency: imports, the model's first reply, and the
            # connections (HTTP to the model, Redis) a worker running this many tasks keeps
            await worker_throughput(redis, settings, pool, model_pid, tasks, 2)
            results["throughput_worker"] = await worker_throughput(
                redis, settings, pool, model_pid, tasks, tokens
            )
            # the same tasks with 2 tokens each: what a task costs apart from its tokens
            results["throughput_worker_short"] = await worker_throughput(
                redis, settings, pool, model_pid, tasks, 2
            )
            results["latency_worker"] = await worker_latency(
                redis, settings, pool, lat_tasks, lat_tokens, slow_ms
            )
        results["throughput_writer_interleaved"] = await writer_throughput(
            redis, settings, tasks, tokens, True
        )
        results["throughput_writer_burst"] = await writer_throughput(redis, settings, tasks, tokens, False)
        results["latency_writer"] = await writer_latency(redis, settings, lat_tasks, lat_tokens, slow_ms)
    tw, wi, wb = (
        results["throughput_worker"],
        results["throughput_writer_interleaved"],
        results["throughput_writer_burst"],
    )
    lw, lb = results["latency_worker"], results["latency_writer"]
    results["ratios"] = {
        "worker_vs_writer_interleaved_throughput": tw["per_s"] / wi["per_s"],
        "worker_vs_writer_burst_throughput": tw["per_s"] / wb["per_s"],
        "worker_vs_writer_interleaved_cpu": tw["cpu_us_per_item"] / wi["cpu_us_per_item"],
    }
    results["split"] = cost_split(tw, results["throughput_worker_short"])
    results["worker_adds_p99_ms"] = lw["p99_ms"] - lb["p99_ms"]
    results["worker_adds_p50_ms"] = lw["p50_ms"] - lb["p50_ms"]
    results["target"] = TARGET
    results["meaning"] = MEANING
    results["params"] = {
        "tasks": tasks,
        "tokens": tokens,
        "lat_tasks": lat_tasks,
        "lat_tokens": lat_tokens,
        "slow_ms": slow_ms,
    }
    results["machine"] = machine()
    return results


def cost_split(long: dict[str, Any], short: dict[str, Any]) -> dict[str, float]:
    """The worker's CPU split into a cost per task and one per token, from two runs of the
    same tasks that differ only in their token count (events counted the same way)."""
    cpu_long = long["cpu_us_per_item"] * long["events"]
    cpu_short = short["cpu_us_per_item"] * short["events"]
    per_event = (cpu_long - cpu_short) / (long["events"] - short["events"])
    per_task = (cpu_short - per_event * short["events"]) / short["tasks"]
    return {
        "per_task_us": per_task,
        "per_token_event_us": per_event,
        "per_task_share": per_task * long["tasks"] / cpu_long,
    }


#: where the worker's samples go, by what is on their stack (first rule wins)
PROFILE_RULES: list[profile.Rule] = [
    ("event loop waiting for I/O", ("select (", "EpollSelector.select", "Runner.run"), ()),
    ("the bench's own feed reads, task creation and enqueues", (),
     ("wait_ended", "enqueue_cost", "appended_events", "enqueue_task", "create_tasks")),
    ("model request: SDK, from create to the response's headers", (),
     ("AsyncResponseContextManager.__aenter__", "ClientResponse.start", "ClientSession._request")),
    ("model body: received, read and parsed into deltas", (),
     ("OpenAIClient.stream_chat", "ResponseHandler.data_received")),
    ("flusher: batches sent to Redis", (), ("Flusher.",)),
    ("task set-up and end (lease, attempt, inbox, meta, ended)", (),
     ("run_task (worker", "AttemptRunner._run ", "AttemptRunner._finished", "Lease", "TaskInbox.", "BaseAgent.take_input")),
    ("agent and runner: an event per delta, appended", (),
     ("AttemptRunner.", "LLMAgent.", "ToolAgent.", "HybridAgent.", "BaseAgent.", "StreamWriter.append")),
    ("arq: claiming, running and finishing jobs", (), ("Worker.", "ResilientWorker.")),
    ("Redis client I/O whose caller is not on the sampled stack", (),
     ("AbstractConnection.", "_AsyncHiredisParser.", "Redis.", "Pipeline.", "Retry.", "BlockingConnectionPool.",
      "ConnectionPool.")),
]  # fmt: skip


async def profiled_throughput(tasks: int, tokens: int) -> dict[str, Any]:
    """py-spy samples of this process over one more throughput run, then one of the same
    tasks with 2 tokens each, after the measured rounds (the sampler's own CPU competes on
    this box, so no measured figure comes from it); each with its categories."""
    async with worker_stack(tasks) as (redis, settings, pool, model_pid, worker), worker:
        await worker_throughput(redis, settings, pool, model_pid, tasks, 2)
        sampling = await profile.start(os.getpid())
        await worker_throughput(redis, settings, pool, model_pid, tasks, tokens)
        out = await profile.finish(sampling, rules=PROFILE_RULES)
        sampling = await profile.start(os.getpid())
        for _ in range(3):  # 2-token tasks end fast: three runs for enough samples
            await worker_throughput(redis, settings, pool, model_pid, tasks, 2)
        short = await profile.finish(sampling, rules=PROFILE_RULES)
        return out | {"short_tasks_categories": short.get("categories", {})}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure over the rounds, the ratios paired within each round; the targets are
    judged on the medians."""
    pick = lambda f: spread([f(r) for r in runs])  # noqa: E731
    out = {
        "worker_per_s": pick(lambda r: r["throughput_worker"]["per_s"]),
        "writer_per_s": pick(lambda r: r["throughput_writer_interleaved"]["per_s"]),
        "writer_burst_per_s": pick(lambda r: r["throughput_writer_burst"]["per_s"]),
        "worker_cpu_us_per_event": pick(lambda r: r["throughput_worker"]["cpu_us_per_item"]),
        "writer_cpu_us_per_event": pick(lambda r: r["throughput_writer_interleaved"]["cpu_us_per_item"]),
        "model_server_cpu_us_per_event": pick(
            lambda r: r["throughput_worker"]["model_server_cpu_us_per_event"]
        ),
        "ratio_throughput": pick(lambda r: r["ratios"]["worker_vs_writer_interleaved_throughput"]),
        "ratio_cpu": pick(lambda r: r["ratios"]["worker_vs_writer_interleaved_cpu"]),
        "worker_p50_ms": pick(lambda r: r["latency_worker"]["p50_ms"]),
        "writer_p50_ms": pick(lambda r: r["latency_writer"]["p50_ms"]),
        "worker_p99_ms": pick(lambda r: r["latency_worker"]["p99_ms"]),
        "writer_p99_ms": pick(lambda r: r["latency_writer"]["p99_ms"]),
        "worker_to_redis_p50_ms": pick(lambda r: r["latency_worker"]["to_redis_ms_resolution"]["p50_ms"]),
        "writer_to_redis_p50_ms": pick(lambda r: r["latency_writer"]["to_redis_ms_resolution"]["p50_ms"]),
        "worker_to_redis_p99_ms": pick(lambda r: r["latency_worker"]["to_redis_ms_resolution"]["p99_ms"]),
        "writer_to_redis_p99_ms": pick(lambda r: r["latency_writer"]["to_redis_ms_resolution"]["p99_ms"]),
        "adds_p50_ms": pick(lambda r: r["worker_adds_p50_ms"]),
        "adds_p99_ms": pick(lambda r: r["worker_adds_p99_ms"]),
        "per_task_us": pick(lambda r: r["split"]["per_task_us"]),
        "per_token_event_us": pick(lambda r: r["split"]["per_token_event_us"]),
        "per_task_share": pick(lambda r: r["split"]["per_task_share"]),
        "never_ended": sum(len(r["throughput_worker"]["never_ended"]) for r in runs),
    }
    out["met"] = {
        "throughput": out["ratio_throughput"]["median"] >= TARGET["throughput_ratio_min"],
        "cpu": out["ratio_cpu"]["median"] <= TARGET["cpu_ratio_max"],
        "latency": out["adds_p99_ms"]["median"] <= TARGET["worker_adds_p99_ms_max"],
        "ended": not out["never_ended"],
    }
    return out


def table(results: dict[str, Any]) -> str:
    tw, wi, wb = (
        results["throughput_worker"],
        results["throughput_writer_interleaved"],
        results["throughput_writer_burst"],
    )
    lw, lb, r = results["latency_worker"], results["latency_writer"], results["ratios"]
    rows = [
        (f"events/s, {results['params']['tasks']} concurrent tasks", f"{wi['per_s']:,.0f} (burst {wb['per_s']:,.0f})", f"{tw['per_s']:,.0f}",
         f"{r['worker_vs_writer_interleaved_throughput']:.2f}x ({r['worker_vs_writer_burst_throughput']:.2f}x)", ""),
        ("client CPU us/event", f"{wi['cpu_us_per_item']:.1f} (burst {wb['cpu_us_per_item']:.1f})",
         f"{tw['cpu_us_per_item']:.1f}", f"{r['worker_vs_writer_interleaved_cpu']:.2f}x", ""),
        ("model server CPU us/event", "", f"{tw['model_server_cpu_us_per_event']:.1f}", "", ""),
        ("redis CPU us/event", f"{wi['redis_cpu_us_per_event']:.1f}", f"{tw['redis_cpu_us_per_event']:.1f}", "", ""),
        ("token->tail latency p50 ms", f"{lb['p50_ms']:.3f}", f"{lw['p50_ms']:.3f}", f"+{results['worker_adds_p50_ms']:.3f}", ""),
        ("token->tail latency p99 ms", f"{lb['p99_ms']:.3f}", f"{lw['p99_ms']:.3f}", f"+{results['worker_adds_p99_ms']:.3f}", "<= +1 ms"),
        ("token->tail latency max ms", f"{lb['max_ms']:.3f}", f"{lw['max_ms']:.3f}", "", ""),
    ]  # fmt: skip
    if tw["never_ended"]:
        rows.append(
            ("INCOMPLETE: tasks never ended", "", f"{len(tw['never_ended'])} of {tw['tasks']}", "", "0")
        )
    head = ("measure", "bare writer", "worker", "ratio / adds", "target")
    return render(head, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=200, help="concurrent tasks of the throughput run")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per task of the throughput run")
    parser.add_argument("--lat-tasks", type=int, default=20)
    parser.add_argument("--lat-tokens", type=int, default=100)
    parser.add_argument("--slow-ms", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="50 tasks x 50 tokens, latency 10 x 50")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each a fresh stack")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy this process over one more throughput run"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.tokens, args.lat_tasks, args.lat_tokens, args.rounds = 50, 50, 10, 50, 1
    runs = []
    for _ in range(args.rounds):
        runs.append(
            run_on_worker_loop(run(args.tasks, args.tokens, args.lat_tasks, args.lat_tokens, args.slow_ms))
        )
        print(table(runs[-1]))
    # The top level is the last round; ``summary`` has the spread over the rounds.
    results = runs[-1] | {"summary": summary(runs), "rounds": args.rounds, "runs": runs}
    if args.profile:
        results["profile"] = run_on_worker_loop(profiled_throughput(args.tasks, args.tokens))
    results |= provenance(args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "worker.json").write_text(json.dumps(results, indent=2))
    sm = results["summary"]
    print(f"over {args.rounds} round(s): throughput {sm['ratio_throughput']['median']:.2f}x of the writer "
          f"({sm['ratio_throughput']['min']:.2f}-{sm['ratio_throughput']['max']:.2f}), CPU "
          f"{sm['ratio_cpu']['median']:.2f}x, p99 adds {sm['adds_p99_ms']['median']:+.3f} ms")  # fmt: skip
    print(f"\nwritten: {RESULTS / 'worker.json'}")


if __name__ == "__main__":
    main()
