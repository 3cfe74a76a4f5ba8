"""Scenario 4: SSE clients that hang up at random bytes and resume with ``Last-Event-ID``.

A real API process (uvicorn on loopback) serves 20 tasks that a simulated worker writes
live. Each client hangs up after a random number of bytes (often in the middle of a
frame, which it then discards), and reconnects with the id of the last complete frame
(``Last-Event-ID``, or ``after=`` every third time). The ``data:`` payloads it collects
must equal, byte for byte, those of one uninterrupted read of the finished stream, and
the events must equal the stored replay.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agentstream.streams import Reader, StreamsSettings, TaskStore
from agentstream.streams.keys import scoped_task_id
from tests.processes import ApiProcess, child_env, stopping
from tests.reliability.invariants import assert_same_as_replay, assert_stream_sound
from tests.reliability.sse import read_sse

KEY = {"Authorization": "Bearer key-t"}


async def simulated_worker(store: TaskStore, task_id: str, tokens: int, rng: random.Random) -> None:
    attempt = await store.open_attempt(scoped_task_id("t", task_id))
    async with store.writer(attempt) as writer:
        await writer.append({"type": "status", "status": "started"})
        for i in range(tokens):
            # unicode, quotes and newlines in content: the data line must stay one line
            await writer.append({"type": "token", "content": rng.choice([f"w{i} ", "é€😀 ", '"q"\n', "\\"])})
            if rng.random() < 0.2:
                await asyncio.sleep(rng.uniform(0, 0.03))
        await writer.append({"type": "result", "output": "ok", "success": True, "execution_time": 1.0})
        await writer.append(
            {"type": "completed", "success": True, "status": "succeeded", "execution_time": 1.0}
        )


async def resuming_client(
    client: httpx.AsyncClient, task_id: str, rng: random.Random, max_bytes: int
) -> tuple[list[bytes], int]:
    """Read the whole stream through random hang-ups; the payloads and the hang-up count."""
    url = f"/v1/tasks/{task_id}/events"
    payloads: list[bytes] = []
    last: str | None = None
    for hangups in range(10_000):
        headers, params = dict(KEY), {"mode": "all"}
        if last is not None:
            if hangups % 3 == 2:
                params["after"] = last
            else:
                headers["Last-Event-ID"] = last
        read = await read_sse(
            client, url, headers=headers, params=params, hang_up_after=rng.randint(1, max_bytes)
        )
        if read.status == 204:
            # The hang-up came right after ``completed``: resuming after it, there is nothing
            # more to send (PROTOCOL: a cursor at a finished stream's end is a 204).
            assert payloads and b'"type":"completed"' in payloads[-1].replace(b" ", b""), payloads[-1:]
            return payloads, hangups
        assert read.status == 200, read.status
        for frame in read.frames:
            assert frame.id is not None and frame.data is not None
            payloads.append(frame.data)
            last = frame.id
        if read.ended:
            return payloads, hangups
    raise AssertionError("never reached the end of the stream")


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("tokens", "max_bytes"),
    [
        pytest.param(400, 2_500, id="ci", marks=pytest.mark.timeout(180)),
        pytest.param(2_000, 3_000, id="long", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
    ],
)
async def test_random_disconnects_resume_byte_for_byte(
    tokens: int, max_bytes: int, settings: StreamsSettings, store: TaskStore, reader: Reader, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    api = ApiProcess(child_env(settings.redis_url, settings.prefix, AGENTSTREAM_API_KEYS="t:key-t"),
                     tmp_path / "api.log")  # fmt: skip
    with stopping(api):
        await api.ready()
        task_ids = [f"sse-{i}-{rng.randrange(10**9)}" for i in range(20)]
        for task_id in task_ids:
            await store.create_task(scoped_task_id("t", task_id), owner="t", agent="llm", input="x")
        t0 = time.monotonic()
        limits = httpx.Limits(max_connections=40, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=api.url, timeout=20.0, limits=limits) as client:
            writers = [simulated_worker(store, t, tokens, random.Random(rng.random())) for t in task_ids]
            readers = [resuming_client(client, t, random.Random(rng.random()), max_bytes) for t in task_ids]
            async with asyncio.timeout(160 if tokens < 1000 else 580):
                results = await asyncio.gather(*readers, *writers)
            elapsed = time.monotonic() - t0
            total_hangups = 0
            for task_id, (payloads, hangups) in zip(task_ids, results[: len(task_ids)], strict=True):
                total_hangups += hangups
                whole = await read_sse(
                    client, f"/v1/tasks/{task_id}/events", headers=KEY, params={"mode": "all"}
                )
                assert whole.ended
                assert_same_as_replay(payloads, [f.data for f in whole.frames])
                replayed = [event async for _, event in reader.replay(scoped_task_id("t", task_id))]
                assert_stream_sound(replayed, status="succeeded")
                served: list[dict[str, Any]] = [orjson.loads(p) for p in payloads]
                assert_same_as_replay(served, [{**e, "sequence_number": e["seq"]} for e in replayed])
    print(f"\nscenario 4 (seed {seed}): {total_hangups} random hang-ups across {len(task_ids)} tasks "
          f"of {tokens + 4} events each, {elapsed:.1f}s; every stream byte-equal to its replay")  # fmt: skip
    assert total_hangups >= 300
