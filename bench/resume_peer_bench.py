"""Resuming a live stream: agentstream vs Vercel's ``resumable-stream`` (issue 5).

Run: ``python -m bench.resume_peer_bench [--events 5000] [--reconnects 100] [--quick]``.
Needs ``npm ci`` (or ``npm install``) in ``bench/peers/resumable/`` once. Starts its own
redis-server; both systems use it, one after the other.

Every producer emits ``--events`` events, one every ``--interval-ms``, the event's index in
its payload, in a process of its own (agentstream: a Python process appending tokens through
``TaskStore.writer``; resumable-stream: ``node peer.mjs produce``, ``createNewResumableStream``
with a ``ReadableStream`` of ``"<index>\\n"`` lines). Two scenarios per system:

1. **reconnects**: a reader in another process reads ``--every`` events, disconnects, waits
   ``--pause-ms``, resumes — ``--reconnects`` times mid-stream — then reads to the end.
   agentstream resumes by cursor: ``Reader.tail(task_id, after=cursor)`` (library) and
   ``GET /v1/tasks/{id}/events`` with ``Last-Event-ID`` through the API (HTTP, SSE);
   resumable-stream by ``resumeExistingStream(id, skipCharacters=characters read)``.
   Measured: time from the resume call to the first event, and events lost / duplicated /
   out of order (each index must arrive exactly once, in order).
2. **producer killed**: the producer gets SIGKILL half-way (by time); the connected reader
   waits ``--stall-ms`` for more, then resumes once. For agentstream, a second process then
   takes the task over the way a worker does after the lease expires (``open_attempt``, which
   fences the dead attempt; a ``retry`` event; continues after the last stored index) and the
   reader, resumed by cursor, reads to ``completed``. resumable-stream has no takeover: its
   history lives in the producer's memory.

Writes ``bench/results/resume.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from agentstream.streams import Reader, ReaderHub, StreamsSettings, TaskStore, create_redis
from agentstream.streams.keys import scoped_task_id
from bench import machine
from bench.api_bench import api_process
from bench.procs import read_line, render, spawn, stop_child
from bench.resume_readers import Check, library_reader, resume_stats, sse_reader
from bench.sse_load import PREFIX
from tests.redis_server import redis_node

RESULTS = Path(__file__).parent / "results"
PEER = Path(__file__).parent / "peers" / "resumable"
OWNER = "default"


# --------------------------------------------------------------------------- agentstream


async def new_task(redis: Any, settings: StreamsSettings, name: str) -> str:
    """A new task of the open-mode tenant; returns its key id (the API's path takes the
    public id, which ``sse_reader`` derives)."""
    task_id = scoped_task_id(OWNER, f"rb_{name}_{os.urandom(4).hex()}")
    await TaskStore(redis, settings).create_task(task_id, owner=OWNER, agent="llm", input="resume bench")
    return task_id


def writer_code(url: str, task_id: str, events: int, interval_ms: float, takeover: bool) -> str:
    return (
        "import asyncio, bench.resume_readers as b; "
        f"asyncio.run(b.writer_child({url!r}, {task_id!r}, {events}, {interval_ms}, {takeover}))"
    )


async def start_writer(
    url: str, task_id: str, events: int, interval_ms: float, takeover: bool = False
) -> Any:
    proc = await spawn("-c", writer_code(url, task_id, events, interval_ms, takeover))
    if await read_line(proc, 30) != "ready":
        raise RuntimeError("the writer did not get ready")
    return proc


async def go(proc: Any) -> None:
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()


async def ours_reconnects(url: str, redis: Any, settings: StreamsSettings, base: str, a: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {}
    for via in ("library", "sse"):
        task_id = await new_task(redis, settings, via)
        writer = await start_writer(url, task_id, a.events, a.interval_ms)
        check = Check()
        try:
            await go(writer)
            t0 = time.perf_counter()
            if via == "library":
                async with ReaderHub(redis, settings) as hub:
                    got = await asyncio.wait_for(
                        library_reader(Reader(redis, settings, hub), task_id, check, a.reconnects, a.every,
                                       a.pause_ms, a.stall_ms / 1000), 120)  # fmt: skip
            else:
                got = await asyncio.wait_for(
                    sse_reader(base, task_id, check, a.reconnects, a.every, a.pause_ms, a.stall_ms / 1000),
                    120,
                )
            wall = (time.perf_counter() - t0) * 1000
            produced = json.loads(await read_line(writer, 60))
        finally:
            await stop_child(writer)
        out[via] = {**check.summary(a.events), "reconnects": got["reconnects"],
                    "time_to_first_event_after_resume_ms": resume_stats(got["resumes"]),
                    "producer": produced, "reader_wall_ms": wall}  # fmt: skip
    return out


async def ours_killed(
    url: str, redis: Any, settings: StreamsSettings, a: argparse.Namespace
) -> dict[str, Any]:
    task_id = await new_task(redis, settings, "killed")
    writer = await start_writer(url, task_id, a.events, a.interval_ms)
    check = Check()
    kill_after_s = a.events * a.interval_ms / 2000
    async with ReaderHub(redis, settings) as hub:
        reader = Reader(redis, settings, hub)
        try:
            await go(writer)
            reading = asyncio.create_task(
                library_reader(reader, task_id, check, 0, sys.maxsize, 0, a.stall_ms / 1000)
            )
            await asyncio.sleep(kill_after_s)
            os.kill(writer.pid, signal.SIGKILL)
            killed_at = time.perf_counter()
            await asyncio.wait_for(writer.wait(), 10)
            first = await asyncio.wait_for(reading, 60)
            stall_detected_ms = (time.perf_counter() - killed_at) * 1000
        finally:
            await stop_child(writer)
        received_before_kill = check.received
        stored = int(await redis.xlen(settings.keys.events(task_id)))
        meta = await TaskStore(redis, settings).meta(task_id)
        # a reader arriving now: what is still there?
        fresh = Check()
        async for _, event in reader.replay(task_id):
            fresh.event(event)
        # takeover: a new attempt in another process, as the worker lease would hand it on
        t_take = time.perf_counter()
        takeover = await start_writer(url, task_id, a.events, a.interval_ms, takeover=True)
        try:
            await go(takeover)
            resumed = await asyncio.wait_for(
                library_reader(
                    reader, task_id, check, 0, sys.maxsize, 0, a.stall_ms / 1000, cursor=first["cursor"]
                ),
                120,
            )
            takeover_summary = json.loads(await read_line(takeover, 60))
        finally:
            await stop_child(takeover)
        takeover_ms = (time.perf_counter() - t_take) * 1000
    return {
        "kill_after_ms": kill_after_s * 1000, "received_before_kill": received_before_kill,
        "stall_detected_ms": stall_detected_ms, "stored_entries_at_kill": stored,
        "meta_status_at_kill": meta.status if meta else None,
        "fresh_reader_after_kill": {"tokens": fresh.received, "lost": fresh.lost, "duplicated": fresh.duplicated,
                                    "seq_gaps": fresh.seq_gaps},
        "takeover": {**takeover_summary, "reader_resumed_ms": takeover_ms, "reader_reconnected": bool(resumed)},
        "reader_final": check.summary(a.events),
        "note": "takeover = a second process calling open_attempt (fences the dead attempt), appending retry and "
        "continuing after the last stored index: what the worker does when the dead worker's lease (lease_s, "
        "default 15 s) runs out. The lease wait itself is not part of this figure.",
    }  # fmt: skip


# --------------------------------------------------------------------------- resumable-stream


def node_env(url: str) -> dict[str, str]:
    return {"REDIS_URL": url}


async def spawn_node(url: str, *args: str) -> asyncio.subprocess.Process:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH")
    return await asyncio.create_subprocess_exec(
        node, str(PEER / "peer.mjs"), *args, cwd=PEER, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, **node_env(url)}, limit=1 << 24,
    )  # fmt: skip


async def publishes(redis: Any) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))


async def peer_run(url: str, redis: Any, a: argparse.Namespace, kill: bool) -> dict[str, Any]:
    stream_id = f"rs_{'killed' if kill else 'reconnects'}_{os.urandom(4).hex()}"
    producer = await spawn_node(url, "produce", stream_id, str(a.events), str(a.interval_ms))
    reconnects = 0 if kill else a.reconnects
    every = a.events * 10 if kill else a.every
    reader = await spawn_node(url, "read", stream_id, str(a.events), str(reconnects), str(every),
                              str(a.pause_ms), str(a.stall_ms))  # fmt: skip
    out: dict[str, Any] = {}
    published0 = await publishes(redis)
    try:
        for proc in (producer, reader):
            if await read_line(proc, 30) != "ready":
                raise RuntimeError("a node peer did not get ready")
        await go(producer)
        await asyncio.sleep(0.005)  # the producer's first event exists before the reader's first resume
        await go(reader)
        if kill:
            await asyncio.sleep(a.events * a.interval_ms / 2000)
            os.kill(producer.pid, signal.SIGKILL)
            await asyncio.wait_for(producer.wait(), 10)
            out["kill_after_ms"] = a.events * a.interval_ms / 2
        else:
            out["producer"] = json.loads(await read_line(producer, 120))
        summary = json.loads(await read_line(reader, 150))
    finally:
        await stop_child(producer)
        await stop_child(reader)
    # evidence for the listener list that is never pruned: PUBLISH calls vs events
    out["redis_publish_calls"] = await publishes(redis) - published0
    resumes = [r["first_event_ms"] for r in summary["resumes"] if r["connection"] > 0]
    out.update({k: summary[k] for k in ("received", "lost", "duplicated", "out_of_order", "missing_at_end",
                                        "ended", "reconnects", "stalled", "after_stall", "errors")})  # fmt: skip
    if not kill:
        out["time_to_first_event_after_resume_ms"] = resume_stats(resumes)
    return out


# --------------------------------------------------------------------------- run


async def run(a: argparse.Namespace) -> dict[str, Any]:
    if not (PEER / "node_modules" / "resumable-stream").exists():
        raise RuntimeError(f"run `npm ci` in {PEER} first")
    results: dict[str, Any] = {}
    with redis_node() as url:
        settings = StreamsSettings(redis_url=url, prefix=PREFIX, maxlen=10_000_000)
        redis = create_redis(settings)
        try:
            async with api_process(url) as (base, _pid):
                results["agentstream_reconnects"] = await ours_reconnects(url, redis, settings, base, a)
            results["resumable_reconnects"] = await peer_run(url, redis, a, kill=False)
            results["agentstream_killed"] = await ours_killed(url, redis, settings, a)
            results["resumable_killed"] = await peer_run(url, redis, a, kill=True)
        finally:
            await redis.aclose()
    lock = json.loads((PEER / "package-lock.json").read_text())["packages"]
    results["versions"] = {"resumable-stream": lock["node_modules/resumable-stream"]["version"],
                           "redis (npm)": lock["node_modules/redis"]["version"]}  # fmt: skip
    results["params"] = {"events": a.events, "interval_ms": a.interval_ms, "reconnects": a.reconnects,
                         "every": a.every, "pause_ms": a.pause_ms, "stall_ms": a.stall_ms}  # fmt: skip
    results["guarantees"] = GUARANTEES
    results["meaning"] = __doc__
    results["machine"] = machine()
    return results


GUARANTEES = {
    "agentstream": "every event is an entry of a Redis Stream before any reader sees it; a reader resumes from "
    "its cursor (Last-Event-ID) in the stream itself, so it neither loses nor repeats events, whichever process "
    "serves it, for as long as the stream is retained (retention_s after completion). If the producer dies, what "
    "it stored stays readable; the task is re-run by another worker after the lease (new attempt, fenced, "
    "continuing from the stored events); events it produced but had not flushed are lost from that attempt and "
    "produced again by the next one (seq stays dense).",
    "resumable-stream": "the stream's content is kept in the producer process's memory (an array of chunks); "
    "Redis carries only a sentinel key and pub/sub messages. A resuming reader asks the producer over pub/sub to "
    "replay from skipCharacters; nothing is persisted. If the producer dies, no reader can recover anything: "
    "resumeExistingStream fails after its 1 s ack timeout ('Timeout waiting for ack') while the sentinel stays "
    "'1' for 24 h, and an already connected reader is not told (its watchdog only closes on DONE or an expired "
    "sentinel). Each resume also adds a listener the producer publishes every later chunk to until the end, "
    "even after that reader left (listenerChannels is never pruned).",
}


def table(r: dict[str, Any]) -> str:
    lib, sse, rs = (
        r["agentstream_reconnects"]["library"],
        r["agentstream_reconnects"]["sse"],
        r["resumable_reconnects"],
    )
    ok, rk = r["agentstream_killed"], r["resumable_killed"]
    t = lambda x, k: f"{x['time_to_first_event_after_resume_ms'].get(k, float('nan')):.1f}"  # noqa: E731
    lost = lambda x: f"{x['lost']} / {x['duplicated']} / {x['missing_at_end']}"  # noqa: E731
    rows = [
        (f"reconnects done (of {r['params']['reconnects']})", str(lib["reconnects"]), str(sse["reconnects"]), str(rs["reconnects"])),
        ("resume -> first event p50 ms", t(lib, "p50_ms"), t(sse, "p50_ms"), t(rs, "p50_ms")),
        ("resume -> first event p99 ms", t(lib, "p99_ms"), t(sse, "p99_ms"), t(rs, "p99_ms")),
        ("resume -> first event max ms", t(lib, "max_ms"), t(sse, "max_ms"), t(rs, "max_ms")),
        ("lost / duplicated / missing at end", lost(lib), lost(sse), lost(rs)),
        ("killed: events seen before kill", str(ok["received_before_kill"]), "", str(rk["received"])),
        ("killed: a new reader recovers", f"{ok['fresh_reader_after_kill']['tokens']} tokens", "",
         json.dumps(rk["after_stall"])),
        ("killed: stream finished after takeover", f"{ok['reader_final']['ended']} ({lost(ok['reader_final'])})", "", "no takeover (history was in the producer)"),
    ]  # fmt: skip
    return render(("measure", "agentstream Reader.tail", "agentstream SSE API", "resumable-stream"), rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--interval-ms", type=float, default=1.0)
    parser.add_argument("--reconnects", type=int, default=100)
    parser.add_argument(
        "--every", type=int, default=25, help="events read per connection before a disconnect"
    )
    parser.add_argument("--pause-ms", type=float, default=20.0, help="time disconnected before each resume")
    parser.add_argument(
        "--stall-ms", type=float, default=2000.0, help="silence after which a reader gives up"
    )
    parser.add_argument("--quick", action="store_true", help="1500 events, 20 reconnects")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.reconnects = 1500, 20
    results = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "resume.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nwritten: {RESULTS / 'resume.json'}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
