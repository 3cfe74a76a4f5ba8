"""Scenario 9: a worker killed between taking a job and starting it, and cancelling a task
that no worker holds.

arq marks a job it takes with an in-progress key; while the key exists no other worker
runs the job. The kill here lands in the one window the job's own lease does not cover:
after arq took the job, before the job function (and its lease) started. The paused worker
(``tests/reliability/paused_worker.py``) is the production worker with only arq's
``on_job_start`` hook replaced by one that reports the job and never returns, so the kill
hits that window every time instead of by luck.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix

from agentstream.streams import FencedError, Reader, StreamsSettings, TaskStore
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.harness import submit_task, until_completed
from tests.processes import Child, WorkerProcess, child_env, stopping
from tests.reliability.invariants import assert_stream_sound
from tests.reliability.paused_worker import TAKEN

pytestmark = pytest.mark.reliability

#: 5 s: the taken job's key must still be there when the test reads its TTL, after the
#: paused worker's report reached the test through its log (a loaded machine may be slow)
LEASE_S = 5
#: how long past the lease a second worker may take to finish the task: its start-up, one
#: queue poll and a short scripted run, with room for a loaded 2-core machine. Without the
#: fix the job stayed blocked for arq's job timeout + 10 s (680 s by default).
MARGIN_S = 40


class PausedWorker(WorkerProcess):
    """The production worker that takes one job and never starts it."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        Child.__init__(self, [sys.executable, "-m", "tests.reliability.paused_worker"], env, log_path)

    async def took_job(self, timeout_s: float = 30.0) -> str:
        async with asyncio.timeout(timeout_s):
            while TAKEN not in self.log():
                self.assert_running()
                await asyncio.sleep(0.02)
        line = next(line for line in self.log().splitlines() if line.startswith(TAKEN))
        return line.removeprefix(TAKEN).strip()


@pytest.fixture
def worker_env(settings: StreamsSettings, llm: ScriptedLLMServer) -> dict[str, str]:
    """The workers' environment: the test's Redis prefix and model, a short lease."""
    return child_env(settings.redis_url, settings.prefix, llm.base_url, AGENTSTREAM_LEASE_S=str(LEASE_S))


async def replay(reader: Reader, task_id: str) -> list[dict[str, Any]]:
    return [event async for _, event in reader.replay(task_id)]


async def until_job_gone(pool: ArqRedis, task_id: str, timeout_s: float = 30.0) -> None:
    """arq deletes the job key when a run of the job finishes it (polled: no event)."""
    async with asyncio.timeout(timeout_s):
        while await pool.exists(job_key_prefix + task_id):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_a_worker_killed_after_taking_a_job_leaves_it_to_another_within_the_lease(
    worker_env: dict[str, str], store: TaskStore, reader: Reader, arq_pool: ArqRedis, tmp_path: Path
) -> None:
    paused = PausedWorker(worker_env, tmp_path / "paused.log")
    with stopping(paused):
        await paused.ready()
        task_id = await submit_task(store, arq_pool, input="What is 17 * 23?", agent="hybrid")
        assert await paused.took_job() == task_id
        # The window: arq holds the job, the job function never ran, nothing is leased.
        ttl_ms = await arq_pool.pttl(in_progress_key_prefix + task_id)
        assert 0 < ttl_ms <= LEASE_S * 1000, f"the taken job is blocked for {ttl_ms} ms"
        assert [e["type"] for e in await replay(reader, task_id)] == ["queued"]
        paused.kill()
        killed_at = time.monotonic()
    second = WorkerProcess(worker_env, tmp_path / "second.log")
    with stopping(second):
        events = await until_completed(reader, task_id, LEASE_S + MARGIN_S)
        took_s = time.monotonic() - killed_at
    assert_stream_sound(events, status="succeeded")
    assert events[-1]["attempt"] == 1  # the killed worker never opened an attempt
    assert "391" in next(e for e in events if e["type"] == "result")["output"]
    print(f"\nscenario 9: the job of a worker killed before starting it finished {took_s:.1f}s later")


@pytest.mark.timeout(90)
async def test_cancelling_a_task_no_worker_holds_ends_it_at_once(
    worker_env: dict[str, str],
    store: TaskStore,
    reader: Reader,
    arq_pool: ArqRedis,
    llm: ScriptedLLMServer,
    tmp_path: Path,
) -> None:
    task_id = await submit_task(
        store, arq_pool, input="What is 17 * 23?", agent="hybrid"
    )  # queued; no worker runs
    meta = await store.request_cancel(task_id, "changed my mind")
    assert meta.done and meta.status == "cancelled"
    events = await replay(reader, task_id)  # no waiting: the cancel itself ended it
    assert [e["type"] for e in events] == ["queued", "cancelled", "completed"]
    assert events[1]["reason"] == "changed my mind"
    assert events[2]["status"] == "cancelled" and events[2]["success"] is False
    assert_stream_sound(events, status="cancelled")
    again = await store.request_cancel(task_id, "twice")  # idempotent
    assert again.done and await replay(reader, task_id) == events

    # A worker that takes the job afterwards finds the task ended and writes nothing.
    worker = WorkerProcess(worker_env, tmp_path / "worker.log")
    with stopping(worker):
        await worker.ready()
        await until_job_gone(arq_pool, task_id)
    assert await replay(reader, task_id) == events
    assert llm.requests == 0


@pytest.mark.timeout(60)
async def test_cancelling_a_task_whose_worker_died_fences_it_and_ends_it_at_once(
    store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    task_id = await submit_task(store, arq_pool, input="What is 17 * 23?", agent="hybrid")
    # An attempt ran and streamed, then its worker vanished: its lease copy has lapsed.
    writer = store.writer(await store.open_attempt(task_id))
    await writer.write({"type": "status", "status": "started"})
    await store.redis.hset(store.keys.meta(task_id), mapping={"lease_owner": "gone", "lease_until": 1})
    meta = await store.request_cancel(task_id, "stop")
    assert meta.done and meta.status == "cancelled" and meta.attempt == 2
    with pytest.raises(FencedError):  # the old attempt, were it alive, writes nothing
        await writer.write({"type": "token", "content": "late"})
    with pytest.raises(FencedError):
        await writer.aclose()
    events = await replay(reader, task_id)
    assert [e["type"] for e in events] == ["queued", "status", "retry", "cancelled", "completed"]
    assert [e["attempt"] for e in events[2:]] == [2, 2, 2]
    assert_stream_sound(events, status="cancelled")


@pytest.mark.timeout(60)
async def test_cancelling_a_task_a_worker_holds_leaves_it_to_that_worker(
    store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    task_id = await submit_task(store, arq_pool, input="What is 17 * 23?", agent="hybrid")
    attempt = await store.open_attempt(task_id)
    far = int(time.time() * 1000) + 60_000  # a live lease on the Redis clock
    await store.redis.hset(store.keys.meta(task_id), mapping={"lease_owner": "w", "lease_until": far})
    meta = await store.request_cancel(task_id, "stop")
    assert not meta.done and meta.cancel_requested and meta.cancel_reason == "stop"
    assert [e["type"] for e in await replay(reader, task_id)] == ["queued"]
    async with store.writer(attempt) as writer:  # the holder may still write, then ends it
        await writer.write({"type": "cancelled", "reason": "stop"})
        await writer.write({"type": "completed", "success": False, "status": "cancelled"})
    assert_stream_sound(await replay(reader, task_id), status="cancelled")


@pytest.mark.timeout(180)
async def test_cancels_racing_a_worker_taking_the_jobs_end_each_task_exactly_once(
    worker_env: dict[str, str], store: TaskStore, reader: Reader, arq_pool: ArqRedis, tmp_path: Path
) -> None:
    """Cancels land at random moments around the worker taking each job: before it, while
    its lease starts, while it streams. Whoever ends a task (the cancel or the worker), the
    stream ends ``cancelled``, ``completed`` exactly once and nothing follows."""
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    worker = WorkerProcess(worker_env, tmp_path / "worker.log")
    with stopping(worker):
        await worker.ready()
        task_ids = []
        for _ in range(12):
            task_ids.append(
                await submit_task(
                    store, arq_pool, input="What is 17 * 23? [slow:50] [tokens:40]", agent="hybrid"
                )
            )
            await asyncio.sleep(rng.uniform(0, 0.3))
            await store.request_cancel(task_ids[-1], "raced")
        streams = await asyncio.gather(*(until_completed(reader, t, 60) for t in task_ids))
    ended_early = 0
    for events in streams:
        assert_stream_sound(events, status="cancelled")
        assert [e["type"] for e in events[-2:]] == ["cancelled", "completed"], f"seed {seed}"
        ended_early += events[-1]["attempt"] == 1 and len(events) == 3
    print(f"\nscenario 9 (seed {seed}): 12 cancels, {ended_early} ended before the agent streamed anything")
