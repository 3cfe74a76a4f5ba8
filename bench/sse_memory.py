"""Where a live SSE client's memory goes in the API process (issue 14, item 1).

Run: ``python -m bench.sse_memory [--clients 1000] [--tasks 40] [--trace-frames 16]``.
Starts its own redis-server and an API process (uvicorn as ``agentstream api`` serves it:
uvloop, httptools, the guarded protocol) with a control line on its stdin, then connects
``clients`` SSE clients (``bench.sse_load``'s reader, ``clients / tasks`` per task) that
follow their task and sit in the broadcast, no event flowing. It reads the process
idle, with the clients in, and after they left, twice:

- **untraced**: VmRSS, glibc's ``mallinfo2`` (in use / free in the heap / mmapped),
  pymalloc's arenas (``sys._debugmallocstats``: blocks in use, free blocks, empty pools),
  the objects the collector tracks by type, the loop's tasks and the connections;
- **traced** (tracemalloc on from the idle snapshot, ``trace_frames`` deep): the Python-allocated
  bytes each client added, grouped by the allocating line and by the first frame outside
  the standard library (who made it).

The figures are per connected client (with-clients minus idle, divided by the clients
that got their stream going). Kernel socket buffers are not in VmRSS (``/proc/net/sockstat``
reports them apart). ``--write-seconds W`` then appends 25 tokens/s to every task for W
seconds and takes the figures again halfway (what events add: frames, decoded entries),
before every stream completes. ``--waves K`` connects the clients in K bursts one after the
other (what one burst leaves behind in the heaps, against what the clients hold);
``--env NAME=VALUE`` sets the API's environment (``PYTHONMALLOC=malloc``).
Writes ``bench/results/sse_memory.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import gc
import json
import os
import re
import sys
import sysconfig
import tempfile
import threading
import tracemalloc
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
STDLIB = sysconfig.get_paths()["stdlib"]


# --------------------------------------------------------------------------- child: the API


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
    )]  # fmt: skip


def mallinfo() -> dict[str, int]:
    """glibc's heap: ``arena`` (sbrk'd bytes), ``hblkhd`` (mmapped), ``uordblks`` (in use),
    ``fordblks`` (free in the heap)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {name: int(getattr(info, name)) for name in ("arena", "hblkhd", "uordblks", "fordblks")}


def pymalloc() -> dict[str, int]:
    """pymalloc's arenas from ``sys._debugmallocstats`` (it writes to the C stderr)."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    found: dict[str, int] = {}
    patterns = {
        "arenas_bytes": r"arenas \* \d+ bytes/arena\s+=\s+([\d,]+)",
        "allocated_blocks": r"# bytes in allocated blocks\s+=\s+([\d,]+)",
        "available_blocks": r"# bytes in available blocks\s+=\s+([\d,]+)",
        "unused_pools": r"unused pools \* \d+ bytes\s+=\s+([\d,]+)",
        "pool_headers": r"# bytes lost to pool headers\s+=\s+([\d,]+)",
        "quantization": r"# bytes lost to quantization\s+=\s+([\d,]+)",
    }
    for name, pattern in patterns.items():
        match = re.search(pattern, text)
        found[name] = int(match.group(1).replace(",", "")) if match else 0
    return found


def status_kb() -> dict[str, int]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "RssAnon", "RssFile"):
            found[key] = int(line.split()[1])
    return found


def by_type() -> dict[str, list[int]]:
    """Objects the collector tracks, by type: [count, shallow bytes]."""
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for obj in gc.get_objects():
        entry = counts[_name(obj)]
        entry[0] += 1
        entry[1] += sys.getsizeof(obj)
    return dict(counts)


#: types whose holders :func:`holders` names (an empty deque is 760 B: who keeps them?)
HELD = ("collections.deque", "builtins.dict", "builtins.method", "builtins.function", "builtins.cell",
        "builtins.list", "builtins.tuple", "_asyncio.Future", "_contextvars.Context", "asyncio.locks.Event",
        "builtins.set", "weakref.ReferenceType")  # fmt: skip


def _name(obj: object) -> str:
    kind = type(obj)
    if kind.__name__ == "coroutine":
        return f"coroutine {obj.__qualname__}"  # type: ignore[attr-defined]
    return f"{kind.__module__}.{kind.__qualname__}"


def holders() -> dict[str, dict[str, int]]:
    """For each type of :data:`HELD`: how many of its objects each holder type refers to
    (one pass over the collector's objects). Coroutines are named by their function."""
    everything = gc.get_objects()
    wanted = {id(o): _name(o) for o in everything if _name(o) in HELD}
    found: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for obj in everything:
        holder = None
        for ref in gc.get_referents(obj):
            kind = wanted.get(id(ref))
            if kind is not None:
                holder = holder or _name(obj)
                found[kind][holder] += 1
    return {kind: dict(counter) for kind, counter in found.items()}


def _write(path: str, figures: dict[str, Any], traced: bool) -> None:
    Path(path).write_text(json.dumps(figures))
    if traced:
        tracemalloc.take_snapshot().dump(path + ".tm")


def _read(path: str) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))


def api_child(port: int, trace_frames: int) -> None:
    """Child: serve the API on ``port``; on ``snap PATH`` (stdin) write the process's
    figures to ``PATH`` (and a tracemalloc dump to ``PATH.tm``, tracing from the first
    snapshot on, when ``trace_frames``), print ``ok``."""
    import uvicorn
    import uvloop

    from agentstream.api.app import create_app
    from agentstream.api.serving import uvicorn_options
    from agentstream.api.settings import ApiSettings
    from bench.sse_load import raise_nofile

    raise_nofile()
    settings = ApiSettings.from_env()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2,
        **uvicorn_options(settings),
    )  # fmt: skip
    server = uvicorn.Server(config)
    loop = uvloop.new_event_loop()

    async def snap(path: str) -> None:
        if trace_frames and not tracemalloc.is_tracing():
            # From the idle snapshot on: what the clients add is all traced, and start-up
            # (imports) does not crawl under a deep trace.
            tracemalloc.start(trace_frames)
        gc.collect()
        figures = {
            "status_kb": status_kb(), "mallinfo": mallinfo(), "pymalloc": pymalloc(),
            "tasks": len(asyncio.all_tasks()), "connections": len(server.server_state.connections),
            "by_type": by_type(), "holders": {} if trace_frames else holders(), "gc_counts": gc.get_count(), "frozen": gc.get_freeze_count(),
        }  # fmt: skip
        _write(path, figures, trace_frames > 0)

    def control() -> None:
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "snap":
                asyncio.run_coroutine_threadsafe(snap(arg), loop).result()
                print("ok", flush=True)

    threading.Thread(target=control, daemon=True).start()
    loop.run_until_complete(server.serve())


# --------------------------------------------------------------------------- parent


def _creator(trace: tracemalloc.Traceback) -> str:
    """The innermost frame outside the standard library (and this file): who allocated."""
    for frame in reversed(trace):  # a Traceback runs from the oldest frame: most recent first
        name = frame.filename
        if name == "<string>":  # the child's ``-c``: the loop itself called into C
            return "C (uvloop, httptools) under the loop"
        if not name.startswith(STDLIB) or "site-packages" in name:
            return f"{_short(name)}:{frame.lineno}"
    return f"{_short(trace[-1].filename)}:{trace[-1].lineno}"


def _short(path: str) -> str:
    for marker in ("site-packages/", "/agentstream/", "/wt/rss/", "python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _package(where: str) -> str:
    head = where.split("/", 1)[0].split(":", 1)[0]
    return head.removesuffix(".py")


def traced_diff(idle: str, loaded: str, clients: int, top: int) -> dict[str, Any]:
    """Bytes per client added between two dumps: by allocating line, by creator, by package."""
    before = tracemalloc.Snapshot.load(idle + ".tm")
    after = tracemalloc.Snapshot.load(loaded + ".tm")
    # the child's own bookkeeping (its innermost frame is this file) is no client's
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>"),
              tracemalloc.Filter(False, "*/bench/sse_memory.py")]  # fmt: skip
    before, after = before.filter_traces(ignore), after.filter_traces(ignore)
    stats = after.compare_to(before, "traceback")
    lines: collections.Counter[str] = collections.Counter()
    creators: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    blocks: collections.Counter[str] = collections.Counter()
    total = 0
    for stat in stats:
        if not stat.size_diff:
            continue
        inner = stat.traceback[-1]
        line = f"{_short(inner.filename)}:{inner.lineno}"
        creator = _creator(stat.traceback)
        lines[line] += stat.size_diff
        creators[creator] += stat.size_diff
        blocks[creator] += stat.count_diff
        packages[_package(creator)] += stat.size_diff
        total += stat.size_diff

    def per(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(v / clients, 1)) for k, v in counter.most_common(top)]

    return {
        "total_b_per_client": total / clients,
        "by_line": per(lines),
        "by_creator": [(k, b, round(blocks[k] / clients, 2)) for k, b in per(creators)],
        "by_package": per(packages),
    }


def figures_diff(idle: dict[str, Any], loaded: dict[str, Any], clients: int, top: int) -> dict[str, Any]:

    def per(a: float, b: float) -> float:
        return round((b - a) / clients, 1)

    types = []
    for name, (count, size) in loaded["by_type"].items():
        count0, size0 = idle["by_type"].get(name, [0, 0])
        if count - count0:
            types.append((name, round((count - count0) / clients, 2), per(size0, size)))
    types.sort(key=lambda t: -t[2])
    held = {}
    for kind, counter in loaded["holders"].items():
        counter0 = idle["holders"].get(kind, {})
        delta = {k: round((v - counter0.get(k, 0)) / clients, 2) for k, v in counter.items()}
        held[kind] = sorted(((k, v) for k, v in delta.items() if v >= 0.05), key=lambda kv: -kv[1])[:12]
    return {
        "rss_kb": per(idle["status_kb"]["VmRSS"], loaded["status_kb"]["VmRSS"]),
        "rss_anon_kb": per(idle["status_kb"]["RssAnon"], loaded["status_kb"]["RssAnon"]),
        "mallinfo_b": {k: per(idle["mallinfo"][k], loaded["mallinfo"][k]) for k in idle["mallinfo"]},
        "pymalloc_b": {k: per(idle["pymalloc"][k], loaded["pymalloc"][k]) for k in idle["pymalloc"]},
        "tasks": per(idle["tasks"], loaded["tasks"]),
        "connections": loaded["connections"] - idle["connections"],
        "types": types[:top],
        "types_total_b": round(sum(t[2] for t in types), 1),
        "held_by": held,
    }


async def _control(proc: asyncio.subprocess.Process, path: str) -> dict[str, Any]:
    from bench.procs import read_line

    assert proc.stdin is not None
    proc.stdin.write(f"snap {path}\n".encode())
    await proc.stdin.drain()
    if await read_line(proc, 300) != "ok":
        raise RuntimeError("the API did not answer its snapshot")
    return _read(path)


async def one_run(url: str, clients: int, tasks: int, trace_frames: int, workdir: str, waves: int = 1,
                  env_extra: dict[str, str] | None = None, write_s: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Idle, clients in, clients gone: the API's figures at each (see the module doc)."""
    import uuid

    import httpx
    from redis.asyncio import Redis

    from bench import api_bench
    from bench.procs import read_line, spawn, stop_child
    from bench.sse_load import PREFIX
    from tests.redis_server import free_port

    redis = Redis.from_url(url, decode_responses=True)
    ids = api_bench.task_ids(uuid.uuid4().hex[:8], tasks)
    await api_bench.create_tasks(redis, url, ids)
    await redis.aclose()
    port = free_port()
    env = {"REDIS_URL": url, "AGENTSTREAM_PREFIX": PREFIX, "AGENTSTREAM_RATE_LIMIT": "0",
           "AGENTSTREAM_MAX_SSE_CLIENTS": "20000", "AGENTSTREAM_MAX_SSE_CLIENTS_PER_TENANT": "20000",
           "AGENTSTREAM_API_KEYS": "", **(env_extra or {})}  # fmt: skip
    api = await spawn("-c", f"import bench.sse_memory as m; m.api_child({port}, {trace_frames})", env=env)
    loads: list[asyncio.subprocess.Process] = []
    tag = f"{workdir}/t{trace_frames}"
    try:
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as http,
            asyncio.timeout(60),
        ):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        idle = await _control(api, f"{tag}-idle")
        per_task, ready = clients // tasks, []
        for wave in range(waves):  # one burst, or several one after the other
            part = ids[wave * tasks // waves : (wave + 1) * tasks // waves]
            code = f"import asyncio, bench.sse_load as b; asyncio.run(b.load_child('sse', {url!r}, {port}, {part!r}, {per_task}, 600))"
            loads.append(await spawn("-c", code))
            ready.append(await read_line(loads[-1], 120))
        await asyncio.sleep(1.0)  # as the fan-out bench: every live tail in the broadcast
        loaded = await _control(api, f"{tag}-loaded")
        if write_s:
            writing = await _write_phase(api, f"{tag}-writing", url, ids, loads, write_s)
        while loads:
            await stop_child(loads.pop())
        await asyncio.sleep(1.5)
        gone = await _control(api, f"{tag}-gone")
    finally:
        for load in loads:
            await stop_child(load)
        await stop_child(api)
    # per client that got its stream going (under the trace, some of a burst time out)
    connected = sum(int(line.split()[1]) for line in ready)
    result = {"connected": connected, "with_clients": figures_diff(idle, loaded, connected, 30),
              "left_after_close": figures_diff(idle, gone, connected, 10)}  # fmt: skip
    if write_s:
        result["writing"] = figures_diff(idle, writing, connected, 20)
    if trace_frames:
        result["traced"] = traced_diff(f"{tag}-idle", f"{tag}-loaded", connected, 40)
        if write_s:
            result["traced_writing"] = traced_diff(f"{tag}-loaded", f"{tag}-writing", connected, 30)
    return result


async def _write_phase(api: asyncio.subprocess.Process, path: str, url: str, ids: list[str],
                       loads: list[asyncio.subprocess.Process], write_s: float) -> dict[str, Any]:  # fmt: skip
    """25 tokens/s on every task for ``write_s`` (``bench.sse_load.writer_child``), the
    figures taken halfway through; then every stream completes and its client ends."""
    from bench.procs import read_line, spawn

    code = f"import asyncio, bench.sse_load as b; asyncio.run(b.writer_child({url!r}, 'sse', {ids!r}, 25.0, {write_s}))"
    writer = await spawn("-c", code)
    assert writer.stdin is not None
    if await read_line(writer, 60) != "ready":
        raise RuntimeError("the writer did not get ready")
    for proc in (writer, *loads):
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    await asyncio.sleep(write_s / 2)
    figures = await _control(api, path)
    await read_line(writer, write_s + 60)
    for load in loads:
        await read_line(load, write_s + 120)  # its clients all saw ``completed``
    return figures


async def run(clients: int, tasks: int, trace_frames: int, trace_clients: int, waves: int = 1,
              env_extra: dict[str, str] | None = None, write_s: float = 0.0) -> dict[str, Any]:  # fmt: skip
    from bench.sse_load import raise_nofile
    from tests.redis_server import redis_node

    raise_nofile()
    with (
        redis_node("--maxclients", "20000") as url,
        tempfile.TemporaryDirectory(prefix="sse-memory-") as workdir,
    ):
        untraced = await one_run(url, clients, tasks, 0, workdir, waves, env_extra, write_s)
        # fewer clients under the trace: it slows the API several times over, and a burst
        # of 1,000 then times out on Redis
        traced = (
            await one_run(url, trace_clients, tasks, trace_frames, workdir, write_s=write_s)
            if trace_frames
            else None
        )
    return {"clients": clients, "tasks": tasks, "trace_frames": trace_frames, "trace_clients": trace_clients, "untraced": untraced, "traced": traced,
            "sockstat": _sockstat()}  # fmt: skip


def _sockstat() -> str:
    return Path("/proc/net/sockstat").read_text()


def report(result: dict[str, Any]) -> str:
    u = result["untraced"]["with_clients"]
    out = [f"{result['untraced']['connected']} of {result['clients']} clients connected on {result['tasks']} tasks, per client:",
           f"  VmRSS {u['rss_kb']} KB (anon {u['rss_anon_kb']} KB); tasks +{u['tasks']}",
           f"  glibc malloc: {u['mallinfo_b']}",
           f"  pymalloc: {u['pymalloc_b']}",
           f"  gc-tracked objects: {u['types_total_b']} B shallow; top types (per client: count, bytes):"]  # fmt: skip
    out += [f"    {name:60} {count:6} {size:8}" for name, count, size in u["types"]]
    out.append("  who holds them (per client):")
    for kind, rows in u["held_by"].items():
        out.append(f"    {kind}: " + ", ".join(f"{k} {v}" for k, v in rows))
    if "writing" in result["untraced"]:
        w = result["untraced"]["writing"]
        out.append(
            f"  while events flow: VmRSS {w['rss_kb']} KB; glibc {w['mallinfo_b']}; pymalloc {w['pymalloc_b']}"
        )
        out += [f"    {name:60} {count:6} {size:8}" for name, count, size in w["types"][:12]]
    left = result["untraced"]["left_after_close"]
    out.append(
        f"  after the clients left: VmRSS {left['rss_kb']} KB, tasks {left['tasks']}, types {left['types'][:5]}"
    )
    if result["traced"]:
        t = result["traced"]["traced"]
        out.append(
            f"\ntraced ({result['traced']['connected']} of {result['trace_clients']} clients): "
            f"{t['total_b_per_client']:.0f} B per client allocated through Python; by package:"
        )
        out += [f"    {name:40} {b:8}" for name, b in t["by_package"]]
        out.append("  by creator (innermost non-stdlib frame): bytes, blocks per client")
        out += [f"    {name:60} {b:8} {n:6}" for name, b, n in t["by_creator"]]
        out.append("  by allocating line:")
        out += [f"    {name:60} {b:8}" for name, b in t["by_line"]]
        if "traced_writing" in result["traced"]:
            t = result["traced"]["traced_writing"]
            out.append(
                f"\ntraced, added while events flow: {t['total_b_per_client']:.0f} B per client; by creator:"
            )
            out += [f"    {name:60} {b:8} {n:6}" for name, b, n in t["by_creator"]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument(
        "--tasks", type=int, default=40, help="tasks the clients follow (clients / tasks each)"
    )
    parser.add_argument("--trace-frames", type=int, default=12, help="tracemalloc depth; 0: no traced run")
    parser.add_argument("--trace-clients", type=int, default=200, help="clients of the traced run")
    parser.add_argument(
        "--write-seconds",
        type=float,
        default=0.0,
        help="then 25 tokens/s per task this long (figures halfway), and every stream completes",
    )
    parser.add_argument(
        "--waves", type=int, default=1, help="connect the clients in this many bursts, one after the other"
    )
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for the API process (e.g. PYTHONMALLOC=malloc)"
    )
    args = parser.parse_args(argv)
    if args.clients % args.tasks or args.trace_clients % args.tasks:
        sys.exit("--clients and --trace-clients must be multiples of --tasks")
    env_extra = dict(item.split("=", 1) for item in args.env)
    result = asyncio.run(
        run(
            args.clients,
            args.tasks,
            args.trace_frames,
            args.trace_clients,
            args.waves,
            env_extra,
            args.write_seconds,
        )
    )
    from bench import provenance

    result |= provenance(False) | {"args": vars(args)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sse_memory.json").write_text(json.dumps(result, indent=1))
    print(report(result))


if __name__ == "__main__":
    main()
