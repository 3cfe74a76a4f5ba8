"""What many tests need, written once: the scripted model, an arq pool on a test's queue,
a task submitted the way the API does, waiting for a task's end or one of its events,
waiting for a condition.

Fixtures built on these live in ``tests/conftest.py`` (``llm``, ``arq_pool``); a test
module that needs another queue or model behaviour defines its own fixture from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from arq import ArqRedis, Worker, create_pool

from agentstream.streams import Reader, TaskStore
from agentstream.worker.config import WorkerConfig
from agentstream.worker.enqueue import enqueue_task
from agentstream.worker.payload import TaskRequest

Events = list[dict[str, Any]]

#: how long a scripted task may take end to end on a loaded 2-core machine
TASK_TIMEOUT_S = 30.0


@contextlib.asynccontextmanager
async def arq_pool_for(config: WorkerConfig) -> AsyncIterator[ArqRedis]:
    """An arq pool on ``config``'s queue Redis and queue name."""
    pool = await create_pool(config.redis_settings(), default_queue_name=config.queue_name)
    try:
        yield pool
    finally:
        await pool.aclose()


async def submit_task(
    store: TaskStore, pool: ArqRedis, *, task_id: str | None = None, owner: str = "t", **request: Any
) -> str:
    """Create a task (its stream starts with ``queued``) and enqueue its job, as the API
    does; ``request`` holds the :class:`TaskRequest` fields (``input``, ``agent``, ...)."""
    req = TaskRequest(**request)
    task_id = task_id or f"tsk_{uuid.uuid4().hex}"
    await store.create_task(task_id, owner=owner, agent=req.agent, input=req.input, request=req.model_dump())
    await enqueue_task(pool, task_id)  # on the pool's queue
    return task_id


async def until_completed(reader: Reader, task_id: str, timeout_s: float = TASK_TIMEOUT_S) -> Events:
    """Every event of the task, once its ``completed`` is stored (a live tail, no polling)."""
    async with asyncio.timeout(timeout_s):
        return [event async for _, event in reader.tail(task_id)]


async def until_event(reader: Reader, task_id: str, kind: str, timeout_s: float = TASK_TIMEOUT_S) -> None:
    """Wait until the task's first event of type ``kind`` is stored (a live tail, no
    polling); fails if the task completes without one."""
    async with asyncio.timeout(timeout_s):
        async for _, event in reader.tail(task_id):
            if event["type"] == kind:
                return
    raise AssertionError(f"the task completed without a {kind!r} event")


def default_sigint() -> None:
    """``preexec_fn`` of a child a test stops with Ctrl-C. A suite started as a background
    job (``pytest &`` in a non-interactive shell) runs with SIGINT ignored, and a child
    inherits that: Python then keeps ignoring it, and the child would never stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Wait until ``check()`` is true, for state that announces no event of its own (a
    gauge, a key's TTL); fails with a clear message at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"condition not reached in {timeout_s} s"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def worker_task(worker: Worker, poll_delay_s: float) -> AsyncIterator[asyncio.Task[None]]:
    """Run an in-process arq ``worker``; yields the task running it. On exit it stops as
    arq's SIGTERM handling and ``Worker.run()`` do: stop taking jobs, end the poll loop once
    its current iteration is over (cancelling it inside arq's WATCH pipeline in
    ``start_jobs`` leaks that pipeline's connection), and only then let ``close()`` cancel
    the running jobs and close the pool."""
    main = asyncio.create_task(worker.async_run())
    try:
        yield main
    finally:
        worker.allow_pick_jobs = False
        await asyncio.sleep(poll_delay_s * 3)
        main.cancel()
        async with asyncio.timeout(10):
            await asyncio.wait([main])
            await worker.close()
