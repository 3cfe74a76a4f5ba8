"""The arq job end to end: a real arq ``Worker`` in this process, real Redis, the scripted
model over HTTP. Every test reads the task's stream back as a client would."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import Job

from agentstream.streams import Reader, StreamsSettings, TaskStore
from agentstream.worker.config import WorkerConfig
from agentstream.worker.enqueue import enqueue_task
from agentstream.worker.lease import Lease
from agentstream.worker.outcomes import retry_reason
from agentstream.worker.payload import EXPIRE_JOB_NAME, JOB_NAME, TaskRequest
from agentstream.worker.scripted_llm import ScriptedLLMServer
from agentstream.worker.settings import create_worker, worker_options
from agentstream.worker.tools import ToolRegistry, evaluate_arithmetic
from tests.harness import TASK_TIMEOUT_S, Events, eventually, submit_task, until_completed, until_event
from tests.worker.helpers import assert_well_formed, running_worker

# arq's Worker.close() calls redis-py's deprecated ``close()``; nothing of ours does.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


# --------------------------------------------------------------------------- harness


@pytest.fixture
def config(settings: StreamsSettings) -> WorkerConfig:
    return WorkerConfig(
        streams=settings,
        queue_name=f"{settings.prefix}:queue",
        poll_delay_s=0.05,
        lease_s=3.0,
        task_timeout_s=20.0,
        retry_backoff_s=0.05,
        max_jobs=10,
    )


@pytest.fixture
def worker_config(config: WorkerConfig) -> WorkerConfig:
    return config  # the queue of tests/conftest.py's arq_pool


async def stored(reader: Reader, task_id: str) -> Events:
    return [event async for _, event in reader.replay(task_id)]


def of_type(events: Events, kind: str) -> Events:
    return [e for e in events if e["type"] == kind]


def counting_registry(calls: Counter[str]) -> ToolRegistry:
    registry = ToolRegistry()

    @registry.register
    def calculator(expression: str) -> int | float:
        """Evaluate an arithmetic expression such as "17 * 23"."""
        calls["calculator"] += 1
        return evaluate_arithmetic(expression)

    return registry


# --------------------------------------------------------------------------- settings


async def test_worker_takes_jobs_on_the_lease(config: WorkerConfig) -> None:
    options = worker_options(config)
    assert options["allow_abort_jobs"] is True
    assert options["max_tries"] >= 1000
    assert options["job_timeout"] > config.task_timeout_s
    assert [f.name for f in options["functions"]] == [JOB_NAME, EXPIRE_JOB_NAME]
    worker = create_worker(config, handle_signals=False)
    # arq's own in-progress timeout is the job timeout + 10 s; a taken job must be free
    # again within the lease if its worker dies before the job function starts.
    assert worker.in_progress_timeout_s == config.lease_s
    assert worker.job_timeout_s == config.job_timeout_s


def test_config_from_env() -> None:
    env = {
        "REDIS_URL": "redis://example:6380/2",
        "AGENTSTREAM_PREFIX": "px",
        "AGENTSTREAM_MAX_JOBS": "7",
        "AGENTSTREAM_TASK_TIMEOUT_S": "30",
        "AGENTSTREAM_MAX_ATTEMPTS": "5",
        "AGENTSTREAM_LEASE_S": "6",
        "AGENTSTREAM_SHUTDOWN_GRACE_S": "2",
    }
    config = WorkerConfig.from_env(env)
    assert (config.max_jobs, config.task_timeout_s, config.max_attempts) == (7, 30.0, 5)
    assert (config.lease_s, config.shutdown_grace_s, config.queue_name) == (6.0, 2.0, "px:queue")
    assert config.redis_settings().host == "example"
    assert WorkerConfig.from_env({**env, "AGENTSTREAM_QUEUE": "q"}).queue_name == "q"
    defaults = WorkerConfig.from_env({})
    assert (defaults.max_jobs, defaults.task_timeout_s, defaults.max_attempts) == (50, 600.0, 3)
    assert (defaults.lease_s, defaults.shutdown_grace_s) == (15.0, 10.0)


def test_retry_reason() -> None:
    assert retry_reason([], 2) == "attempt 1 was interrupted (its worker stopped or lost its lease)"
    failed = [{"type": "error", "error": "boom", "error_type": "stream_broken"}]
    assert retry_reason(failed, 3) == "attempt 2 failed (stream_broken): boom"


# --------------------------------------------------------------------------- lease


async def test_lease_shortens_and_renews_the_in_progress_key(
    redis: Any, store: TaskStore, settings: StreamsSettings
) -> None:
    task_id = f"tsk_{uuid.uuid4().hex}"
    await store.create_task(task_id, owner="t", agent="llm", input="x")
    key = in_progress_key_prefix + task_id
    await redis.psetex(key, 600_000, "1")  # what arq sets: the whole job timeout
    try:
        # 3 s: renewals every 1 s, each given 1 s: a loaded machine may delay them a while
        async with Lease(redis, task_id, 3.0, "me", meta_key=settings.keys.meta(task_id)) as lease:
            assert 0 < await redis.pttl(key) <= 3000
            assert await redis.hget(settings.keys.meta(task_id), "lease_owner") == "me"
            await asyncio.sleep(3.5)  # longer than the lease: only renewals keep it
            assert await redis.get(key) == "me"
            await redis.delete(key)  # arq deletes it when a stale run of the job ends
            assert await lease.renew()
            assert await redis.get(key) == "me"
            await redis.set(key, "someone-else")
            assert not await lease.renew()
            assert lease.lost.is_set()
        assert await redis.hget(settings.keys.meta(task_id), "lease_owner") is None
    finally:
        await redis.delete(key)


async def test_lease_never_writes_a_missing_or_finished_task(redis: Any, settings: StreamsSettings) -> None:
    meta_key = settings.keys.meta(f"tsk_{uuid.uuid4().hex}")
    job_id = uuid.uuid4().hex
    async with Lease(redis, job_id, 3.0, "me", meta_key=meta_key) as lease:  # 1 s per round trip
        await lease.renew()
    assert not await redis.exists(meta_key)
    await redis.delete(in_progress_key_prefix + job_id)


# --------------------------------------------------------------------------- outcomes


async def test_hybrid_task_end_to_end(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    async with running_worker(config, llm):
        task_id = await submit_task(store, arq_pool, input="What is 17 * 23?", agent="hybrid")
        events = await until_completed(reader, task_id)
    completed = assert_well_formed(events)
    assert completed["status"] == "succeeded" and completed["success"] is True
    assert {e["attempt"] for e in events[1:]} == {1}
    types = [e["type"] for e in events]
    assert types.index("tool_call") < types.index("tool_result") < types.index("result")
    assert "391" in of_type(events, "result")[0]["output"]
    meta = await store.meta(task_id)
    assert meta is not None and meta.done and meta.status == "succeeded"


@pytest.mark.parametrize("agent", ["llm", "tool"])
async def test_llm_and_tool_agents_end_with_one_completed(
    agent: str,
    config: WorkerConfig,
    llm: ScriptedLLMServer,
    store: TaskStore,
    reader: Reader,
    arq_pool: ArqRedis,
) -> None:
    async with running_worker(config, llm):
        task_id = await submit_task(store, arq_pool, input="What is 17 * 23?", agent=agent)
        events = await until_completed(reader, task_id)
    completed = assert_well_formed(events)
    assert completed["status"] == "succeeded"
    assert completed["execution_time"] >= 0
    assert of_type(events, "result")[0]["success"] is True


async def test_model_failure_ends_failed(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    async with running_worker(config, llm):
        task_id = await submit_task(store, arq_pool, input="hello [fail:400]", agent="llm")
        events = await until_completed(reader, task_id)
    completed = assert_well_formed(events)
    assert completed["status"] == "failed" and completed["success"] is False
    errors = of_type(events, "error")
    assert len(errors) == 1 and errors[0]["retryable"] is False
    assert "retry" not in [e["type"] for e in events]


async def test_agent_crash_ends_failed(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    class Broken:
        async def initialize(self) -> None:
            raise RuntimeError("agent exploded")

        async def stream_task(
            self, task: dict[str, Any], context: dict[str, Any]
        ) -> AsyncIterator[dict[str, Any]]:
            raise AssertionError("not reached")
            yield {}

    async with running_worker(config, llm, agent_factory=lambda request, deps: Broken()):
        task_id = await submit_task(store, arq_pool, input="hi", agent="llm")
        events = await until_completed(reader, task_id)
    assert assert_well_formed(events)["status"] == "failed"
    assert of_type(events, "error")[0]["error_type"] == "RuntimeError"


async def test_task_timeout(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    # 3 s for a 10 s stream: time for its first tokens however loaded the machine
    async with running_worker(dataclasses.replace(config, task_timeout_s=3.0), llm):
        task_id = await submit_task(store, arq_pool, input="[slow:100] [tokens:100] go", agent="llm")
        events = await until_completed(reader, task_id)
    completed = assert_well_formed(events)
    assert completed["status"] == "failed"
    assert [e["error_type"] for e in of_type(events, "error")] == ["TaskTimeout"]
    assert of_type(events, "token")  # what streamed before the timeout stays


async def test_cancellation_reaches_a_running_task_within_a_second(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    """Timed on the task's own clock: the scripted model (in this loop, as the worker is)
    streams a token every 200 ms, so a loaded machine slows both alike."""
    async with running_worker(config, llm):
        task_id = await submit_task(store, arq_pool, input="[slow:200] [tokens:100] go", agent="llm")
        await until_event(reader, task_id, "token")
        asked = len(await stored(reader, task_id))
        await store.request_cancel(task_id, "user pressed stop")
        events = await until_completed(reader, task_id)
    late = [e for e in events[asked:] if e["type"] == "token"]
    assert len(late) <= 5, f"{len(late)} tokens after the request"  # 5 x 200 ms: a second of the stream
    completed = assert_well_formed(events)
    assert completed["status"] == "cancelled" and completed["success"] is False
    assert events[-2]["type"] == "cancelled" and events[-2]["reason"] == "user pressed stop"


async def test_cancel_requested_before_the_job_starts(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    task_id = await submit_task(store, arq_pool, input="hi", agent="llm")
    await store.request_cancel(task_id, "changed my mind")
    async with running_worker(config, llm):
        events = await until_completed(reader, task_id)
    assert [e["type"] for e in events] == ["queued", "cancelled", "completed"]
    assert events[-1]["status"] == "cancelled"
    assert llm.requests == 0


async def test_arq_abort_ends_the_stream_cancelled(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    async with running_worker(config, llm):
        task_id = await submit_task(store, arq_pool, input="[slow:200] [tokens:100] go", agent="llm")
        await until_event(reader, task_id, "token")
        await Job(task_id, arq_pool, _queue_name=config.queue_name).abort(
            timeout=TASK_TIMEOUT_S, poll_delay=0.05
        )
        events = await until_completed(reader, task_id)
    completed = assert_well_formed(events)
    assert completed["status"] == "cancelled"
    assert events[-2]["type"] == "cancelled" and events[-2]["reason"] == "the job was aborted"


async def test_retry_after_a_broken_stream_resumes(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    async with running_worker(config, llm):
        task_id = await submit_task(
            store, arq_pool, input="What is 17 * 23? [fail-after:3x1]", agent="hybrid"
        )
        events = await until_completed(reader, task_id)
    completed = assert_well_formed(events)
    assert completed["status"] == "succeeded"
    retries = of_type(events, "retry")
    assert len(retries) == 1 and retries[0]["attempt"] == 2
    assert "stream_broken" in retries[0]["reason"]
    first_error = of_type(events, "error")[0]
    assert first_error["attempt"] == 1 and first_error["retryable"] is True
    assert completed["attempt"] == 2
    assert "391" in of_type(events, "result")[-1]["output"]


async def test_retry_budget_exhausted(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    async with running_worker(dataclasses.replace(config, max_attempts=2), llm):
        task_id = await submit_task(store, arq_pool, input="hello [fail-after:3]", agent="llm")
        events = await until_completed(reader, task_id)
    completed = assert_well_formed(events)
    assert completed["status"] == "failed" and completed["attempt"] == 2
    assert len(of_type(events, "retry")) == 1
    errors = of_type(events, "error")
    assert errors[-1]["error_type"] == "RetriesExhausted" and errors[-1]["retryable"] is False
    assert errors[-1]["error"] == "retry budget exhausted after 2 attempts"


async def test_attempt_beyond_the_budget_only_ends_the_stream(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    req = TaskRequest(input="hi", agent="llm")
    task_id = f"tsk_{uuid.uuid4().hex}"
    await store.create_task(task_id, owner="t", agent="llm", input="hi", request=req.model_dump())
    for _ in range(config.max_attempts):  # three workers died holding it
        await store.open_attempt(task_id)
    await enqueue_task(arq_pool, task_id)
    async with running_worker(config, llm):
        events = await until_completed(reader, task_id)
    assert [e["type"] for e in events] == ["queued", "retry", "error", "completed"]
    assert events[1]["attempt"] == 4  # every later attempt opens with retry (PROTOCOL rule 4)
    assert events[2]["error"] == "retry budget exhausted after 3 attempts"
    assert events[2]["error_type"] == "RetriesExhausted"
    assert events[3]["status"] == "failed" and events[3]["attempt"] == 4
    assert llm.requests == 0


async def test_duplicate_enqueue_runs_once(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    task_id = await submit_task(store, arq_pool, input="hi", agent="llm")
    assert await arq_pool.enqueue_job(JOB_NAME, task_id, _job_id=task_id) is None  # arq dedups
    async with running_worker(config, llm):
        first = await until_completed(reader, task_id)
        # Once the job is gone arq accepts the id again; the run finds the task completed.
        await enqueue_task(arq_pool, task_id)

        async def job_gone() -> bool:
            return not await arq_pool.exists(job_key_prefix + task_id)

        await eventually(job_gone)
    assert await stored(reader, task_id) == first
    assert assert_well_formed(first)["attempt"] == 1
    assert llm.requests == 1
    meta = await store.meta(task_id)
    assert meta is not None and meta.attempt == 1


async def test_shutdown_checkpoints_and_another_worker_resumes(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    calls: Counter[str] = Counter()
    registry = counting_registry(calls)
    prompt = "What is 17 * 23? [slow:30] [tokens:60]"
    async with running_worker(config, llm, registry=registry):
        task_id = await submit_task(store, arq_pool, input=prompt, agent="hybrid")
        tokens_after_result = 0
        async with asyncio.timeout(TASK_TIMEOUT_S):
            async for _, event in reader.tail(task_id):
                if event["type"] == "tool_result" or (tokens_after_result and event["type"] == "token"):
                    tokens_after_result += 1
                if tokens_after_result > 5:
                    break
    # Worker gone: what it streamed is stored, the stream is not ended, the job is queued
    # again with no in-progress key, so the next worker need not wait for the lease.
    interrupted = await stored(reader, task_id)
    assert "completed" not in [e["type"] for e in interrupted]
    assert await arq_pool.zscore(config.queue_name, task_id) is not None
    assert not await arq_pool.exists(in_progress_key_prefix + task_id)
    async with running_worker(config, llm, registry=registry):
        events = await until_completed(reader, task_id)
    assert events[: len(interrupted)] == interrupted
    completed = assert_well_formed(events)
    assert completed["status"] == "succeeded" and completed["attempt"] == 2
    assert of_type(events, "retry")[0]["reason"].startswith("attempt 1 was interrupted")
    assert calls["calculator"] == 1
    results = Counter(e["tool_call_id"] for e in of_type(events, "tool_result"))
    assert results and set(results.values()) == {1}


async def test_running_task_holds_a_lease(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    async with running_worker(config, llm):
        task_id = await submit_task(store, arq_pool, input="[slow:100] [tokens:20] go", agent="llm")
        await until_event(reader, task_id, "token")
        ttl_ms = await arq_pool.pttl(in_progress_key_prefix + task_id)
        meta = await store.redis.hgetall(store.keys.meta(task_id))
        await until_completed(reader, task_id)
    assert 0 < ttl_ms <= config.lease_s * 1000
    assert meta["lease_owner"].startswith("test:")
    assert "lease_until" in meta
    assert "lease_owner" not in await store.redis.hgetall(store.keys.meta(task_id))


async def test_tasks_of_one_session_share_the_conversation(
    config: WorkerConfig, llm: ScriptedLLMServer, store: TaskStore, reader: Reader, arq_pool: ArqRedis
) -> None:
    outputs = []
    async with running_worker(config, llm):
        for text in ("hello", "again"):
            task_id = await submit_task(
                store, arq_pool, input=text, agent="llm", session_id=f"s{uuid.uuid4().hex}"
            )
            outputs.append(of_type(await until_completed(reader, task_id), "result")[0]["output"])
        session = f"s{uuid.uuid4().hex}"
        for text in ("hello", "again"):
            task_id = await submit_task(store, arq_pool, input=text, agent="llm", session_id=session)
            outputs.append(of_type(await until_completed(reader, task_id), "result")[0]["output"])
    assert outputs[0].startswith("Turn 1") and outputs[1].startswith("Turn 1")
    assert outputs[2].startswith("Turn 1") and outputs[3].startswith("Turn 2")


async def test_the_race_ends_even_if_the_cancel_poll_swallows_a_cancellation() -> None:
    """redis-py can swallow a cancel() landing inside a command (seen in the worker bench:
    a task hung after its result). The race never waits on the process's poll itself."""
    from agentstream.worker.race import AgentRace, Stop

    calls = 0

    class Client:
        """A Redis client stand-in: the process's watch is kept per client."""

    class SwallowingStore:
        redis = Client()

        async def cancel_requests(self, task_ids: list[str]) -> list[bool]:
            nonlocal calls
            calls += 1
            # The cancellation is lost here, as inside redis-py.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.01)
            return [False] * len(task_ids)

    race = AgentRace(SwallowingStore(), "t", cancel_poll_s=0.005, lease_lost=asyncio.Event())  # type: ignore[arg-type]

    async def work() -> None:
        await asyncio.sleep(0.05)

    stop = await asyncio.wait_for(race.run(work(), asyncio.Event()), 5)
    assert stop is Stop.FINISHED
    assert calls >= 1


def test_a_worker_made_outside_a_running_loop_runs_on_uvloop() -> None:
    """``agentstream worker`` (``create_worker(config).run()``) gets uvloop's loop; in its
    own process, since it sets the process's current loop."""
    code = (
        "from agentstream.worker.config import WorkerConfig\n"
        "from agentstream.worker.settings import create_worker\n"
        "worker = create_worker(WorkerConfig(), handle_signals=False)\n"
        "print(type(worker.loop).__module__)\n"
        "worker.loop.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "uvloop"


async def test_a_worker_made_inside_a_running_loop_runs_on_that_loop(worker_config: WorkerConfig) -> None:
    worker = create_worker(worker_config, handle_signals=False)
    assert worker.loop is asyncio.get_running_loop()
