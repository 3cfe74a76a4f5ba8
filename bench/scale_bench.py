"""The cost model checked in a run: 2 workers + 2 API processes on a 3-node Redis Cluster (issue 14, item 4).

Run: ``python -m bench.scale_bench [--tasks 40] [--tokens 100] [--slow-ms 40] [--readers 3] [--quick]``.
Starts a 3-master Redis Cluster for the streams (``tests/redis_server.py redis_cluster()``),
one plain redis-server for the arq queue (``AGENTSTREAM_QUEUE_URL``), the scripted model, two
worker processes (``python -m agentstream.worker``) and two API processes, all separate
processes. Tasks of ``[tokens:N] [slow:MS]`` are submitted over HTTP, alternating between the
APIs; each gets ``--readers`` SSE clients (from the start, alternating APIs) in a load process.

Reported: tasks and SSE streams completed, events appended, deliveries, wall time, and the
CPU per event of each kind of process (workers per event appended, APIs per delivery, each
Redis node per event appended), to set beside the cost model in ``bench/RESULTS.md``.
Writes ``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from agentstream.streams import StreamsSettings, create_redis
from agentstream.streams.keys import scoped_task_id
from bench import api_bench, provenance, sse_load
from bench.procs import process_cpu_s, read_line, spawn, stop_child
from bench.worker_common import scripted_model
from tests.redis_server import redis_cluster, redis_node

RESULTS = Path(__file__).parent / "results"
PREFIX = sse_load.PREFIX


async def readers_child(ports: list[int], ids: list[str], readers: int, timeout_s: float) -> None:
    """Child: ``readers`` SSE clients per task (alternating ``ports``), each to ``completed``;
    prints one JSON summary."""
    sse_load.raise_nofile()
    stats, go = sse_load.Stats(), asyncio.Event()
    deadline = asyncio.get_running_loop().time() + timeout_s

    async def one(port: int, task_id: str) -> None:
        try:
            await sse_load.sse_client(port, task_id, stats, go, deadline)
        except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            stats.error(exc)

    jobs = [one(ports[(i + r) % len(ports)], t) for i, t in enumerate(ids) for r in range(readers)]
    await asyncio.gather(*jobs)
    print(json.dumps({"clients": len(jobs), "completed": stats.completed, "frames": stats.frames,
                      "errors": stats.errors}), flush=True)  # fmt: skip


async def node_cpu_s(ports: list[int]) -> list[float]:
    out = []
    for port in ports:
        node = Redis(host="127.0.0.1", port=port)
        info = await node.info("cpu")
        await node.aclose()
        out.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
    return out


async def cluster_ports(url: str) -> list[int]:
    node = Redis.from_url(url, decode_responses=True)
    try:
        nodes = await node.execute_command("CLUSTER", "NODES")
    finally:
        await node.aclose()
    text = nodes if isinstance(nodes, str) else "\n".join(nodes)
    return sorted(int(line.split()[1].split("@")[0].rsplit(":", 1)[1]) for line in text.splitlines() if line)


@contextlib.asynccontextmanager
async def processes(env: dict[str, str], workers: int) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs = [await spawn("-m", "agentstream.worker", env=env) for _ in range(workers)]
    try:
        yield procs
    finally:
        for proc in procs:
            await stop_child(proc)


async def submit(bases: list[str], n: int, text: str) -> list[str]:
    ids = []
    for i in range(n):
        async with httpx.AsyncClient(base_url=bases[i % len(bases)], timeout=10) as http:
            reply = await http.post("/v1/tasks", json={"input": text, "agent": "llm"})
            reply.raise_for_status()
            ids.append(reply.json()["task_id"])
    return ids


async def run(tasks: int, tokens: int, slow_ms: int, readers: int) -> dict[str, Any]:
    sse_load.raise_nofile()
    with redis_cluster() as cluster_url, redis_node() as queue_url:
        ports = await cluster_ports(cluster_url)
        async with scripted_model() as (model_url, _):
            env = {"REDIS_URL": cluster_url, "AGENTSTREAM_REDIS_CLUSTER": "1", "AGENTSTREAM_QUEUE_URL": queue_url,
                   "AGENTSTREAM_PREFIX": PREFIX, "OPENAI_BASE_URL": model_url, "AGENTSTREAM_MAX_JOBS": str(tasks)}  # fmt: skip
            async with (
                processes(env, 2) as workers,
                api_bench.api_process(cluster_url, env) as (base_a, pid_a),
                api_bench.api_process(cluster_url, env) as (base_b, pid_b),
            ):
                bases, api_pids = [base_a, base_b], [pid_a, pid_b]
                cpu0 = [process_cpu_s(p.pid) for p in workers] + [process_cpu_s(p) for p in api_pids]
                redis0, t0 = await node_cpu_s(ports), time.perf_counter()
                ids = await submit(bases, tasks, f"[tokens:{tokens}] [slow:{slow_ms}] scale")
                api_ports = [int(b.rsplit(":", 1)[1]) for b in bases]
                timeout = tokens * slow_ms / 1000 * 4 + 120
                load = await spawn(
                    "-c",
                    f"import asyncio, bench.scale_bench as s; asyncio.run(s.readers_child({api_ports!r}, {ids!r}, {readers}, {timeout}))",
                )
                try:
                    summary = json.loads(await read_line(load, timeout + 30))
                finally:
                    await stop_child(load)
                wall = time.perf_counter() - t0
                cpu = [
                    b - a
                    for a, b in zip(
                        cpu0,
                        [process_cpu_s(p.pid) for p in workers] + [process_cpu_s(p) for p in api_pids],
                        strict=True,
                    )
                ]
                redis_cpu = [b - a for a, b in zip(redis0, await node_cpu_s(ports), strict=True)]
                events = await appended(cluster_url, ids)
    deliveries = summary["frames"]
    return {
        "params": {"tasks": tasks, "tokens": tokens, "slow_ms": slow_ms, "readers": readers, "workers": 2, "apis": 2, "shards": len(ports)},
        "load": summary, "events_appended": events, "wall_s": wall, "sse_frames_delivered": deliveries,
        "worker_cpu_us_per_event": sum(cpu[:2]) / events * 1e6, "worker_cpu_s": cpu[:2],
        "api_cpu_us_per_delivery": sum(cpu[2:]) / max(1, deliveries) * 1e6, "api_cpu_s": cpu[2:],
        "redis_cpu_us_per_event": sum(redis_cpu) / events * 1e6, "redis_cpu_s_by_node": redis_cpu,
        "meaning": "wall from the first submit to the last SSE stream completed; CPU deltas of each process over "
        "that window, summed over the processes of a kind; deliveries = SSE frames (all event types) received by "
        "the clients; events = stream entries appended (seq)",
    }  # fmt: skip


async def appended(cluster_url: str, ids: list[str]) -> int:
    """Stream entries of ``ids``, the API's public ids of the open-mode tenant (their dense
    seqs, ``queued`` included)."""
    settings = StreamsSettings(redis_url=cluster_url, prefix=PREFIX, cluster=True)
    redis = create_redis(settings)
    try:
        metas = [settings.keys.meta(scoped_task_id(api_bench.OWNER, t)) for t in ids]
        return sum([int(await redis.hget(meta, "seq") or 0) for meta in metas])
    finally:
        await redis.aclose()


def seconds(values: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def table(r: dict[str, Any]) -> str:
    p, load = r["params"], r["load"]
    return "\n".join([
        f"{p['tasks']} tasks x {p['tokens']} tokens at {1000 / p['slow_ms']:.0f}/s, {p['readers']} SSE readers each; "
        f"2 workers, 2 APIs, {p['shards']}-node cluster",
        f"  SSE streams completed {load['completed']}/{load['clients']}, errors {load['errors'] or 0}",
        f"  events appended {r['events_appended']:,}, frames delivered {r['sse_frames_delivered']:,}, wall {r['wall_s']:.1f} s",
        f"  workers CPU us/event {r['worker_cpu_us_per_event']:.0f} (CPU s each: {seconds(r['worker_cpu_s'])})",
        f"  APIs CPU us/delivery {r['api_cpu_us_per_delivery']:.1f} (CPU s each: {seconds(r['api_cpu_s'])})",
        f"  Redis CPU us/event {r['redis_cpu_us_per_event']:.1f} (CPU s by node: {seconds(r['redis_cpu_s_by_node'])})",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--slow-ms", type=int, default=40, help="model delay per token (40 ms: 25 tokens/s)")
    parser.add_argument("--readers", type=int, default=3, help="SSE readers per task")
    parser.add_argument("--quick", action="store_true", help="6 tasks x 30 tokens")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.tokens = 6, 30
    results = asyncio.run(run(args.tasks, args.tokens, args.slow_ms, args.readers)) | provenance(args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'scale.json'}")


if __name__ == "__main__":
    main()
