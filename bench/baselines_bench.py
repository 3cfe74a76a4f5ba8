"""Honest baselines for ingest and replay (issue 14, item 3): the best raw client we can write.

Run: ``python -m bench.baselines_bench [--events N] [--rounds R] [--quick]``. Starts its own
redis-server on a free loopback port and writes ``bench/results/baselines.json``.

**Ingest**: the same token events (encoded by our codec in every column, so only the
transport differs), 64 per batch, into a fresh stream per run, four ways:

- ``redis_py_pipeline``: redis-py pipelined XADD (``pack_command`` per XADD: this baseline
  is client-bound, kept and labelled as what it is);
- ``resp_pipeline``: the RESP bytes of 64 XADDs packed by hand and written on one asyncio
  connection, replies counted from the raw bytes (no redis-py on the path);
- ``lua_batch``: one EVALSHA per batch appending the 64 entries with XADD, no fence, no seq;
- ``writer``: ours, ``TaskStore.writer`` (fenced, dense seq, one script call per batch).

Each is run ``--rounds`` times interleaved (A B C D A B C D ...); per run: events/s, client
CPU µs/event (this process's CPU time), Redis CPU µs/event both as the ``usec`` of the
``INFO commandstats`` deltas (top-level commands only: the XADDs inside a script are in its
EVALSHA) and as the Redis process's CPU (``INFO cpu``, which adds networking). Ratios
``writer / baseline`` are paired within a round; the table gives their median and min-max.

**Replay** of one finished stream, pages of ``page_size``: the floor (XRANGE on a raw
connection, reply not decoded, no dicts built), redis-py ``xrange`` (default parsing: a dict
per entry) and ours (``Reader.replay``, every event decoded). Target: ours >= 0.7x the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from redis.asyncio import Redis

from agentstream.streams import Reader, StreamsSettings, TaskStore, create_redis
from agentstream.streams.codec import EncodedEvent, encode
from bench import profile, provenance
from bench.streams_bench import BATCH, fenced_writer, finished_task, redis_py_xrange, token
from tests.redis_server import redis_node

RESULTS = Path(__file__).parent / "results"
INGEST = ("redis_py_pipeline", "resp_pipeline", "lua_batch", "writer")
REPLAY = ("xrange_raw_floor", "xrange_redis_py", "reader_replay")
TARGETS = {"ingest_vs_best_raw_throughput_min": 1.0, "replay_vs_floor_min": 0.7}

#: the fence-free floor of a script append: XADD each entry, nothing else
LUA_BATCH = """
local maxlen = ARGV[1]
for i = 2, #ARGV, 6 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 't', ARGV[i], 's', ARGV[i + 1],
    'a', ARGV[i + 2], 'm', ARGV[i + 3], 'g', ARGV[i + 4], 'd', ARGV[i + 5])
end
return (#ARGV - 1) / 6
"""


def bulk(value: str | bytes | int) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def fields(enc: EncodedEvent, seq: int) -> list[str | bytes | int]:
    return ["t", enc.type, "s", seq, "a", 1, "m", enc.ts_us, "g", enc.agent_id, "d", enc.payload]


def count_replies(buf: bytes, pos: int, wanted: int) -> tuple[int, int]:
    """Skip whole RESP replies (simple, error, integer or bulk) in ``buf`` from ``pos``;
    ``(replies seen, new pos)``. An error reply raises."""
    seen = 0
    while seen < wanted:
        end = buf.find(b"\r\n", pos)
        if end < 0:
            break
        if buf[pos] == 45:  # "-": an error reply
            raise RuntimeError(buf[pos + 1 : end].decode())
        stop = end + 2
        if buf[pos] == 36:  # "$": a bulk string follows its length line
            stop += int(buf[pos + 1 : end]) + 2
            if stop > len(buf):
                break
        pos, seen = stop, seen + 1
    return seen, pos


async def measure(redis: Redis, fn: Callable[[], Awaitable[int]]) -> dict[str, float]:
    """Run ``fn`` (returns an event count): wall rate, client CPU, Redis CPU per event."""
    stats0, cpu_info0 = await redis.info("commandstats"), await redis.info("cpu")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    n = await fn()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stats1, cpu_info1 = await redis.info("commandstats"), await redis.info("cpu")
    usec = {
        k.removeprefix("cmdstat_"): v["usec"] - stats0.get(k, {}).get("usec", 0)
        for k, v in stats1.items()
        if k != "cmdstat_info" and v["usec"] != stats0.get(k, {}).get("usec", 0)
    }
    proc = lambda i: float(i["used_cpu_user"]) + float(i["used_cpu_sys"])  # noqa: E731
    scripted = any(k in usec for k in ("evalsha", "eval", "fcall"))
    # commands a script runs are counted both in its EVALSHA and under their own name
    top = sum(v for k, v in usec.items() if not (scripted and k == "xadd"))
    return {
        "events": n, "wall_s": wall, "per_s": n / wall, "client_cpu_us": cpu / n * 1e6,
        "redis_cmd_us": top / n, "redis_proc_cpu_us": (proc(cpu_info1) - proc(cpu_info0)) / n * 1e6,
        "commandstats_usec": usec,
    }  # fmt: skip


async def resp_writer(host: str, port: int, key: str, n: int, maxlen: int) -> int:
    """``n`` token XADDs as hand-packed RESP, ``BATCH`` per write on one asyncio connection,
    each batch's replies counted from the raw bytes before the next is sent."""
    head = b"*18\r\n" + b"".join(bulk(a) for a in (b"XADD", key.encode(), b"MAXLEN", b"~", maxlen, b"*"))
    reader, writer = await asyncio.open_connection(host, port)
    try:
        buf, pos = b"", 0
        for start in range(0, n, BATCH):
            stop = min(start + BATCH, n)
            parts = []
            for i in range(start, stop):
                parts.append(head)
                parts.extend(bulk(f) for f in fields(encode(token(i)), i + 1))
            writer.write(b"".join(parts))
            pending = stop - start
            while pending:
                seen, pos = count_replies(buf, pos, pending)
                pending -= seen
                if pending:
                    chunk = await asyncio.wait_for(reader.read(1 << 16), 10)
                    if not chunk:
                        raise ConnectionError("redis closed the connection")
                    buf, pos = buf[pos:] + chunk, 0
    finally:
        writer.close()
        await writer.wait_closed()
    return n


def ingest_runs(redis: Redis, settings: StreamsSettings, n: int) -> dict[str, Callable[[], Awaitable[int]]]:
    url = urlparse(settings.redis_url)
    lua = redis.register_script(LUA_BATCH)

    def key() -> str:
        return f"base:{{{uuid.uuid4().hex}}}:events"

    async def redis_py_pipeline() -> int:
        k = key()
        for start in range(0, n, BATCH):
            pipe = redis.pipeline(transaction=False)
            for i in range(start, min(start + BATCH, n)):
                f = fields(encode(token(i)), i + 1)
                pipe.xadd(
                    k, dict(zip(f[::2], f[1::2], strict=True)), maxlen=settings.maxlen, approximate=True
                )  # type: ignore[arg-type]
            await pipe.execute()
        return n

    async def resp_pipeline() -> int:
        return await resp_writer(url.hostname or "127.0.0.1", url.port or 6379, key(), n, settings.maxlen)

    async def lua_batch() -> int:
        k = key()
        for start in range(0, n, BATCH):
            args: list[Any] = [settings.maxlen]
            for i in range(start, min(start + BATCH, n)):
                args.extend(fields(encode(token(i)), i + 1)[1::2])
            await lua(keys=[k], args=args)
        return n

    async def writer() -> int:
        return await fenced_writer(redis, settings, n)

    runs = {"redis_py_pipeline": redis_py_pipeline, "resp_pipeline": resp_pipeline}
    return runs | {"lua_batch": lua_batch, "writer": writer}


def replay_runs(
    redis: Redis, settings: StreamsSettings, task_id: str
) -> dict[str, Callable[[], Awaitable[int]]]:
    key = settings.keys.events(task_id)
    reader = Reader(redis, settings)

    async def xrange_raw_floor() -> int:
        count, after = 0, b"-"
        conn = await redis.connection_pool.get_connection()
        try:
            while True:
                await conn.send_command("XRANGE", key, after, "+", "COUNT", settings.page_size)
                page = await conn.read_response(disable_decoding=True)
                if not page:
                    return count
                count += len(page)
                after = b"(" + page[-1][0]
        finally:
            await redis.connection_pool.release(conn)

    async def xrange_redis_py() -> int:
        return await redis_py_xrange(redis, key, settings.page_size)

    async def reader_replay() -> int:
        count = 0
        async for _ in reader.replay(task_id):
            count += 1
        return count

    return {
        "xrange_raw_floor": xrange_raw_floor,
        "xrange_redis_py": xrange_redis_py,
        "reader_replay": reader_replay,
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


async def rounds(
    redis: Redis, runs: dict[str, Callable[[], Awaitable[int]]], count: int
) -> dict[str, list[dict[str, float]]]:
    """``count`` rounds, each running every entry of ``runs`` once in order (interleaved)."""
    out: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for _ in range(count):
        for name, fn in runs.items():
            out[name].append(await measure(redis, fn))
    return out


def summarise(runs: dict[str, list[dict[str, float]]], ours: str) -> dict[str, Any]:
    """Medians and spreads of each column, and of ``ours / other`` paired per round."""
    keys = ("per_s", "client_cpu_us", "redis_cmd_us", "redis_proc_cpu_us")
    columns = {name: {k: spread([r[k] for r in rs]) for k in keys} for name, rs in runs.items()}
    ratios: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        if name != ours:
            pairs = list(zip(runs[ours], rs, strict=True))
            ratios[name] = {k: spread([a[k] / b[k] for a, b in pairs if b[k]]) for k in keys}
    return {"columns": columns, "ratios_ours_over": ratios, "runs": runs}


async def profiled(fn: Callable[[], Awaitable[int]]) -> dict[str, Any]:
    """One more run of ``fn`` under py-spy (this process), outside the measured rounds."""
    sampling = await profile.start(os.getpid())
    await fn()
    return await profile.finish(sampling)


async def run(events: int, replay_events: int, n_rounds: int, with_profile: bool = False) -> dict[str, Any]:
    profiles: dict[str, Any] = {}
    with redis_node() as url:
        settings = StreamsSettings(redis_url=url, prefix="base", maxlen=10_000_000)
        redis = create_redis(settings)
        try:
            await rounds(redis, ingest_runs(redis, settings, 2_000), 1)  # warm-up: scripts, connections
            ingest = summarise(await rounds(redis, ingest_runs(redis, settings, events), n_rounds), "writer")
            task_id = await finished_task(TaskStore(redis, settings), replay_events)
            replays = replay_runs(redis, settings, task_id)
            replay = summarise(await rounds(redis, replays, n_rounds), "reader_replay")
            if with_profile:
                profiles["profile"] = await profiled(ingest_runs(redis, settings, events)["writer"])
                profiles["replay_profile"] = await profiled(replays["reader_replay"])
        finally:
            await redis.aclose()
    best = max(("resp_pipeline", "lua_batch"), key=lambda k: ingest["columns"][k]["per_s"]["median"])
    return profiles | {
        "ingest": ingest, "replay": replay, "best_raw_writer": best, "targets": TARGETS,
        "params": {"events": events, "replay_events": replay_events, "rounds": n_rounds, "batch": BATCH},
        "loadavg": os.getloadavg(), "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }  # fmt: skip


def fmt_spread(s: dict[str, float], digits: int = 2, suffix: str = "x") -> str:
    return f"{s['median']:,.{digits}f}{suffix} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def table(results: dict[str, Any]) -> str:
    lines = [f"load average at the end: {', '.join(f'{x:.2f}' for x in results['loadavg'])}"]
    for part in ("ingest", "replay"):
        d = results[part]
        lines.append(f"\n{part}: median (min-max) of {results['params']['rounds']} interleaved rounds")
        for name, c in d["columns"].items():
            ratio = d["ratios_ours_over"].get(name)
            vs = f"  ours/this {fmt_spread(ratio['per_s'])}" if ratio else "  (ours)"
            lines.append(
                f"  {name:<18} {fmt_spread(c['per_s'], 0, '/s')}  client {c['client_cpu_us']['median']:.1f} us/ev"
                f"  redis cmd {c['redis_cmd_us']['median']:.2f} us/ev, proc {c['redis_proc_cpu_us']['median']:.2f}{vs}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="events per ingest run")
    parser.add_argument("--replay-events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="py-spy one extra writer and replay run")
    parser.add_argument("--quick", action="store_true", help="10,000 events, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.replay_events, args.rounds = 10_000, 10_000, 3
    results = asyncio.run(run(args.events, args.replay_events, args.rounds, args.profile)) | provenance(
        args.quick
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "baselines.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'baselines.json'}")


if __name__ == "__main__":
    main()
