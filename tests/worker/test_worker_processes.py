"""Crash recovery and graceful shutdown with real worker processes (``python -m worker``).

Two workers share the test Redis and the scripted model; the one running a task is
SIGKILLed (or SIGTERMed) mid-stream, and the other must take the task over: after the lease
expires for a kill, at once for a shutdown. The streams must still be well formed, with one
``completed`` and no tool run twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis

from agentstream.streams import Reader, StreamsSettings, TaskStore
from agentstream.worker.config import WorkerConfig
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.harness import Events, submit_task, until_completed
from tests.processes import WorkerProcess, child_env, stopping

LEASE_S = 5.0
# A hybrid task: one calculator call, then 60 slow tokens (~6 s), so there is time to kill
# its worker after the tool result was recorded.
SLOW_PROMPT = "What is 17 * 23? [slow:100] [tokens:60]"


@pytest.fixture
def lease_s() -> float:
    """The workers' lease (a test parametrizes it to have its own)."""
    return LEASE_S


@pytest.fixture
def worker_env(settings: StreamsSettings, llm: ScriptedLLMServer, lease_s: float) -> dict[str, str]:
    return child_env(settings.redis_url, settings.prefix, llm.base_url, AGENTSTREAM_LEASE_S=str(lease_s))


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    procs = [WorkerProcess(worker_env, tmp_path / f"worker-{i}.log") for i in range(2)]
    with stopping(*procs):
        yield procs


@pytest.fixture
def worker_config(worker_env: dict[str, str]) -> WorkerConfig:
    return WorkerConfig.from_env(worker_env)  # what the worker processes read


async def running_worker_pid(store: TaskStore, reader: Reader, task_id: str) -> int:
    """Wait until the task's tool result and a few tokens are stored; the pid holding it."""
    tokens_after_result: int | None = None
    async with asyncio.timeout(20):
        async for _, event in reader.tail(task_id):
            if event["type"] == "completed":
                raise AssertionError("the task ended before its worker could be stopped")
            if event["type"] == "tool_result":
                tokens_after_result = 0
            elif event["type"] == "token" and tokens_after_result is not None:
                tokens_after_result += 1
                if tokens_after_result >= 5:
                    break
    owner = await store.redis.hget(store.keys.meta(task_id), "lease_owner")
    assert owner, "a running task records its lease owner"
    return int(owner.split(":")[1])


async def seconds_until_retry(reader: Reader, task_id: str, since: float) -> float:
    """Wait for the task's ``retry`` event; seconds from ``since`` (monotonic) to it."""
    async with asyncio.timeout(30):
        async for _, event in reader.tail(task_id):
            if event["type"] == "retry":
                return time.monotonic() - since
    raise AssertionError("the task completed without being retried")


def assert_recovered_stream(events: Events) -> None:
    assert events[0]["type"] == "queued"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types.count("completed") == 1 and types[-1] == "completed"
    assert events[-1]["status"] == "succeeded" and events[-1]["attempt"] == 2
    retry = events[types.index("retry")]
    assert retry["attempt"] == 2
    assert all(e["attempt"] == 1 for e in events[1 : types.index("retry")])
    # the calculator's result was recorded by attempt 1 and never produced again
    results = Counter(e["tool_call_id"] for e in events if e["type"] == "tool_result")
    assert len(results) == 1 and set(results.values()) == {1}
    assert all(e["attempt"] == 1 for e in events if e["type"] == "tool_result")


async def test_sigkilled_worker_task_is_recovered_by_the_other(
    workers: list[WorkerProcess], store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    await asyncio.gather(*(w.ready() for w in workers))
    task_ids = [await submit_task(store, arq_pool, input=SLOW_PROMPT, agent="hybrid") for _ in range(2)]
    pid = await running_worker_pid(store, reader, task_ids[0])
    victim = next(w for w in workers if w.pid == pid)
    survivor = next(w for w in workers if w.pid != pid)
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    assert await victim.exited(5) == -signal.SIGKILL

    # the lease lapses within LEASE_S, then the survivor's next queue poll takes the job
    assert await seconds_until_retry(reader, task_ids[0], killed_at) < 2 * LEASE_S
    for task_id in task_ids:
        events = await until_completed(reader, task_id, 30)
        if any(e["type"] == "retry" for e in events):
            assert_recovered_stream(events)
        else:  # the survivor ran it from the start
            assert [e["type"] for e in events].count("completed") == 1
    # the survivor clears its lease from the meta once the job returns (polled: no event)
    async with asyncio.timeout(20):
        while await store.redis.hget(store.keys.meta(task_ids[0]), "lease_owner"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert survivor.proc.poll() is None


# A lease long enough that a handover (about the 1 s grace) and a lapse (a lease after the
# last renewal, which came at most a third of it before the stop) are 10 s apart.
@pytest.mark.parametrize("lease_s", [20.0])
async def test_sigterm_hands_the_task_over_without_waiting_for_the_lease(
    workers: list[WorkerProcess], store: TaskStore, reader: Reader, arq_pool: ArqRedis, lease_s: float
) -> None:
    await asyncio.gather(*(w.ready() for w in workers))
    task_id = await submit_task(store, arq_pool, input=SLOW_PROMPT, agent="hybrid")
    pid = await running_worker_pid(store, reader, task_id)
    victim = next(w for w in workers if w.pid == pid)
    os.kill(victim.pid, signal.SIGTERM)
    stopped_at = time.monotonic()
    # arq gives the task the 1 s grace to finish (it cannot), then cancels it: the attempt
    # flushes, arq deletes the in-progress key and leaves the job queued, so the other
    # worker resumes it at once instead of after the lease
    assert await seconds_until_retry(reader, task_id, stopped_at) < lease_s / 2
    assert await victim.exited(10) == 0
    events = await until_completed(reader, task_id, 30)
    assert_recovered_stream(events)
    assert next(e for e in events if e["type"] == "retry")["reason"].startswith("attempt 1 was interrupted")
    log = victim.log()
    assert "interrupted by shutdown" in log
    assert "Traceback" not in log
