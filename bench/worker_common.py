"""The worker under test and its tasks, shared by ``worker_bench`` and ``worker_pace``: the
scripted model process, the production arq worker in this process, task creation and the
task feed followed to the last ``ended``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from arq import create_pool
from arq.connections import ArqRedis

from agentstream.streams import StreamsSettings, TaskStore, create_redis
from agentstream.streams.codec import now_us
from agentstream.worker.config import WorkerConfig
from agentstream.worker.model import ModelSettings
from agentstream.worker.payload import TaskRequest
from agentstream.worker.settings import create_worker
from bench.procs import read_line, spawn, stop_child
from tests.redis_server import redis_node

AGENT_ID = "llm-agent"
T = TypeVar("T")


@contextlib.asynccontextmanager
async def scripted_model() -> AsyncIterator[tuple[str, int]]:
    """The scripted model in its own process; yields ``(base_url, pid)``."""
    proc = await spawn("-m", "agentstream.worker.scripted_llm", "--port", "0", "--log-level", "warning")
    try:
        line = await read_line(proc, 20)
        prefix = "scripted LLM listening on "
        if not line.startswith(prefix):
            raise RuntimeError(f"unexpected first line from the scripted model: {line!r}")
        yield line[len(prefix) :], proc.pid
    finally:
        await stop_child(proc)


@contextlib.asynccontextmanager
async def running_worker(config: WorkerConfig) -> AsyncIterator[None]:
    """The production arq worker in this process (deps from ``build_deps``)."""
    worker = create_worker(config, handle_signals=False)
    main = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        # A job whose task already recorded `ended` may still be returning: let it, or
        # close() below would gather it cancelled and raise.
        if worker.tasks:
            await asyncio.wait(list(worker.tasks.values()), timeout=15)
        main.cancel()  # the poll loop ends before close() closes arq's pool, as Worker.run does
        async with asyncio.timeout(15):
            await asyncio.wait([main])
            await worker.close()


def run_on_worker_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on the event loop a worker process runs on (``create_worker``: uvloop
    when installed), so the worker measured here is the one deployed; the bare writer's
    column runs on the same loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def wakeups() -> int:
    """Voluntary context switches of this process so far (every thread): how often it slept
    and was woken. On this VM a wake-up costs tens of µs of CPU, so it is reported per event."""
    total = 0
    for status in Path("/proc/self/task").glob("*/status"):
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def prompt(tokens: int, slow_ms: int = 0) -> str:
    return f"[tokens:{tokens}]" + (f" [slow:{slow_ms}]" if slow_ms else "") + " bench"


async def create_tasks(store: TaskStore, n: int, text: str) -> list[str]:
    ids = [f"wb_{uuid.uuid4().hex[:20]}" for _ in range(n)]
    request = TaskRequest(input=text, agent="llm").model_dump()
    for task_id in ids:
        await store.create_task(task_id, owner="bench", agent="llm", input=text, request=request)
    return ids


async def feed_position(redis: Any, settings: StreamsSettings) -> str:
    newest = await redis.xrevrange(settings.keys.tasks, count=1)
    return str(newest[0][0]) if newest else "0-0"


async def wait_ended(
    redis: Any, settings: StreamsSettings, ids: list[str], after: str, timeout_s: float
) -> tuple[float, float, list[str]]:
    """Follow the task feed until every task in ``ids`` has an ``ended`` entry, at most
    ``timeout_s``: the time (perf_counter) and this process's CPU time when the last
    ``ended`` was read (a hang does not inflate them), and the tasks that
    never ended (their asyncio stacks are printed to stderr: why did they hang?)."""
    pending = set(ids)
    last, last_cpu = time.perf_counter(), time.process_time()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while pending:
                reply = await redis.xread({settings.keys.tasks: after}, block=1000, count=1000)
                for _, entries in reply or []:
                    for cursor, fields in entries:
                        after = cursor
                        if fields.get("kind") == "ended" and fields.get("task_id") in pending:
                            pending.discard(fields["task_id"])
                            last, last_cpu = time.perf_counter(), time.process_time()
    if pending:
        print(
            f"worker_bench: {len(pending)} of {len(ids)} tasks never ended within {timeout_s}s",
            file=sys.stderr,
        )
        dump_tasks()
    return last, last_cpu, sorted(pending)


def dump_tasks() -> None:
    """Print the stack of every asyncio task of this process."""
    for task in asyncio.all_tasks():
        print(f"--- {task!r}", file=sys.stderr)
        task.print_stack(limit=12, file=sys.stderr)


async def appended_events(
    redis: Any, settings: StreamsSettings, ids: list[str]
) -> tuple[int, dict[str, int]]:
    """Events appended after ``queued`` across ``ids`` (dense seqs), and the final statuses."""
    pipe = redis.pipeline(transaction=False)
    for task_id in ids:
        pipe.hmget(settings.keys.meta(task_id), ["seq", "status"])
    total, statuses = 0, {}
    for seq, status in await pipe.execute():
        total += int(seq or 0) - 1
        statuses[status] = statuses.get(status, 0) + 1
    return total, statuses


def agent_events(tokens: int) -> list[dict[str, Any]]:
    """What an LLM agent appends for a ``[tokens:N]`` answer (``completed`` aside)."""
    events: list[dict[str, Any]] = [{"type": "status", "status": "started"}]
    events += [{"type": "token", "content": f" w{i}"} for i in range(1, tokens + 1)]
    events.append(
        {"type": "usage", "prompt_tokens": 3, "completion_tokens": tokens, "total_tokens": tokens + 3}
    )
    events.append({"type": "result", "success": True, "content": "w1 ...", "agent_id": AGENT_ID})
    return events


class Stack(NamedTuple):
    redis: Any
    settings: StreamsSettings
    pool: ArqRedis
    model_pid: int
    worker: contextlib.AbstractAsyncContextManager[None]


@contextlib.asynccontextmanager
async def worker_stack(max_jobs: int, poll_delay_s: float = 0.05) -> AsyncIterator[Stack]:
    """A redis-server, the scripted model process and an arq pool; ``stack.worker`` runs
    the production worker in this process while entered (once per stack). It polls the
    queue every ``poll_delay_s`` (the worker's default is 0.5 s; the throughput run polls
    faster so that a burst of tasks starts at once)."""
    with redis_node() as url:
        settings = StreamsSettings(redis_url=url, prefix="wbench", maxlen=10_000_000)
        config = WorkerConfig(
            streams=settings, max_jobs=max_jobs, poll_delay_s=poll_delay_s, task_timeout_s=300.0
        )
        redis = create_redis(settings)
        pool = await create_pool(config.redis_settings(), default_queue_name=config.queue_name)
        try:
            async with scripted_model() as (base_url, model_pid):
                model = ModelSettings.from_env({"OPENAI_BASE_URL": base_url})
                worker = running_worker(dataclasses.replace(config, model=model))
                yield Stack(redis, settings, pool, model_pid, worker)
        finally:
            await pool.aclose()
            await redis.aclose()


async def paced_writer(store: TaskStore, attempt: Any, offset: float, tokens: int, slow_ms: int) -> None:
    """The bare writer appending an agent's events (``agent_events``) at the scripted
    model's pace: one token every ``slow_ms``, starting ``offset`` of an interval late."""
    period = slow_ms / 1000
    await asyncio.sleep(period * offset)
    async with store.writer(attempt) as out:
        due = time.perf_counter()
        for event in agent_events(tokens):
            await out.append({**event, "timestamp": now_us(), "agent_id": AGENT_ID})
            if event["type"] == "token":
                due += period
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await out.append({"type": "completed", "success": True, "status": "succeeded", "execution_time": 0})
