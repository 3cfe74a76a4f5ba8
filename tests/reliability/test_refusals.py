"""Issue 10, item 6: refuse at the door.

``types=nope,bogus`` was accepted (a stream of nothing but ``error``/``completed``);
``metadata`` with ``NaN``, ``Infinity`` or ``1e999`` was accepted (stored as null); and
uvicorn kept connections with unfinished headers, or a body arriving a byte every 5 s,
open for good (slowloris).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentstream.streams import StreamsSettings
from tests.api.server import api_settings, serve, submit
from tests.processes import ApiProcess, child_env, stopping

AUTH = b"Authorization: Bearer key-t\r\n"


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_unknown_types_and_non_finite_metadata_are_refused(
    settings: StreamsSettings, redis: Any
) -> None:
    async with serve(api_settings(settings)) as api, api.client() as alice:
        task_id = await submit(alice)
        url = f"/v1/tasks/{task_id}/events"
        for accept in ("application/json", "text/event-stream"):
            refused = await alice.get(url, params={"types": "nope,bogus"}, headers={"Accept": accept})
            assert refused.status_code == 400, refused.text
            message = refused.json()["error"]["message"]
            assert "no known event type" in message and "token" in message and "completed" in message
        # a known type beside an unknown one passes (a newer writer may add types)
        mixed = await alice.get(
            url, params={"types": "queued,future_type"}, headers={"Accept": "application/json"}
        )
        assert mixed.status_code == 200 and [e["type"] for e in mixed.json()["events"]] == ["queued"]
        for number in ("NaN", "Infinity", "-Infinity", "1e999"):
            body = b'{"input": "x", "metadata": {"a": [1, {"b": %s}]}}' % number.encode()
            response = await alice.post(
                "/v1/tasks", content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 422, (number, response.text)
            assert "metadata" in response.json()["error"]["message"]
        ok = await alice.post("/v1/tasks", json={"input": "x", "metadata": {"a": 1.5e300}})
        assert ok.status_code == 202


async def closed_by_server(reader: asyncio.StreamReader, deadline_s: float) -> bool:
    """Whether the server closes the connection within ``deadline_s`` (reads and drops
    whatever it sends first)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(deadline_s):
            while await reader.read(4096):
                pass
            return True
    return False


@pytest.mark.reliability
@pytest.mark.timeout(120)
async def test_slowloris_connections_are_closed(settings: StreamsSettings, tmp_path: Path) -> None:
    env = child_env(settings.redis_url, settings.prefix, AGENTSTREAM_API_KEYS="t:key-t",
                    AGENTSTREAM_HEADER_TIMEOUT_S="2", AGENTSTREAM_BODY_TIMEOUT_S="3")  # fmt: skip
    api = ApiProcess(env, tmp_path / "api.log")
    with stopping(api):
        await api.ready()
        port = api.port
        # 1. headers that never finish (a header line every second, never the blank line)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

        async def trickle_headers() -> None:
            for i in range(30):
                await asyncio.sleep(1)
                writer.write(b"X-Slow-%d: y\r\n" % i)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        headers = asyncio.create_task(trickle_headers())
        # 2. a body announced as 100 bytes, sent a byte every second
        body_reader, body_writer = await asyncio.open_connection("127.0.0.1", port)
        body_writer.write(b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\n" + AUTH +
                          b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")  # fmt: skip

        async def trickle_body() -> None:
            for _ in range(60):
                await asyncio.sleep(1)
                body_writer.write(b" ")
                with contextlib.suppress(ConnectionError):
                    await body_writer.drain()

        body = asyncio.create_task(trickle_body())
        # 3. a connection that sends nothing
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            # generous deadlines: the limits are 2 s and 3 s
            results = await asyncio.gather(
                closed_by_server(reader, 40),
                closed_by_server(body_reader, 40),
                closed_by_server(idle_reader, 40),
            )
        finally:
            headers.cancel()
            body.cancel()
            for w in (writer, body_writer, idle_writer):
                w.close()
        assert results == [True, True, True]
        # a live SSE stream (no body: its request is complete with its headers) outlives
        # both limits: still open 5 s later, with nothing sent but the first frame
        async with httpx.AsyncClient(base_url=api.url, headers={"Authorization": "Bearer key-t"}) as client:
            task_id = (await client.post("/v1/tasks", json={"input": "x"})).json()["task_id"]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v1/tasks/%s/events HTTP/1.1\r\nHost: x\r\n%s\r\n" % (task_id.encode(), AUTH))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        assert b"event: queued" in await reader.readuntil(b"\n\n")
        assert not await closed_by_server(reader, 5)
        writer.close()
