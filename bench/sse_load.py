"""The load side of the API benches, run as child processes: the paced writer and the SSE
(or raw XREAD) clients of ``api_bench.fan_out``, also used by ``fanout_bench`` and ``scale_bench``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import resource
import sys
import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from agentstream.streams import StreamsSettings, TaskStore, create_redis
from agentstream.streams.keys import scoped_task_id
from bench.streams_bench import percentiles

PREFIX = "abench"
#: the tenant of the API's open mode (no keys), whose tasks the benches create
OWNER = "default"
TOKEN = re.compile(rb'"content":"(\d+\.\d+)"')


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def writer_child(url: str, mode: str, ids: list[str], rate: float, seconds: float) -> None:
    """Wait for ``go`` on stdin, then append ``rate`` tokens/s to each of ``ids`` for
    ``seconds`` (staggered across tasks), then end each stream; print a JSON summary."""
    settings = StreamsSettings(redis_url=url, prefix=PREFIX, maxlen=10_000_000)
    redis = create_redis(settings)
    store = TaskStore(redis, settings)
    # the API serves open mode's tenant: its tasks' key ids are scoped to it
    scoped = [scoped_task_id(OWNER, task_id) for task_id in ids]
    attempts = [await store.open_attempt(key_id) for key_id in scoped] if mode == "sse" else []
    print("ready", flush=True)
    if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
        return
    per_task, period = int(rate * seconds), 1 / rate
    written = 0
    start = time.perf_counter() + 0.01

    async def paced(index: int) -> AsyncIterator[None]:
        due = start + period * index / len(ids)
        for _ in range(per_task):
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            yield
            due += period

    async def sse_task(index: int) -> None:
        nonlocal written
        async with store.writer(attempts[index]) as out:
            async for _ in paced(index):
                out.append_nowait({"type": "token", "content": f"{time.time():.6f}"})
                written += 1
            out.append_nowait(
                {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0}
            )

    async def raw_task(index: int) -> None:
        nonlocal written
        key = f"{PREFIX}:raw:{{{ids[index]}}}"
        async for _ in paced(index):
            await redis.xadd(key, {"p": f"{time.time():.6f}"})
            written += 1
        await redis.xadd(key, {"end": "1"})

    job = sse_task if mode == "sse" else raw_task
    cpu0 = time.process_time()
    await asyncio.wait_for(asyncio.gather(*(job(i) for i in range(len(ids)))), seconds + 60)
    wall = time.perf_counter() - start
    await redis.aclose()
    print(json.dumps({"written": written, "wall_s": wall, "cpu_s": time.process_time() - cpu0}), flush=True)


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.frames = 0
        self.ready = 0
        self.completed = 0
        self.errors: dict[str, int] = {}

    def error(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1


async def sse_client(port: int, task_id: str, stats: Stats, go: asyncio.Event, deadline: float) -> None:
    """One SSE client on its own connection: counts frames, times token frames."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        request = (
            f"GET /v1/tasks/{task_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        async with asyncio.timeout_at(deadline):
            head = await reader.readuntil(b"\r\n\r\n")
            if head.split(b" ", 2)[1] != b"200":
                raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
            buf, first = b"", True
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    raise ConnectionError("the server closed the stream before `completed`")
                now = time.time()
                buf += data
                cut = buf.rfind(b"\n\n")
                if cut < 0:
                    continue
                block, buf = buf[:cut], buf[cut + 2 :]
                # chunked transfer encoding: size lines sit between whole frames only
                stats.frames += block.count(b"\nevent: ")
                if go.is_set():
                    stats.latencies.extend((now - float(t)) * 1000 for t in TOKEN.findall(block))
                if first:
                    first = False
                    stats.ready += 1
                if b"event: completed" in block:
                    stats.completed += 1
                    return
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def raw_client(url: str, key: str, stats: Stats, go: asyncio.Event, deadline: float) -> None:
    """One blocking XREAD reader on its own connection: the raw counterpart of a client."""
    redis = Redis.from_url(url, single_connection_client=True, socket_timeout=30)
    try:
        await redis.ping()
        stats.ready += 1
        last = "0-0"
        async with asyncio.timeout_at(deadline):
            while True:
                reply = await redis.xread({key: last}, block=5000, count=1000)
                now = time.time()
                for _, entries in reply or []:
                    for cursor, fields in entries:
                        last = cursor
                        stats.frames += 1
                        if b"end" in fields:
                            stats.completed += 1
                            return
                        if go.is_set():
                            stats.latencies.append((now - float(fields[b"p"])) * 1000)
    finally:
        await redis.aclose()


async def load_child(mode: str, url: str, port: int, ids: list[str], per_task: int, seconds: float) -> None:
    """Open ``per_task`` clients on each of ``ids``; print ``ready`` when all are in, take
    ``go`` on stdin (latencies count from then), print a JSON summary when all ended."""
    nofile = raise_nofile()
    stats, go = Stats(), asyncio.Event()
    deadline = asyncio.get_running_loop().time() + seconds + 120

    # every client connects at once: the connect burst is part of what is measured
    async def one(task_id: str) -> None:
        try:
            if mode == "sse":
                await sse_client(port, task_id, stats, go, deadline)
            else:
                await raw_client(url, f"{PREFIX}:raw:{{{task_id}}}", stats, go, deadline)
        except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            stats.error(exc)

    clients = [asyncio.create_task(one(t)) for t in ids for _ in range(per_task)]
    total = len(clients)
    async with asyncio.timeout(60):
        while True:  # Redis/API state is polled: no event to wait on
            if stats.ready + sum(stats.errors.values()) >= total:
                break
            await asyncio.sleep(0.05)
    print(f"ready {stats.ready}", flush=True)
    if (await asyncio.to_thread(sys.stdin.readline)).strip() == "go":
        go.set()
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.wait(clients)
    summary = {
        "clients": total, "connected": stats.ready, "completed": stats.completed, "errors": stats.errors,
        "token_latencies": len(stats.latencies), "frames": stats.frames, "nofile": nofile,
        "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - t0,
        **(percentiles(stats.latencies) if stats.latencies else {}),
    }  # fmt: skip
    print(json.dumps(summary), flush=True)
