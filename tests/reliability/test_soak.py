"""Scenario 6: a soak. Tasks are submitted through the API at a steady rate, a worker
process runs them, SSE readers follow each to its end. The RSS of the API and of the
worker, sampled every second, must stay flat after warm-up: the median of the second half
of the run within 10% of the median of the first half. No request may fail and every
stream must be sound and equal to what its reader saw."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import orjson
import pytest

from agentstream.streams import Reader, StreamsSettings
from agentstream.streams.keys import scoped_task_id
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.processes import ApiProcess, WorkerProcess, child_env, stopping
from tests.reliability.invariants import assert_same_as_replay, assert_stream_sound
from tests.reliability.procs import median
from tests.reliability.sse import read_sse

KEY = {"Authorization": "Bearer key-t"}
RATE_PER_S = 4.0
WARM_UP_S = 10.0


@pytest.mark.reliability
@pytest.mark.parametrize(
    "duration_s",
    [
        pytest.param(
            float(os.environ.get("AGENTSTREAM_SOAK_S", 60)), id="ci", marks=pytest.mark.timeout(150)
        ),
        pytest.param(600.0, id="10-min", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
    ],
)
async def test_soak_memory_stays_flat(
    duration_s: float, settings: StreamsSettings, reader: Reader, llm: ScriptedLLMServer, tmp_path: Path
) -> None:
    env = child_env(settings.redis_url, settings.prefix, llm.base_url, AGENTSTREAM_API_KEYS="t:key-t",
                    AGENTSTREAM_RATE_LIMIT="0", AGENTSTREAM_RETENTION_S="30")  # fmt: skip
    api, worker = ApiProcess(env, tmp_path / "api.log"), WorkerProcess(env, tmp_path / "worker.log")
    samples: list[tuple[float, int, int]] = []
    errors: list[str] = []
    checked = 0
    with stopping(api, worker):
        await asyncio.gather(api.ready(), worker.ready())
        async with httpx.AsyncClient(base_url=api.url, timeout=20.0) as client:

            async def one_task(n: int) -> None:
                nonlocal checked
                body = {"input": f"What is {n % 97} * 13? [slow:5] [tokens:30]", "agent": "hybrid"}
                response = await client.post("/v1/tasks", json=body, headers=KEY)
                if response.status_code != 202:
                    errors.append(f"submit {response.status_code} {response.text}")
                    return
                task_id = response.json()["task_id"]
                read = await read_sse(
                    client, f"/v1/tasks/{task_id}/events", headers=KEY, params={"mode": "all"}
                )
                if read.status != 200 or not read.ended:
                    errors.append(f"read {read.status} ended={read.ended}")
                    return
                replayed = [event async for _, event in reader.replay(scoped_task_id("t", task_id))]
                assert_stream_sound(replayed, status="succeeded")
                assert_same_as_replay([orjson.loads(f.data or b"") for f in read.frames],
                                      [{**e, "sequence_number": e["seq"]} for e in replayed])  # fmt: skip
                checked += 1

            t0 = time.monotonic()
            running: set[asyncio.Task[None]] = set()
            n = 0
            next_sample = t0
            while (now := time.monotonic()) - t0 < duration_s:
                if now >= next_sample:
                    samples.append((now - t0, api.rss_kb(), worker.rss_kb()))
                    next_sample += 1.0
                task = asyncio.create_task(one_task(n))
                running.add(task)
                task.add_done_callback(running.discard)
                n += 1
                await asyncio.sleep(1 / RATE_PER_S)
            async with asyncio.timeout(60):
                await asyncio.gather(*running)
        assert api.proc.poll() is None and worker.proc.poll() is None
    assert not errors, errors[:5]
    steady = [s for s in samples if s[0] >= WARM_UP_S]
    half = len(steady) // 2
    first, second = steady[:half], steady[half:]
    report = []
    for index, name in ((1, "API"), (2, "worker")):
        a, b = median([s[index] for s in first]), median([s[index] for s in second])
        report.append(f"{name} {a / 1024:.1f} -> {b / 1024:.1f} MB ({(b - a) / a:+.1%})")
        assert b <= a * 1.10, f"{name} RSS grew from {a} to {b} KiB (median of each half after warm-up)"
    print(
        f"\nscenario 6: {duration_s:.0f}s at {RATE_PER_S}/s, {n} tasks, {checked} streams checked, "
        f"no error; median RSS first vs second half after {WARM_UP_S:.0f}s warm-up: {'; '.join(report)}"
    )
