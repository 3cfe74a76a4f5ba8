"""Scenario 5: SSE clients that never read, while a task streams a lot.

N raw sockets (a small receive buffer, never read) ask for the stream of a task that a
simulated worker fills with large tokens. The API process must stay bounded in memory
(at most ``AGENTSTREAM_SSE_BUFFER`` frames per client: its RSS, read from ``/proc``, may
not grow by more than a fixed budget), cut the stalled clients off after
``AGENTSTREAM_SSE_SLOW_CLIENT_S``, and still give fast clients everything.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from agentstream.streams import Reader, StreamsSettings, TaskStore
from agentstream.streams.keys import scoped_task_id
from tests.processes import ApiProcess, child_env, stopping
from tests.reliability.invariants import assert_same_as_replay, assert_stream_sound
from tests.reliability.sse import read_sse

KEY = {"Authorization": "Bearer key-t"}
SLOW_CLIENTS = 50
TOKENS = 6_000
TOKEN_BYTES = 400
#: RSS growth allowed: 10 MB for the process (frame cache, allocator) plus 512 KB per
#: stalled client, 16 times what its 64 queued frames of ~0.5 KB hold. Measured today:
#: ~2.6 MB per stalled client (+134 MB for 50): see RELIABILITY.md, finding F2.
RSS_BUDGET_KB = 10_000 + 512 * SLOW_CLIENTS


def stalled_client(port: int, task_id: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET /v1/tasks/{task_id}/events?mode=all HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer key-t\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    return sock


def closed_by_server(sock: socket.socket, deadline_s: float = 10.0) -> bool:
    """Drain the socket; ``True`` if the server ended the response (EOF). A client is
    counted as cut off just before its connection is closed: a loaded API process may
    take a moment between the two, so a silence of up to 2 s is waited out."""
    sock.settimeout(2.0)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if not sock.recv(1 << 20):
                return True
        except TimeoutError:
            return False
    return False


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


@pytest.mark.reliability
@pytest.mark.timeout(120)
async def test_clients_that_never_read_cost_bounded_memory_and_are_cut_off(
    settings: StreamsSettings, store: TaskStore, reader: Reader, tmp_path: Path
) -> None:
    env = child_env(settings.redis_url, settings.prefix, AGENTSTREAM_API_KEYS="t:key-t",
                    AGENTSTREAM_SSE_SLOW_CLIENT_S="2", AGENTSTREAM_SSE_BUFFER="64")  # fmt: skip
    api = ApiProcess(env, tmp_path / "api.log")
    task_id = f"slow-{random.randrange(10**9)}"
    key_id = scoped_task_id("t", task_id)  # the API stores tenant t's task under this key id
    await store.create_task(key_id, owner="t", agent="llm", input="x")
    with stopping(api):
        await api.ready()
        async with httpx.AsyncClient(base_url=api.url, timeout=30.0) as client:
            for _ in range(3):  # warm up: imports, first allocations
                await client.get("/metrics", headers=KEY)
            baseline = api.rss_kb()
            sockets = await asyncio.gather(*(asyncio.to_thread(stalled_client, api.port, task_id)
                                             for _ in range(SLOW_CLIENTS)))  # fmt: skip
            fast = [asyncio.create_task(read_sse(client, f"/v1/tasks/{task_id}/events", headers=KEY,
                                                 params={"mode": "all"})) for _ in range(3)]  # fmt: skip
            peak = baseline
            attempt = await store.open_attempt(key_id)
            async with store.writer(attempt) as writer:
                for i in range(TOKENS):
                    await writer.append({"type": "token", "content": f"{i:06d}" + "x" * (TOKEN_BYTES - 6)})
                    if i % 200 == 0:
                        await asyncio.sleep(0.02)
                        peak = max(peak, api.rss_kb())
                await writer.append({"type": "completed", "success": True, "status": "succeeded",
                                     "execution_time": 1.0})  # fmt: skip
            async with asyncio.timeout(60):
                while not all(f.done() for f in fast):
                    peak = max(peak, api.rss_kb())
                    await asyncio.sleep(0.1)
            reads = [f.result() for f in fast]
            # Until the server cut every stalled client off (after AGENTSTREAM_SSE_SLOW_CLIENT_S),
            # however loaded the machine: wait for the counter, not for a fixed time.
            async with asyncio.timeout(60):
                while True:
                    peak = max(peak, api.rss_kb())
                    metrics = (await client.get("/metrics", headers=KEY)).text
                    if metric(metrics, "agentstream_sse_slow_client_disconnects_total") >= SLOW_CLIENTS:
                        break
                    await asyncio.sleep(0.1)
        cut = metric(metrics, "agentstream_sse_slow_client_disconnects_total")
        ended = sum(await asyncio.gather(*(asyncio.to_thread(closed_by_server, s) for s in sockets)))
        for sock in sockets:
            sock.close()
        replayed = [event async for _, event in reader.replay(key_id)]
        assert_stream_sound(replayed, status="succeeded")
        for read in reads:
            assert read.ended
            assert_same_as_replay([f.id for f in read.frames], [e["id"] for e in replayed])
        growth = peak - baseline
        print(f"\nscenario 5: {SLOW_CLIENTS} stalled clients, {TOKENS} x {TOKEN_BYTES} B tokens; API RSS "
              f"{baseline / 1024:.0f} MB -> peak {peak / 1024:.0f} MB (+{growth / 1024:.1f} MB); "
              f"{cut:g} cut off as slow, {ended} responses ended by the server; 3 fast clients got all "
              f"{len(replayed)} events")  # fmt: skip
        assert growth < RSS_BUDGET_KB
        assert cut == SLOW_CLIENTS
        assert ended == SLOW_CLIENTS
