"""Issue 10, item 4: dropped SSE connections give their slot back at once.

An outside attack opened and dropped 2,000 connections in 12 s; 888 still counted as live
clients 3 s later, drained mostly by the slow-client timeout (so dropped clients were
reported as slow, holding ``AGENTSTREAM_MAX_SSE_CLIENTS`` slots), and the API's RSS went
70 -> 195 -> 206 MB over two rounds. Here an API process serves two rounds of 1,000
connections (loopback, 50 at a time) that hang up right after the response started: half
while the server replays a long history, half while it tails a live stream; half with a
FIN, half with a RST. The slow-client timeout is set far beyond the test's deadline, so
only disconnect detection can bring the live-client gauge back to its baseline.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import time
from pathlib import Path

import httpx
import pytest

from agentstream.streams import StreamsSettings, TaskStore
from agentstream.streams.keys import scoped_task_id
from tests.processes import ApiProcess, child_env, stopping

KEY = {"Authorization": "Bearer key-t"}
ROUNDS = 2
PER_ROUND = 1_000
AT_ONCE = 50
HISTORY = 3_000
#: the API may keep this much more memory after two rounds than before them (allocator
#: arenas and caches that grew while 50 clients were in flight; nothing per dropped client)
RSS_BOUND_KB = 50 * 1024


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, name
    return float(match.group(1))


async def drop_one(port: int, path: str, reset: bool) -> None:
    """Ask for ``path`` as SSE, wait until the response started, then hang up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer key-t\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())  # fmt: skip
        async with asyncio.timeout(30):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
    finally:
        if reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort() if reset else writer.close()


async def one_round(port: int, paths: list[str]) -> None:
    gate = asyncio.Semaphore(AT_ONCE)

    async def bounded(i: int) -> None:
        async with gate:
            await drop_one(port, paths[i % len(paths)], reset=i % 4 >= 2)

    await asyncio.gather(*(bounded(i) for i in range(PER_ROUND)))


async def drained(client: httpx.AsyncClient, baseline: float, deadline_s: float = 90.0) -> float:
    """Seconds until the live-client gauge is back to ``baseline`` (fails after the deadline)."""
    start = time.monotonic()
    async with asyncio.timeout(deadline_s):
        while metric((await client.get("/metrics")).text, "agentstream_sse_clients") > baseline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.reliability
@pytest.mark.timeout(300)
async def test_dropped_connections_free_their_slots_at_once(
    settings: StreamsSettings, store: TaskStore, tmp_path: Path
) -> None:
    env = child_env(settings.redis_url, settings.prefix, AGENTSTREAM_API_KEYS="t:key-t",
                    AGENTSTREAM_SSE_SLOW_CLIENT_S="600", AGENTSTREAM_MAX_SSE_CLIENTS_PER_TENANT="5000")  # fmt: skip
    api = ApiProcess(env, tmp_path / "api.log")
    history, live = scoped_task_id("t", "history"), scoped_task_id("t", "live")
    for key_id in (history, live):
        await store.create_task(key_id, owner="t", agent="llm", input="x")
    attempt = await store.open_attempt(history)
    async with store.writer(attempt) as writer:  # still running: after its history, a live tail
        for i in range(HISTORY):
            await writer.append({"type": "token", "content": f"{i:05d} " + "x" * 200})
    paths = ["/v1/tasks/history/events?mode=all", "/v1/tasks/live/events?after=%24"]
    with stopping(api):
        await api.ready()
        async with httpx.AsyncClient(base_url=api.url, headers=KEY, timeout=30.0) as client:
            baseline = metric((await client.get("/metrics")).text, "agentstream_sse_clients")
            await one_round(api.port, paths[:1])  # warm-up: imports, first allocations, pools
            await drained(client, baseline)
            rss = [api.rss_kb()]
            waits = []
            for _ in range(ROUNDS):
                await one_round(api.port, paths)
                waits.append(await drained(client, baseline))
                rss.append(api.rss_kb())
            text = (await client.get("/metrics")).text
        slow = metric(text, "agentstream_sse_slow_client_disconnects_total")
        print(f"\ndropped connections: {ROUNDS} rounds x {PER_ROUND} ({AT_ONCE} at once); gauge back to "
              f"baseline {', '.join(f'{w:.2f}' for w in waits)} s after each round's last hang-up; "
              f"API RSS {' -> '.join(f'{r / 1024:.0f}' for r in rss)} MB; {slow:g} cut off as slow")  # fmt: skip
        assert slow == 0  # freed by disconnect detection, not by the slow-client timeout
        assert rss[-1] - rss[0] < RSS_BOUND_KB
