"""API fan-out CPU per delivered event against the lean floor, side by side (issue 14, item 1).

Run: ``python -m bench.fanout_bench [--clients 500,1000] [--seconds 15] [--rounds 3] [--quick]``. Starts
its own redis-server. For each client count N (``tasks = N / 25``, 25 clients per task, 25
token events/s per task, the shape of ``bench/api_bench.py``):

- **floor**: one process under uvloop holding N loopback connections (the readers are
  another process) writes one pre-encoded SSE frame per event to each of a task's 25
  transports, paced like the writer; CPU of that process / deliveries. Then the same with
  4 events joined per write (a tick every 4 event intervals).
- **API**: a fresh API process (uvicorn as ``agentstream api`` runs it: uvloop, the
  guarded httptools protocol of ``api.serving``) and N SSE clients that connect in one
  burst (all at once, as ``api_bench``) and follow their task while a
  writer process appends; the API's process CPU over the writing window / token events
  delivered, the delivery latency p99, the errors of the burst and RSS per connected client.

Ratio API / floor (one frame per write) is the figure issue 14 targets (<= 1.6x, and
<= 10 µs per delivery). With ``--profile`` py-spy samples the API process during the
writing window of the largest N (see ``bench/profile.py``). Writes ``bench/results/fanout.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import api_bench, profile, provenance, spread, sse_load
from bench.procs import read_line, rss_kb, spawn, stop_child
from tests.redis_server import redis_node

RESULTS = Path(__file__).parent / "results"
PER_TASK = 25
RATE = 25.0
TARGETS = {"api_cpu_us_per_delivery_max": 10.0, "ratio_vs_floor_max": 1.6, "p99_ms_max": 250.0,
           "rss_kb_per_client_max": 16.0, "burst_errors_max": 0}  # fmt: skip
#: a token frame as the API sends it (chunked framing aside)
FRAME = (
    b'id: 1764630000000-0\nevent: token\ndata: {"type":"token","content":" w17","agent_id":"llm-agent",'
    b'"timestamp":"2026-12-01T21:00:00.000000+00:00","seq":18}\n\n'
)


# --------------------------------------------------------------------------- floor children


async def floor_writer(tasks: int, per_task: int, rate: float, seconds: float, join: int) -> None:
    """Child: accept ``tasks * per_task`` connections, print the port first; then every
    ``join / rate`` s write ``join`` frames joined to each connection of every task (the
    tasks staggered over the interval); print a JSON summary."""
    loop = asyncio.get_running_loop()
    total, transports = tasks * per_task, []
    all_in = asyncio.Event()

    class Sink(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transports.append(transport)
            if len(transports) == total:
                all_in.set()

    server = await loop.create_server(Sink, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(all_in.wait(), 120)
    payload, period, ticks = FRAME * join, join / rate, max(1, int(seconds * rate / join))
    groups = [transports[i * per_task : (i + 1) * per_task] for i in range(tasks)]
    cpu0, start = time.process_time(), time.perf_counter()
    due = start
    for _ in range(ticks):
        for index, group in enumerate(groups):
            at = due + period * index / tasks
            if (delay := at - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            for transport in group:
                transport.write(payload)  # type: ignore[attr-defined]
        due += period
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - start
    for transport in transports:
        transport.close()
    server.close()
    events = ticks * join * tasks
    print(
        json.dumps({"events": events, "deliveries": events * per_task, "cpu_s": cpu, "wall_s": wall}),
        flush=True,
    )


async def floor_readers(port: int, total: int) -> None:
    """Child: open ``total`` connections to ``port`` and drain each until the server closes it."""
    sse_load.raise_nofile()
    sem = asyncio.Semaphore(100)

    async def one() -> int:
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        frames = 0
        while data := await reader.read(1 << 16):
            frames += data.count(b"\n\n")
        writer.close()
        return frames

    counts = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(total))), 600)
    print(json.dumps({"frames": sum(counts)}), flush=True)


def uvloop_run(coro: Any) -> None:
    import uvloop

    uvloop.run(coro)


async def floor(clients: int, seconds: float, join: int) -> dict[str, Any]:
    tasks = clients // PER_TASK
    code = f"import bench.fanout_bench as f; f.sse_load.raise_nofile(); f.uvloop_run(f.floor_writer({tasks}, {PER_TASK}, {RATE}, {seconds}, {join}))"
    writer = await spawn("-c", code)
    readers = None
    try:
        port = int(await read_line(writer, 30))
        code = f"import asyncio, bench.fanout_bench as f; asyncio.run(f.floor_readers({port}, {tasks * PER_TASK}))"
        readers = await spawn("-c", code)
        summary = json.loads(await read_line(writer, seconds + 180))
        frames = json.loads(await read_line(readers, 120))["frames"]
    finally:
        await stop_child(writer)
        if readers is not None:
            await stop_child(readers)
    return {**summary, "join": join, "frames_read": frames,
            "cpu_us_per_delivery": summary["cpu_s"] / summary["deliveries"] * 1e6}  # fmt: skip


# --------------------------------------------------------------------------- API

#: the API as ``agentstream api`` serves it (``api.serving.uvicorn_options``: the guarded
#: httptools protocol, which also keeps a live client leaner than uvicorn's own)
API_CODE = (
    "import uvicorn; from agentstream.api.app import create_app; from agentstream.api.settings import ApiSettings; "
    "from agentstream.api.serving import uvicorn_options; s = ApiSettings.from_env(); "
    "uvicorn.run(create_app(s), **uvicorn_options(s), host='127.0.0.1', port={port}, log_level='warning', "
    "timeout_graceful_shutdown=2)"
)


def api_process(url: str) -> contextlib.AbstractAsyncContextManager[tuple[str, int]]:
    """``api_bench.api_process`` with the deployed protocol: (base URL, pid) once healthy."""
    return api_bench.api_process(url, code=API_CODE)


async def api_run(url: str, redis: Redis, clients: int, seconds: float, with_profile: bool) -> dict[str, Any]:
    tasks = clients // PER_TASK
    async with api_process(url) as (base, api_pid):
        idle_kb = rss_kb(api_pid)
        sampling: list[profile.Sampling] = []

        async def at_go() -> None:  # the profile covers the writing window only
            sampling.append(await profile.start(api_pid))

        go = at_go if with_profile else None
        result = await api_bench.fan_out("sse", url, redis, base, api_pid, tasks, PER_TASK, RATE, seconds, go)
        after = await api_bench.metrics(base)
        result["api_metrics_after"] = {k: v for k, v in after.items() if k.startswith("agentstream_sse")}
        connected_kb = result["api_rss_kb"]["before_run_clients_connected"]
        result["api_rss_kb"]["idle"] = idle_kb
        result["rss_kb_per_client"] = (connected_kb - idle_kb) / clients
        if sampling:
            result["profile"] = await profile.finish(sampling[0])
    load = result["load"]
    return {
        "clients": clients, "tasks": tasks, "completed": load["completed"], "connected": load["connected"],
        "burst_errors": sum(load["errors"].values()), "errors": load["errors"], "p50_ms": load.get("p50_ms"),
        "p99_ms": load.get("p99_ms"), "cpu_us_per_delivery": result["api_cpu_us_per_delivery"],
        "deliveries": result["token_events_delivered"], "expected": result["expected_deliveries"],
        "rss_kb_per_client": result["rss_kb_per_client"], "detail": result,
    }  # fmt: skip


async def one_cell(url: str, redis: Redis, n: int, seconds: float, with_profile: bool) -> dict[str, Any]:
    """Floor (1 frame a write), API, floor (4 joined) for ``n`` clients, one after the other."""
    cell: dict[str, Any] = {"clients": n, "loadavg_before": os.getloadavg()}
    cell["floor_1"] = await floor(n, seconds, 1)
    cell["api"] = await api_run(url, redis, n, seconds, with_profile)
    cell["floor_4"] = await floor(n, seconds, 4)
    api_us = cell["api"]["cpu_us_per_delivery"]
    cell["ratio_api_vs_floor"] = api_us / cell["floor_1"]["cpu_us_per_delivery"]
    cell["ratio_api_vs_floor_4"] = api_us / cell["floor_4"]["cpu_us_per_delivery"]
    cell["loadavg_after"] = os.getloadavg()
    return cell


def summarise(cells: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Median (min-max) over the rounds of ``n`` clients."""
    mine = [c for c in cells if c["clients"] == n]
    return {
        "clients": n, "rounds": len(mine),
        "floor_1_us": spread([c["floor_1"]["cpu_us_per_delivery"] for c in mine]),
        "floor_4_us": spread([c["floor_4"]["cpu_us_per_delivery"] for c in mine]),
        "api_us": spread([c["api"]["cpu_us_per_delivery"] for c in mine]),
        "ratio": spread([c["ratio_api_vs_floor"] for c in mine]),
        "ratio_4": spread([c["ratio_api_vs_floor_4"] for c in mine]),
        "p50_ms": spread([c["api"]["p50_ms"] or 0.0 for c in mine]),
        "p99_ms": spread([c["api"]["p99_ms"] or 0.0 for c in mine]),
        "rss_kb_per_client": spread([c["api"]["rss_kb_per_client"] for c in mine]),
        "burst_errors": sum(c["api"]["burst_errors"] for c in mine),
        "completed_min": min(c["api"]["completed"] for c in mine),
        "loadavg_1m": spread([x for c in mine for x in (c["loadavg_before"][0], c["loadavg_after"][0])]),
    }  # fmt: skip


async def run(
    client_counts: list[int], seconds: float, with_profile: bool, rounds: int = 1
) -> dict[str, Any]:
    sse_load.raise_nofile()
    cells = []
    with redis_node("--maxclients", "20000") as url:
        redis = Redis.from_url(url, decode_responses=True)
        try:
            for r in range(rounds):  # rounds interleaved: 500, 1000, 500, 1000, ...
                for n in client_counts:
                    profiled = with_profile and n == max(client_counts) and r == rounds - 1
                    cells.append({"round": r, **await one_cell(url, redis, n, seconds, profiled)})
        finally:
            await redis.aclose()
    summary = [summarise(cells, n) for n in client_counts]
    return {"cells": cells, "summary": summary, "targets": TARGETS, "loadavg": os.getloadavg(),
            "params": {"clients": client_counts, "per_task": PER_TASK, "rate_per_task": RATE, "seconds": seconds,
                       "rounds": rounds}}  # fmt: skip


def table(results: dict[str, Any]) -> str:
    lines = [f"load average at the end: {', '.join(f'{x:.2f}' for x in results['loadavg'])}"]
    for c in results["cells"]:
        a, f1, f4 = c["api"], c["floor_1"], c["floor_4"]
        lines += [
            f"\n{c['clients']} clients ({a['tasks']} tasks x {PER_TASK} @ {RATE:g}/s):",
            f"  floor, 1 frame/write   {f1['cpu_us_per_delivery']:.2f} us/delivery ({f1['frames_read']:,}/{f1['deliveries']:,} frames read)",
            f"  floor, 4 frames/write  {f4['cpu_us_per_delivery']:.2f} us/delivery",
            f"  API                    {a['cpu_us_per_delivery']:.2f} us/delivery, ratio {c['ratio_api_vs_floor']:.2f}x "
            f"(vs joined floor {c['ratio_api_vs_floor_4']:.2f}x)",
            f"  API latency p50 / p99  {a['p50_ms'] or 0:.1f} / {a['p99_ms'] or 0:.1f} ms; completed {a['completed']}/{c['clients']},"
            f" burst errors {a['burst_errors']} {a['errors'] or ''}; RSS {a['rss_kb_per_client']:.1f} KB/client",
        ]
    for m in results.get("summary", []):
        f = lambda k, d=2, m=m: f"{m[k]['median']:.{d}f} ({m[k]['min']:.{d}f}-{m[k]['max']:.{d}f})"  # noqa: E731
        lines += [
            f"\n{m['clients']} clients over {m['rounds']} rounds, median (min-max):",
            f"  floor {f('floor_1_us')} us, API {f('api_us')} us, ratio {f('ratio')}x (joined floor {f('floor_4_us')} us)",
            f"  p99 {f('p99_ms', 1)} ms, RSS {f('rss_kb_per_client', 1)} KB/client, burst errors {m['burst_errors']}, "
            f"load average (1 min) {f('loadavg_1m')}",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clients", default="500,1000", help="comma-separated client counts (multiples of 25)"
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of writing per run")
    parser.add_argument("--profile", action="store_true", help="py-spy the API process at the largest count")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every client count (median, min-max)"
    )
    parser.add_argument("--quick", action="store_true", help="100 and 200 clients, 4 s, one round")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.clients.split(",")]
    if args.quick:
        counts, args.seconds, args.rounds = [100, 200], 4.0, 1
    if any(n % PER_TASK or n <= 0 for n in counts):
        sys.exit(f"--clients: every count must be a positive multiple of {PER_TASK}")
    results = asyncio.run(run(counts, args.seconds, args.profile, args.rounds)) | provenance(args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fanout.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'fanout.json'}")


if __name__ == "__main__":
    main()
