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

**Replay** of one finished stream, every reader paging the same way (``--page-size``, 250 by
default: the floors' fastest, see ``REPLAY_PAGE``; ``(last id`` as the next start, stopping
at a short page). The floors are XRANGE replies parsed by hiredis into nested lists, no
dict built, entries only counted:

- ``lists_bytes_protocol`` / ``lists_str_protocol``: a bare asyncio Protocol feeding
  hiredis as bytes arrive (no StreamReader, no redis-py), lists of bytes / of str;
- ``lists_bytes_redis_py`` / ``lists_str_redis_py``: redis-py ``execute_command("XRANGE")``
  on the shared pool with an identity response callback, with ``NEVER_DECODE`` (bytes) or
  without (str: the very lists ``Reader.replay`` decodes);
- ``lists_bytes_held_conn``: one pooled redis-py connection held for the whole read,
  ``read_response(disable_decoding=True)``. This was the "reply not decoded" floor of the
  first version: it is hiredis parsing into lists of bytes, not an unparsed read. No reader
  here skips parsing: a page must be parsed to learn where the next one starts.

Then redis-py ``xrange`` (default parsing: a dict per entry) and ours (``Reader.replay``,
every event decoded to its protocol dict). Target: ours >= 0.7x the fastest floor of the
run (``best_lists_reader``); the ratio to every column is reported.

``--only replay`` (or ``ingest``) runs one part, for iteration; its JSON goes to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import hiredis
from redis.asyncio import Redis
from redis.client import NEVER_DECODE

from agentstream.streams import Reader, StreamsSettings, TaskStore, create_redis
from agentstream.streams.codec import EncodedEvent, encode
from bench import profile, provenance, spread
from bench.streams_bench import BATCH, fenced_writer, finished_task, redis_py_xrange, token
from tests.redis_server import redis_node

RESULTS = Path(__file__).parent / "results"
INGEST = ("redis_py_pipeline", "resp_pipeline", "lua_batch", "writer")
#: the floors of a replay: XRANGE pages parsed by hiredis into nested lists, no dict built;
#: the target is judged against whichever is fastest in a run
REPLAY_FLOORS = ("lists_bytes_protocol", "lists_str_protocol", "lists_bytes_redis_py", "lists_str_redis_py",
                 "lists_bytes_held_conn")  # fmt: skip
PARTS = ("ingest", "replay")
#: every replay column reads pages of this size: the fastest for the floors on the 2-core
#: bench box (bare Protocol, 100,000 entries, medians of 5-7 rounds in several runs: 125 -> 263k/s,
#: 250 -> 282k/s, 500 -> 219k/s, 1,000 -> 199k/s, 2,000 -> 170k/s; a page's objects then stay in
#: the 512 KB L2). ``Reader.replay`` is fastest there too (107k/s against 76k/s at 1,000),
#: though ``StreamsSettings.page_size`` defaults to 1,000.
REPLAY_PAGE = 250
TARGETS = {"ingest_vs_best_raw_throughput_min": 1.0, "replay_vs_best_lists_reader_min": 0.7}

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


class _Replies(asyncio.Protocol):
    """A bare RESP connection: bytes go straight from ``data_received`` into hiredis, each
    complete reply resolves the oldest waiting request (no StreamReader, no redis-py)."""

    def __init__(self, parser: hiredis.Reader) -> None:
        self.parser = parser
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        while self.waiting:
            reply = self.parser.gets()
            if reply is False:
                return
            waiter = self.waiting.popleft()
            if isinstance(reply, Exception):
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        while self.waiting:
            self.waiting.popleft().set_exception(exc or ConnectionError("redis closed the connection"))

    async def call(self, packed: bytes) -> Any:
        assert self.transport is not None
        waiter = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        self.transport.write(packed)
        async with asyncio.timeout(10):
            return await waiter


def xrange_packed(key: str, start: bytes, count: int) -> bytes:
    return b"*6\r\n" + b"".join(bulk(a) for a in (b"XRANGE", key.encode(), start, b"+", b"COUNT", count))


async def protocol_pages(url: str, key: str, size: int, encoding: str | None) -> int:
    """Read ``key`` by XRANGE pages of ``size`` on a bare :class:`_Replies` connection,
    hiredis parsing each reply into lists (of ``str`` with ``encoding``, else ``bytes``)."""
    where = urlparse(url)
    parser = hiredis.Reader(encoding=encoding) if encoding else hiredis.Reader()
    loop = asyncio.get_running_loop()
    transport, conn = await loop.create_connection(
        lambda: _Replies(parser), where.hostname or "127.0.0.1", where.port or 6379
    )
    try:
        count, start = 0, b"-"
        while True:
            page = await conn.call(xrange_packed(key, start, size))
            count += len(page)
            if len(page) < size:
                return count
            last = page[-1][0]
            start = b"(" + (last if isinstance(last, bytes) else last.encode())
    finally:
        transport.close()


def _identity(response: Any, **_: Any) -> Any:
    return response


def replay_runs(
    redis: Redis, settings: StreamsSettings, task_id: str
) -> dict[str, Callable[[], Awaitable[int]]]:
    key, size = settings.keys.events(task_id), settings.page_size
    reader = Reader(redis, settings)
    lists = Redis(connection_pool=redis.connection_pool)  # same pool, XRANGE replies left as lists
    lists.set_response_callback("XRANGE", _identity)

    async def lists_bytes_protocol() -> int:
        return await protocol_pages(settings.redis_url, key, size, None)

    async def lists_str_protocol() -> int:
        return await protocol_pages(settings.redis_url, key, size, "utf-8")

    async def redis_py_pages(**options: Any) -> int:
        count, start = 0, "-"
        while True:
            page = await lists.execute_command("XRANGE", key, start, "+", "COUNT", size, **options)
            count += len(page)
            if len(page) < size:
                return count
            last = page[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else last)

    async def lists_bytes_redis_py() -> int:
        return await redis_py_pages(**{NEVER_DECODE: True})

    async def lists_str_redis_py() -> int:
        return await redis_py_pages()

    async def lists_bytes_held_conn() -> int:
        count, start = 0, b"-"
        conn = await redis.connection_pool.get_connection()
        try:
            while True:
                await conn.send_command("XRANGE", key, start, "+", "COUNT", size)
                page = await conn.read_response(disable_decoding=True)
                count += len(page)
                if len(page) < size:
                    return count
                start = b"(" + page[-1][0]
        finally:
            await redis.connection_pool.release(conn)

    async def xrange_redis_py() -> int:
        return await redis_py_xrange(redis, key, size)

    async def reader_replay() -> int:
        count = 0
        async for _ in reader.replay(task_id):
            count += 1
        return count

    async def reader_replay_pages() -> int:
        count = 0
        async for page in reader.replay_pages(task_id):
            count += len(page)
        return count

    return {
        "lists_bytes_protocol": lists_bytes_protocol,
        "lists_str_protocol": lists_str_protocol,
        "lists_bytes_redis_py": lists_bytes_redis_py,
        "lists_str_redis_py": lists_str_redis_py,
        "lists_bytes_held_conn": lists_bytes_held_conn,
        "xrange_redis_py": xrange_redis_py,
        "reader_replay": reader_replay,
        "reader_replay_pages": reader_replay_pages,
    }


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


async def run(
    events: int,
    replay_events: int,
    n_rounds: int,
    with_profile: bool = False,
    parts: tuple[str, ...] = PARTS,
    page_size: int = REPLAY_PAGE,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with redis_node() as url:
        settings = StreamsSettings(redis_url=url, prefix="base", maxlen=10_000_000, page_size=page_size)
        redis = create_redis(settings)
        try:
            await rounds(redis, ingest_runs(redis, settings, 2_000), 1)  # warm-up: scripts, connections
            if "ingest" in parts:
                ingest = summarise(
                    await rounds(redis, ingest_runs(redis, settings, events), n_rounds), "writer"
                )
                best = max(
                    ("resp_pipeline", "lua_batch"), key=lambda k: ingest["columns"][k]["per_s"]["median"]
                )
                out |= {"ingest": ingest, "best_raw_writer": best}
                if with_profile:
                    out["profile"] = await profiled(ingest_runs(redis, settings, events)["writer"])
            if "replay" in parts:
                task_id = await finished_task(TaskStore(redis, settings), replay_events)
                replays = replay_runs(redis, settings, task_id)
                replay_rounds = await rounds(redis, replays, n_rounds)
                replay = summarise(replay_rounds, "reader_replay")
                # the same events a page at a time (Reader.replay_pages), against every column
                replay["pages_ratios_over"] = summarise(replay_rounds, "reader_replay_pages")[
                    "ratios_ours_over"
                ]
                best = max(REPLAY_FLOORS, key=lambda k: replay["columns"][k]["per_s"]["median"])
                out |= {"replay": replay, "best_lists_reader": best}
                if with_profile:
                    out["replay_profile"] = await profiled(replays["reader_replay"])
        finally:
            await redis.aclose()
    params = {"events": events, "replay_events": replay_events, "rounds": n_rounds, "batch": BATCH,
              "page_size": settings.page_size, "parts": list(parts)}  # fmt: skip
    return out | {
        "targets": TARGETS, "params": params, "loadavg": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }  # fmt: skip


def fmt_spread(s: dict[str, float], digits: int = 2, suffix: str = "x") -> str:
    return f"{s['median']:,.{digits}f}{suffix} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def table(results: dict[str, Any]) -> str:
    lines = [f"load average at the end: {', '.join(f'{x:.2f}' for x in results['loadavg'])}"]
    for part in PARTS:
        d = results.get(part)
        if d is None:
            continue
        lines.append(f"\n{part}: median (min-max) of {results['params']['rounds']} interleaved rounds")
        for name, c in d["columns"].items():
            ratio = d["ratios_ours_over"].get(name)
            vs = f"  ours/this {fmt_spread(ratio['per_s'])}" if ratio else "  (ours)"
            lines.append(
                f"  {name:<22} {fmt_spread(c['per_s'], 0, '/s')}  client {fmt_spread(c['client_cpu_us'], 2, '')} us/ev"
                f"  redis cmd {c['redis_cmd_us']['median']:.2f} us/ev, proc {c['redis_proc_cpu_us']['median']:.2f}{vs}"
            )
    if "replay" in results:
        best = results["best_lists_reader"]
        ratio = results["replay"]["ratios_ours_over"][best]["per_s"]
        target = results["targets"]["replay_vs_best_lists_reader_min"]
        lines.append(
            f"\nreplay target judged against the best parsed-lists reader of this run ({best}): "
            f"ours {fmt_spread(ratio)}, target >= {target:g}x: {'met' if ratio['median'] >= target else 'missed'}"
        )
        pages = results["replay"]["pages_ratios_over"][best]["per_s"]
        lines.append(f"Reader.replay_pages (a page at a time) against it: {fmt_spread(pages)}")
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
    parser.add_argument(
        "--only", choices=PARTS, help="run one part; its results go to --out only (baselines.json needs both)"
    )
    parser.add_argument(
        "--page-size", type=int, default=REPLAY_PAGE, help="XRANGE page of every replay column"
    )
    parser.add_argument("--out", type=Path, help="where to write the results JSON (default: baselines.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.replay_events, args.rounds = 10_000, 10_000, 3
    parts = (args.only,) if args.only else PARTS
    results = asyncio.run(
        run(args.events, args.replay_events, args.rounds, args.profile, parts, args.page_size)
    )
    results |= provenance(args.quick)
    out = args.out or (RESULTS / "baselines.json" if not args.only else None)
    print(table(results))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
