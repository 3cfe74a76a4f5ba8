"""Scenario 1: workers SIGKILLed at random moments while they stream tasks.

Two ``python -m worker`` processes share the queue; a lease of 2 s makes a killed worker's
tasks start again elsewhere within about 2 s. At random moments one worker (the one
holding the most leases) is SIGKILLed and a replacement started, so two run again. Every
task must end with exactly one ``completed`` (succeeded), dense seqs, no tool whose result
was recorded run again, and a live consumer of each task must have seen exactly the replay.

Why the stream is the evidence that no tool ran twice: a tool runs between its
``tool_call`` and its ``tool_result`` events; a resumed attempt skips calls whose result is
recorded and announces (``tool_call``) every call it runs. So a second run of a recorded
call would show as a second ``tool_call`` after the result, or a second ``tool_result``.
A run cut off by the kill *before* its result was stored may legitimately run again; the
calculator is pure, so that is harmless (and it is what "at least once" means for tools).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from agentstream.streams import Reader, StreamsSettings, TaskStore
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.harness import submit_task, until_completed
from tests.processes import WorkerProcess, child_env
from tests.reliability.invariants import assert_same_as_replay, assert_stream_sound

LEASE_S = 2


def prompt(rng: random.Random) -> tuple[str, dict[str, int]]:
    a, b, c, d = (rng.randint(2, 99) for _ in range(4))
    tokens = rng.randint(20, 60)
    return f"What is {a} * {b} and {c} + {d}? [slow:40] [tokens:{tokens}]", {
        f"{a} * {b}": a * b,
        f"{c} + {d}": c + d,
    }


async def holder_of_most_leases(store: TaskStore, task_ids: list[str], workers: list[WorkerProcess]) -> int:
    owners = await asyncio.gather(*(store.redis.hget(store.keys.meta(t), "lease_owner") for t in task_ids))
    pids = Counter(int(o.split(":")[1]) for o in owners if o)
    live = {w.pid for w in workers}
    ranked = [pid for pid, _ in pids.most_common() if pid in live]
    return ranked[0] if ranked else random.choice(list(live))


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("tasks", "kills"),
    [
        pytest.param(16, 3, id="ci", marks=pytest.mark.timeout(180)),
        pytest.param(50, 8, id="50-tasks", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
    ],
)
async def test_workers_killed_at_random_lose_nothing(
    tasks: int,
    kills: int,
    settings: StreamsSettings,
    store: TaskStore,
    reader: Reader,
    arq_pool: ArqRedis,
    llm: ScriptedLLMServer,
    tmp_path: Path,
) -> None:
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    env = child_env(
        settings.redis_url, settings.prefix, llm.base_url,
        AGENTSTREAM_LEASE_S=str(LEASE_S), AGENTSTREAM_MAX_ATTEMPTS="20",
    )  # fmt: skip
    started: list[WorkerProcess] = []

    def spawn() -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    workers = [spawn(), spawn()]
    try:
        await asyncio.gather(*(w.ready() for w in workers))
        t0 = time.monotonic()
        expected: dict[str, dict[str, int]] = {}
        consumers: dict[str, asyncio.Task[list[dict[str, Any]]]] = {}
        submit_span_s = tasks * 0.25

        async def submitter() -> None:
            for _ in range(tasks):
                text, values = prompt(rng)
                task_id = await submit_task(store, arq_pool, input=text, agent="hybrid")
                expected[task_id] = values
                consumers[task_id] = asyncio.create_task(until_completed(reader, task_id, 150))
                await asyncio.sleep(submit_span_s / tasks)

        submitting = asyncio.create_task(submitter())
        kill_log = []
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.5, 2.5))
            pid = await holder_of_most_leases(store, list(expected), workers)
            victim = next(w for w in workers if w.pid == pid)
            victim.kill()
            kill_log.append(round(time.monotonic() - t0, 2))
            workers.remove(victim)
            replacement = spawn()
            workers.append(replacement)
            await replacement.ready()
        await submitting

        seen = dict(zip(consumers, await asyncio.gather(*consumers.values()), strict=True))
        elapsed = time.monotonic() - t0
        retried = attempts = 0
        for task_id, events in seen.items():
            replayed = [event async for _, event in reader.replay(task_id)]
            assert_stream_sound(replayed, status="succeeded")
            assert_same_as_replay(events, replayed)
            results = {e["parameters"]["expression"]: e for e in replayed if e["type"] == "tool_call"}
            outcomes = {e["tool_call_id"]: e for e in replayed if e["type"] == "tool_result"}
            for expression, value in expected[task_id].items():
                call = results[expression]["tool_call_id"]
                assert str(outcomes[call]["result"]).startswith(str(value)), outcomes[call]
            retried += any(e["type"] == "retry" for e in replayed)
            attempts += replayed[-1]["attempt"]
        print(
            f"\nscenario 1 (seed {seed}): {tasks} tasks, {len(kill_log)} SIGKILLs at {kill_log}s, "
            f"{retried} tasks resumed by a new attempt, {attempts} attempts in all, {elapsed:.1f}s"
        )
        assert retried >= 1, "no kill hit a running task: the scenario tested nothing"
    finally:
        for worker in started:
            worker.stop()
