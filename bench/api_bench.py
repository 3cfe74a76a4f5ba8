"""The HTTP service under load, side by side with raw Redis in the same run (issue 4).

Run: ``python -m bench.api_bench [--tasks 40] [--clients-per-task 25] [--seconds 20] [--quick]``.
Starts its own redis-server and ONE API process (uvicorn + ``api.app.create_app``, open
mode on 127.0.0.1, no rate limit); clients and writers are separate processes.

(a) **SSE fan-out**: ``tasks x clients-per-task`` live SSE clients (a minimal asyncio SSE
reader, one connection each) follow ``tasks`` streams while a writer process appends
``--rate`` token events/s per task through ``TaskStore.writer``, the write time
(``time.time()`` just before ``append``) in the token's content. Latency = client receipt
time - write time. Beside it, the same shape on raw Redis: as many blocking XREAD readers
(redis-py, one connection each) on as many raw streams, fed by raw XADD at the same rate.
Reported also: the API process's RSS (VmRSS) and its Redis connections (``CLIENT LIST``,
attributed to the API by socket inode).

(b) **Replay over HTTP** of a finished stream of ``--replay-events`` tokens: SSE in one
go (minimal reader), the SDK's ``events()`` (SSE, parsed into dicts), the SDK's
``replay()`` (JSON pages of 1000) — each against raw XRANGE pages of 1000 on the same
Redis.

Writes ``bench/results/api.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from agentstream.sdk.client import AgentStreamClient
from agentstream.streams import StreamsSettings, TaskStore
from agentstream.streams.keys import scoped_task_id
from bench import machine, provenance
from bench.procs import (
    api_redis_sockets,
    process_cpu_s,
    read_line,
    redis_cpu_s,
    render,
    rss_kb,
    spawn,
    stop_child,
    wait_healthy,
)
from bench.sse_load import PREFIX, raise_nofile
from tests.redis_server import free_port, redis_node

RESULTS = Path(__file__).parent / "results"
OWNER = "default"  # the tenant of open mode
API_CODE = (
    "import uvicorn; from agentstream.api.app import create_app; from agentstream.api.settings import ApiSettings; "
    "uvicorn.run(create_app(ApiSettings.from_env()), host='127.0.0.1', port={port}, "
    "log_level='warning', timeout_graceful_shutdown=2)"
)


def task_ids(run: str, n: int) -> list[str]:
    return [f"ab_{run}_{i:04d}" for i in range(n)]


# --------------------------------------------------------------------------- child: writer


# --------------------------------------------------------------------------- child: load


# --------------------------------------------------------------------------- orchestration


async def client_list_count(redis: Any) -> int:
    return len(await redis.client_list())


@contextlib.asynccontextmanager
async def api_process(
    url: str, extra_env: dict[str, str] | None = None, code: str = API_CODE
) -> AsyncIterator[tuple[str, int]]:
    """An API process on a free port (``code``: how it starts, ``{port}`` filled in),
    with this bench's limits: (base URL, pid) once healthy."""
    port = free_port()
    env = {
        "REDIS_URL": url, "AGENTSTREAM_PREFIX": PREFIX, "AGENTSTREAM_RATE_LIMIT": "0",
        "AGENTSTREAM_MAX_SSE_CLIENTS": "20000", "AGENTSTREAM_MAX_SSE_CLIENTS_PER_TENANT": "20000",
        "AGENTSTREAM_API_KEYS": "", **(extra_env or {}),
    }  # fmt: skip
    code = "import bench.sse_load as b; b.raise_nofile(); " + code.format(port=port)
    proc = await spawn("-c", code, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base, proc)
        yield base, proc.pid
    finally:
        await stop_child(proc)


async def metrics(base: str) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        text = (await http.get("/metrics")).text
    return {
        name: float(value)
        for name, value in (line.split() for line in text.splitlines() if line and not line.startswith("#"))
    }


async def wait_blocked(redis: Any, n: int) -> None:
    """Until ``n`` clients block in XREAD (Redis state is polled: no event to wait on)."""
    async with asyncio.timeout(30):
        while True:
            if int((await redis.info("clients"))["blocked_clients"]) >= n:
                return
            await asyncio.sleep(0.05)


async def watch_peaks(done: asyncio.Task[str], redis: Any, api_pid: int, url: str) -> tuple[int, int, int]:
    """Peaks of the API's RSS, CLIENT LIST and the API's Redis sockets until ``done``."""
    peak_rss, peak_clients, peak_sockets = 0, 0, 0
    redis_port = int(url.rsplit(":", 1)[1].split("/")[0])
    while not done.done():
        peak_rss = max(peak_rss, rss_kb(api_pid))
        peak_clients = max(peak_clients, await client_list_count(redis))
        peak_sockets = max(peak_sockets, api_redis_sockets(api_pid, redis_port))
        await asyncio.wait([done], timeout=0.5)
    return peak_rss, peak_clients, peak_sockets


async def create_tasks(redis: Any, url: str, ids: list[str]) -> None:
    store = TaskStore(redis, StreamsSettings(redis_url=url, prefix=PREFIX))
    for task_id in ids:
        await store.create_task(scoped_task_id(OWNER, task_id), owner=OWNER, agent="llm", input="bench")


async def snapshot(redis: Any, url: str, base: str, api_pid: int, with_metrics: bool) -> dict[str, Any]:
    """The API's RSS, CLIENT LIST, the API's Redis sockets (and its /metrics) right now."""
    before = {"rss_kb": rss_kb(api_pid), "client_list": await client_list_count(redis),
              "api_redis_sockets": api_redis_sockets(api_pid, int(url.rsplit(":", 1)[1].split("/")[0]))}  # fmt: skip
    if with_metrics:
        before["metrics"] = await metrics(base)
    return before


async def fan_out(
    mode: str,
    url: str,
    redis: Any,
    base: str,
    api_pid: int,
    tasks: int,
    per_task: int,
    rate: float,
    seconds: float,
    on_go: Callable[[], Awaitable[Any]] | None = None,
) -> dict[str, Any]:
    """One fan-out phase (``sse`` through the API, or ``raw`` on Redis); ``on_go`` runs as writing starts."""
    run = uuid.uuid4().hex[:8]
    ids = task_ids(run, tasks)
    if mode == "sse":
        await create_tasks(redis, url, ids)
    port = int(base.rsplit(":", 1)[1])
    child = "import asyncio, bench.sse_load as b; asyncio.run(b.{})"
    load = await spawn(
        "-c", child.format(f"load_child({mode!r}, {url!r}, {port}, {ids!r}, {per_task}, {seconds})")
    )
    writer = await spawn("-c", child.format(f"writer_child({url!r}, {mode!r}, {ids!r}, {rate}, {seconds})"))
    assert load.stdin is not None and writer.stdin is not None
    try:
        ready = await read_line(load, 90)
        if await read_line(writer, 30) != "ready":
            raise RuntimeError("the writer did not get ready")
        if mode == "raw":
            await wait_blocked(redis, tasks * per_task)
        await asyncio.sleep(1.0)  # every live tail subscribed to the hub
        before = await snapshot(redis, url, base, api_pid, with_metrics=mode == "sse")
        extra = await on_go() if on_go is not None else None
        api_cpu0, redis_cpu0 = process_cpu_s(api_pid), await redis_cpu_s(redis)
        for proc in (load, writer):
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        done = asyncio.create_task(read_line(load, seconds + 150))
        peak_rss, peak_clients, peak_sockets = await watch_peaks(done, redis, api_pid, url)
        load_summary = json.loads(done.result())
        writer_summary = json.loads(await read_line(writer, 60))
        api_cpu, redis_cpu = process_cpu_s(api_pid) - api_cpu0, await redis_cpu_s(redis) - redis_cpu0
    finally:
        await stop_child(load)
        await stop_child(writer)
    delivered = load_summary["token_latencies"]
    wall = writer_summary["wall_s"]
    return {
        "ready_line": ready, "load": load_summary, "writer": writer_summary,
        "events_written_per_s": writer_summary["written"] / wall,
        "token_events_delivered": delivered, "delivered_per_s": delivered / wall,
        "expected_deliveries": writer_summary["written"] * per_task,
        "api_rss_kb": {"before_run_clients_connected": before["rss_kb"], "peak": peak_rss, "after": rss_kb(api_pid)},
        "redis_connections": {"client_list_total_before": before["client_list"], "client_list_total_peak": peak_clients,
                              "api_process_before": before["api_redis_sockets"], "api_process_peak": peak_sockets},
        "api_metrics_before": before.get("metrics", {}),
        "cpu_cores_used": {"api": api_cpu / wall, "redis": redis_cpu / wall,
                           "load_clients": load_summary["cpu_s"] / load_summary["wall_s"], "writer": writer_summary["cpu_s"] / wall},
        "api_cpu_us_per_delivery": api_cpu / max(1, delivered) * 1e6, "on_go": extra,
    }  # fmt: skip


# --------------------------------------------------------------------------- (b) replay


async def finished_stream(redis: Any, url: str, n: int) -> str:
    settings = StreamsSettings(redis_url=url, prefix=PREFIX, maxlen=10_000_000)
    store = TaskStore(redis, settings)
    task_id = f"ab_replay_{uuid.uuid4().hex[:8]}"  # the API's path takes this public id
    key_id = scoped_task_id(OWNER, task_id)
    await store.create_task(key_id, owner=OWNER, agent="llm", input="bench")
    attempt = await store.open_attempt(key_id)
    async with store.writer(attempt) as out:
        for i in range(n):
            await out.append({"type": "token", "content": f"tok{i % 100} ", "agent_id": "bench"})
        await out.append({"type": "completed", "success": True, "status": "succeeded", "execution_time": 0})
    return task_id


async def sse_replay_minimal(base: str, task_id: str) -> int:
    host, port = base.rsplit("/", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
    try:
        writer.write(
            f"GET /v1/tasks/{task_id}/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        count, buf = 0, b""
        while True:
            data = await reader.read(1 << 16)
            if not data:
                return count
            buf += data
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                continue
            block, buf = buf[:cut], buf[cut + 2 :]
            count += block.count(b"\nevent: ")
            if b"event: completed" in block:
                return count
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def replay(redis: Any, url: str, base: str, api_pid: int, n: int) -> dict[str, Any]:
    task_id = await finished_stream(redis, url, n)
    key = StreamsSettings(prefix=PREFIX).keys.events(scoped_task_id(OWNER, task_id))

    async def raw() -> int:
        count, after = 0, "-"
        while True:
            page = await redis.xrange(key, min=after, count=1000)
            if not page:
                return count
            count += len(page)
            after = "(" + page[-1][0]

    async def sdk_events() -> int:
        async with AgentStreamClient(base) as client:
            return sum([1 async for _ in client.events(task_id)])

    async def sdk_pages() -> int:
        async with AgentStreamClient(base) as client:
            return sum([1 async for _ in client.replay(task_id, page_size=1000)])

    async def measure(fn: Any) -> dict[str, float]:
        server0, cpu0, wall0 = process_cpu_s(api_pid), time.process_time(), time.perf_counter()
        count = await asyncio.wait_for(fn(), 300)
        wall, cpu, server = (
            time.perf_counter() - wall0,
            time.process_time() - cpu0,
            process_cpu_s(api_pid) - server0,
        )
        return {"items": count, "per_s": count / wall, "wall_s": wall, "client_cpu_us_per_item": cpu / count * 1e6,
                "api_cpu_us_per_item": server / count * 1e6}  # fmt: skip

    out: dict[str, Any] = {"events_in_stream": n + 2}
    out["raw_xrange_1000"] = await measure(raw)
    out["sse_minimal_reader"] = await measure(lambda: sse_replay_minimal(base, task_id))
    out["sdk_events_sse"] = await measure(sdk_events)
    out["sdk_replay_json_pages_1000"] = await measure(sdk_pages)
    raw_rate = out["raw_xrange_1000"]["per_s"]
    out["ratios_vs_raw"] = {
        k: out[k]["per_s"] / raw_rate
        for k in ("sse_minimal_reader", "sdk_events_sse", "sdk_replay_json_pages_1000")
    }
    return out


# --------------------------------------------------------------------------- run


async def run(tasks: int, per_task: int, rate: float, seconds: float, replay_events: int) -> dict[str, Any]:
    raise_nofile()
    results: dict[str, Any] = {}
    with redis_node("--maxclients", "20000") as url:
        redis = Redis.from_url(url, decode_responses=True)
        try:
            async with api_process(url) as (base, api_pid):
                results["api_rss_kb_idle"] = rss_kb(api_pid)
                results["raw_fanout"] = await fan_out(
                    "raw", url, redis, base, api_pid, tasks, per_task, rate, seconds
                )
                results["sse_fanout"] = await fan_out(
                    "sse", url, redis, base, api_pid, tasks, per_task, rate, seconds
                )
                results["replay"] = await replay(redis, url, base, api_pid, replay_events)
        finally:
            await redis.aclose()
    results["target"] = {"sse_p99_ms_max": 250}
    results["meaning"] = {
        "sse_fanout": "tasks x clients_per_task SSE clients on ONE API process (uvicorn, h11), each its own TCP "
        "connection, reading GET /v1/tasks/{id}/events (default mode, from the start); a writer process appends "
        "rate token events/s per task via TaskStore.writer with time.time() in the content just before append; "
        "latency = receipt time in the client process (at the socket read) - that time, ms, token events only. "
        "delivered_per_s = token events received by all clients / writer wall time",
        "raw_fanout": "the same shape on raw Redis: one blocking XREAD (redis-py, own connection) per client on "
        "raw streams, raw XADD at the same rate with the time in a field",
        "api_rss_kb": "VmRSS of the API process: once all clients are connected, peak during the run, after",
        "redis_connections": "CLIENT LIST entries (all processes), and TCP connections from the API process to "
        "Redis (socket inodes of /proc/PID/fd matched in /proc/PID/net/tcp)",
        "cpu_cores_used": "CPU seconds / writer wall time of each process over the phase (2 cores in all)",
        "replay": "a finished stream of replay_events tokens read from the start: raw XRANGE pages of 1000 "
        "(redis-py, no decoding), the SSE response in one go (minimal reader, frames counted), the SDK "
        "events() (SSE parsed into dicts) and the SDK replay() (JSON pages of 1000); events/s and client / API "
        "CPU per event",
    }
    results["params"] = {"tasks": tasks, "clients_per_task": per_task, "rate_per_task": rate, "seconds": seconds,
                         "replay_events": replay_events}  # fmt: skip
    results["machine"] = machine()
    return results


def table(results: dict[str, Any]) -> str:
    raw, sse, rep = results["raw_fanout"], results["sse_fanout"], results["replay"]
    p = results["params"]
    rl, sl = raw["load"], sse["load"]
    r = rep["ratios_vs_raw"]
    rows = [
        (f"fan-out clients ({p['tasks']} x {p['clients_per_task']})", f"{rl['completed']}/{rl['clients']}", f"{sl['completed']}/{sl['clients']}", "", "all complete"),
        ("fan-out token deliveries/s", f"{raw['delivered_per_s']:,.0f}", f"{sse['delivered_per_s']:,.0f}", f"{sse['delivered_per_s'] / raw['delivered_per_s']:.2f}x", ""),
        ("fan-out latency p50 ms", f"{rl.get('p50_ms', 0):.1f}", f"{sl.get('p50_ms', 0):.1f}", "", ""),
        ("fan-out latency p99 ms", f"{rl.get('p99_ms', 0):.1f}", f"{sl.get('p99_ms', 0):.1f}", "", "<= 250 ms"),
        ("fan-out latency max ms", f"{rl.get('max_ms', 0):.1f}", f"{sl.get('max_ms', 0):.1f}", "", ""),
        ("API RSS MB (connected/peak)", "", f"{sse['api_rss_kb']['before_run_clients_connected'] / 1024:.0f} / {sse['api_rss_kb']['peak'] / 1024:.0f}", "", ""),
        ("API Redis connections", "", f"{sse['redis_connections']['api_process_peak']} (CLIENT LIST total {sse['redis_connections']['client_list_total_peak']})", "", ""),
        ("API CPU cores / us per delivery", "", f"{sse['cpu_cores_used']['api']:.2f} / {sse['api_cpu_us_per_delivery']:.1f}", "", ""),
        ("load-client CPU cores", f"{raw['cpu_cores_used']['load_clients']:.2f}", f"{sse['cpu_cores_used']['load_clients']:.2f}", "", ""),
        (f"replay {rep['events_in_stream']:,}: SSE one go ev/s", f"{rep['raw_xrange_1000']['per_s']:,.0f}", f"{rep['sse_minimal_reader']['per_s']:,.0f}", f"{r['sse_minimal_reader']:.2f}x", ""),
        ("replay: SDK events() ev/s", f"{rep['raw_xrange_1000']['per_s']:,.0f}", f"{rep['sdk_events_sse']['per_s']:,.0f}", f"{r['sdk_events_sse']:.2f}x", ""),
        ("replay: SDK JSON pages ev/s", f"{rep['raw_xrange_1000']['per_s']:,.0f}", f"{rep['sdk_replay_json_pages_1000']['per_s']:,.0f}", f"{r['sdk_replay_json_pages_1000']:.2f}x", ""),
    ]  # fmt: skip
    return render(("measure", "raw Redis", "agentstream API", "ratio", "target"), rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--clients-per-task", type=int, default=25)
    parser.add_argument("--rate", type=float, default=25.0, help="token events/s per task")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of writing per fan-out phase")
    parser.add_argument("--replay-events", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10 x 10 clients, 5 s, replay 10k")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.clients_per_task, args.seconds, args.replay_events = 10, 10, 5.0, 10_000
    results = asyncio.run(run(args.tasks, args.clients_per_task, args.rate, args.seconds, args.replay_events))
    results |= provenance(args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "api.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'api.json'}")


if __name__ == "__main__":
    main()
