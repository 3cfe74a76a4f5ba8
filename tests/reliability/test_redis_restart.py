"""Scenario 3: the Redis server is SIGKILLed and restarted (same port, same data dir).

Durability model (what the tests below hold the system to):

- Redis runs with AOF. Every write reaches the AOF file with ``write(2)`` before Redis
  replies, so a **crash of the Redis process** (SIGKILL, OOM kill) loses nothing that was
  acknowledged, whatever ``appendfsync`` says: the data is in the OS page cache.
- ``appendfsync always`` also survives a **crash of the machine**: an event is on disk
  before its append is acknowledged, so nothing a reader saw can be lost.
- ``appendfsync everysec`` (Redis' default) may lose the last second (up to two) of writes
  when the machine crashes. A reader may already have seen events of that second. After the
  restart the stream is shorter than the reader's cursor, and a new attempt will write new
  events under the lost seqs. The reader must then be TOLD (a ``reset``: its cursor is
  ahead of the stream), never shown two different events under one seq.

A machine crash is simulated by restoring the data dir as it was before the last writes
(what an un-fsynced tail amounts to), so the everysec tests are deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agentstream.api.settings import ApiSettings
from agentstream.streams import Reader, ReaderHub, StreamsSettings, TaskStore, create_redis
from agentstream.streams.keys import public_task_id, scoped_task_id
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.api.server import serve
from tests.processes import ApiProcess, WorkerProcess, child_env, stopping
from tests.reliability.invariants import assert_same_as_replay, assert_stream_sound
from tests.reliability.procs import RedisProcess
from tests.reliability.sse import read_sse

KEY = {"Authorization": "Bearer key-t"}
AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")
AOF_EVERYSEC = ("--appendonly", "yes", "--appendfsync", "everysec")


@contextlib.asynccontextmanager
async def streams_on(redis_server: RedisProcess) -> AsyncIterator[tuple[StreamsSettings, TaskStore, Reader]]:
    settings = StreamsSettings(redis_url=redis_server.url, prefix="rr", block_ms=300, command_timeout_s=2.0)
    client = create_redis(settings)
    try:
        async with ReaderHub(client, settings) as hub:
            yield settings, TaskStore(client, settings), Reader(client, settings, hub)
    finally:
        await client.aclose()


# ------------------------------------------------------------ appendfsync always, live system


async def resilient_sse_reader(
    client: httpx.AsyncClient, task_id: str, seen: list[tuple[str, bytes]], deadline_s: float
) -> None:
    """Follow a task over SSE through anything (503s, refused connections, cut responses):
    reconnect with backoff and ``Last-Event-ID`` until the server ends the stream."""
    backoff = 0.05
    async with asyncio.timeout(deadline_s):
        while True:
            headers = dict(KEY)
            if seen:
                headers["Last-Event-ID"] = seen[-1][0]
            try:
                read = await read_sse(client, f"/v1/tasks/{task_id}/events", headers=headers, params={"mode": "all"},
                                      on_frame=lambda f: seen.append((f.id or "", f.data or b"")))  # fmt: skip
            except httpx.TransportError:
                read = None
            if read is not None:
                if read.status == 200 and read.ended and seen and b'"type":"completed"' in seen[-1][1]:
                    return
                if read.frames:
                    backoff = 0.05
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)


@pytest.mark.reliability
@pytest.mark.timeout(120)
async def test_redis_killed_and_restarted_with_appendfsync_always_loses_nothing(
    tmp_path: Path, llm: ScriptedLLMServer
) -> None:
    data = tmp_path / "redis"
    data.mkdir()
    server = RedisProcess(data, *AOF_ALWAYS)
    server.start()
    env = child_env(server.url, "rr", llm.base_url, AGENTSTREAM_API_KEYS="t:key-t", AGENTSTREAM_LEASE_S="2",
                    AGENTSTREAM_MAX_ATTEMPTS="10", AGENTSTREAM_REDIS_TIMEOUT_S="2")  # fmt: skip
    worker = WorkerProcess(env, tmp_path / "worker.log")
    api = ApiProcess(env, tmp_path / "api.log")
    with stopping(api, worker, server), contextlib.ExitStack() as stack:
        await asyncio.gather(worker.ready(), api.ready())
        async with httpx.AsyncClient(base_url=api.url, timeout=10.0) as client:
            task_ids = []
            for i in range(6):
                body = {"input": f"What is {i + 2} * 7? [slow:40] [tokens:250]", "agent": "hybrid"}
                response = await client.post("/v1/tasks", json=body, headers=KEY)
                assert response.status_code == 202, response.text
                task_ids.append(response.json()["task_id"])
            seen: dict[str, list[tuple[str, bytes]]] = {t: [] for t in task_ids}
            readers = [asyncio.create_task(resilient_sse_reader(client, t, seen[t], 90)) for t in task_ids]
            async with asyncio.timeout(20):  # until every task streams tokens
                while not all(sum(b'"type":"token"' in d for _, d in s) >= 5 for s in seen.values()):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            before = {t: list(s) for t, s in seen.items()}
            server.kill()
            killed_at = time.monotonic()
            await asyncio.sleep(2.0)
            server.start()
            restarted_in = time.monotonic() - killed_at
            await asyncio.sleep(1.0)
            worker_exit = worker.proc.poll()
            if worker_exit is not None:
                # What a supervisor would do; the exit itself is reported below.
                replacement = WorkerProcess(env, tmp_path / "worker-2.log")
                stack.callback(replacement.stop)
                await replacement.ready()
            await asyncio.gather(*readers)
        assert api.proc.poll() is None, "the API died with Redis"
        async with streams_on(server) as (_, _, reader):
            statuses = {}
            for task_id in task_ids:
                replayed = [event async for _, event in reader.replay(scoped_task_id("t", task_id))]
                assert_stream_sound(replayed)
                statuses[task_id] = replayed[-1]["status"]
                if statuses[task_id] != "succeeded":
                    error = next(e for e in reversed(replayed) if e["type"] == "error")
                    assert error["error"], replayed[-3:]
                # every acknowledged event a reader saw before the kill survived the restart
                stored = [(e["id"], orjson.dumps({**e, "sequence_number": e["seq"]})) for e in replayed]
                assert set(before[task_id]) <= set(stored)
                assert_same_as_replay(seen[task_id], stored)
        print(f"\nscenario 3 (always): Redis SIGKILLed with {sum(map(len, before.values()))} events seen, "
              f"back after {restarted_in:.1f}s; outcomes {sorted(statuses.values())}")  # fmt: skip
        # BUG (fails today): arq's poll loop dies on the first ConnectionError, so the
        # worker process exits with Redis instead of reconnecting with backoff.
        assert worker_exit is None, f"the worker exited ({worker_exit}) with Redis:\n{worker.log()[-1500:]}"


# ------------------------------------------------------------ appendfsync everysec, lost tail


async def write_events(store: TaskStore, task_id: str, n: int, start: int = 0) -> None:
    attempt = await store.open_attempt(task_id)
    async with store.writer(attempt) as writer:
        if attempt.number > 1:
            await writer.append({"type": "retry", "attempt": attempt.number, "reason": "redis lost data"})
        for i in range(start, start + n):
            await writer.append({"type": "token", "content": f"a{attempt.number}-w{i} "})


async def lose_the_tail(server: RedisProcess, data: Path, snapshot: Path) -> None:
    """A machine crash under everysec: the server dies, the un-fsynced tail with it."""
    server.kill()
    shutil.rmtree(data)
    shutil.copytree(snapshot, data)
    server.start()


@contextlib.asynccontextmanager
async def everysec_stream(tmp_path: Path) -> AsyncIterator[tuple[RedisProcess, str, str, int]]:
    """A task whose last 20 events a reader saw, then lost with the un-fsynced tail, and
    written again (different events under the same seqs) by a new attempt. Yields the
    server, the task id, the reader's cursor, and the last seq that survived."""
    data, snapshot = tmp_path / "redis", tmp_path / "snapshot"
    data.mkdir()
    server = RedisProcess(data, *AOF_EVERYSEC)
    server.start()
    try:
        task_id = scoped_task_id("t", f"rst-{random.randrange(10**9)}")  # the API's key id
        async with streams_on(server) as (_, store, reader):
            await store.create_task(task_id, owner="t", agent="llm", input="x")
            await write_events(store, task_id, 30)
            # Redis write(2)s the AOF before it replies, so a copy of the files now holds
            # these 30 events, fsynced or not: no need to wait for everysec's fsync.
            shutil.copytree(data, snapshot)  # what survives the crash
            await write_events(store, task_id, 20, start=30)  # the lost second
            seen = [event async for _, event in reader.replay(task_id)]
        assert seen[-1]["seq"] == 52
        await lose_the_tail(server, data, snapshot)
        async with streams_on(server) as (_, store, reader):
            last = await reader.last_cursor(task_id)
            assert last is not None and last < seen[-1]["id"], "the simulated loss did not happen"
            await write_events(store, task_id, 25, start=100)  # the worker's next attempt
            attempt = await store.open_attempt(task_id)
            async with store.writer(attempt) as writer:
                await writer.append({"type": "completed", "success": True, "status": "succeeded",
                                     "execution_time": 1.0})  # fmt: skip
        yield server, task_id, seen[-1]["id"], 31
    finally:
        server.stop()


def assert_told_reset(items: list[dict[str, Any]], survived_seq: int) -> None:
    """A ``reset`` back to the last surviving seq first, then the stream from there on:
    never an event under a seq the reader saw with other content."""
    assert items and items[0]["type"] == "reset", f"no reset first; got {items[:2]}"
    assert items[0]["last_seq"] == survived_seq, items[0]
    seqs = [e["seq"] for e in items[1:]]
    assert seqs == list(range(survived_seq + 1, survived_seq + 1 + len(seqs))), seqs
    assert items[-1]["type"] == "completed"


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_everysec_reader_ahead_of_a_shortened_stream_is_told_reset(tmp_path: Path) -> None:
    """``Reader.tail`` from a cursor past the end of the restored stream: ``reset``, then
    the new attempt's events (seq 32 on), which the reader had seen with other content."""
    async with everysec_stream(tmp_path) as (server, task_id, cursor, survived):
        async with streams_on(server) as (_, _, reader):
            async with asyncio.timeout(10):
                items = [event async for _, event in reader.tail(task_id, after=cursor)]
        assert_told_reset(items, survived)


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_everysec_sse_client_ahead_of_a_shortened_stream_gets_a_reset_frame(tmp_path: Path) -> None:
    """The same over SSE with ``Last-Event-ID``: an ``event: reset`` frame first."""
    async with everysec_stream(tmp_path) as (server, task_id, cursor, survived):
        async with streams_on(server) as (settings, _, _):
            api_settings = ApiSettings(streams=settings, api_keys=(("t", "key-t"),))
            async with serve(api_settings) as api, api.client(KEY) as client:
                read = await asyncio.wait_for(
                    read_sse(client, f"/v1/tasks/{public_task_id(task_id)}/events", headers={**KEY, "Last-Event-ID": cursor},
                             params={"mode": "all"}), 10)  # fmt: skip
        assert read.status == 200
        items = [{"type": f.event, **(orjson.loads(f.data) if f.data else {})} for f in read.frames]
        assert_told_reset(items, survived)
