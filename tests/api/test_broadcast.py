"""The broadcast fan-out of live task streams (``api.broadcast``): clients that keep up are
written to straight from the hub's loop, once per filter; a client whose socket fills
leaves the broadcast, catches up by XRANGE and comes back, losing nothing; where no
transport can be reached, frames go through the ASGI ``send``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from agentstream.api import ApiSettings, create_app
from agentstream.api.app import open_services
from agentstream.api.broadcast import LiveEventsResponse
from agentstream.api.serving import uvicorn_options
from agentstream.api.state import Services
from agentstream.serving import InLoopServer
from agentstream.streams import EventFilter, StreamsSettings
from tests.api.helpers import completed, key_id, read_sse, run_worker, stalled_reader, tokens
from tests.api.server import ALICE, Api, api_settings, submit
from tests.harness import eventually

SEQS = b'"seq":'


@contextlib.asynccontextmanager
async def serve(settings: ApiSettings, http: str) -> AsyncIterator[Api]:
    """The app under uvicorn with the given HTTP implementation: ``deployed`` (the guarded
    httptools protocol of ``agentstream api``), ``httptools`` or ``h11``."""
    app: FastAPI = create_app(settings)
    protocol: Any = uvicorn_options(settings)["http"] if http == "deployed" else http
    async with InLoopServer(
        app, lifespan="on", log_level="warning", http=protocol, ws="none", timeout_graceful_shutdown=2
    ) as server:
        yield Api(server.url, app, settings)


def direct_members(svc: Services) -> int:
    """Members of the broadcast written to through their transport, chunked."""
    return sum(
        m.chunked for c in svc.broadcast.channels.values() for g in c.groups.values() for m in g.members()
    )


def frames_of(body: bytes) -> list[dict[str, Any]]:
    """The events of a de-chunked SSE body."""
    out = []
    for block in body.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                out.append(orjson.loads(line[6:]))
    return out


def dechunk(raw: bytes) -> bytes:
    """The body of an HTTP/1.1 response with chunked transfer encoding."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    body = bytearray()
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    return bytes(body)


@pytest.mark.parametrize("http", ["deployed", "httptools", "h11"])
async def test_clients_of_different_filters_share_the_broadcast_and_get_only_their_events(
    settings: StreamsSettings, redis: Any, http: str
) -> None:
    async with serve(api_settings(settings), http) as api, api.client() as client:
        task_id = await submit(client)
        url = f"/v1/tasks/{task_id}/events"
        readers = [
            asyncio.create_task(read_sse(client, url, params={"mode": "all"})),
            asyncio.create_task(read_sse(client, url, params={"mode": "all"})),
            asyncio.create_task(read_sse(client, url, params={"mode": "all", "types": "result"})),
        ]
        svc = api.services
        # all three caught up and joined the broadcast, through their transports
        await eventually(lambda: _true(direct_members(svc) == 3))
        (channel,) = svc.broadcast.channels.values()
        assert len(channel.groups) == 2 and svc.hub.subscriptions == 1  # one per filter, one per task
        result = {"type": "result", "output": "done", "success": True, "execution_time": 0.1}
        await run_worker(svc.store, task_id, [*tokens(50), result, completed()])
        everything, again, results = await asyncio.gather(*readers)
        stored = [e async for _, e in svc.reader.replay(key_id(task_id))]
        assert [f.json["seq"] for f in everything] == [e["seq"] for e in stored]
        assert [f.id for f in again] == [f.id for f in everything]
        assert [f.event for f in results] == ["result", "completed"]  # completed always passes
        await eventually(lambda: _true(svc.hub.subscriptions == 0 and svc.metrics.sse_clients == 0))


async def test_a_starting_after_beyond_the_head_hides_live_events_up_to_it(
    settings: StreamsSettings, redis: Any
) -> None:
    """``starting_after`` past what is stored: the client joins the broadcast at the head
    and is served apart until the stream passes its floor."""
    async with serve(api_settings(settings), "deployed") as api, api.client() as client:
        svc = api.services
        task_id = await submit(client)  # seq 1: queued
        await run_worker(svc.store, task_id, tokens(3))  # seqs 2-4 (the attempt's own events aside)
        head = max([e["seq"] async for _, e in svc.reader.replay(key_id(task_id))])
        floor = head + 3
        url = f"/v1/tasks/{task_id}/events"
        reader = asyncio.create_task(
            read_sse(client, url, params={"mode": "all", "starting_after": str(floor)})
        )
        everything = asyncio.create_task(read_sse(client, url, params={"mode": "all"}))
        await eventually(lambda: _true(direct_members(svc) == 2))
        await run_worker(svc.store, task_id, [*tokens(6, start=3), completed()])
        frames, whole = await reader, await everything
        stored = [e async for _, e in svc.reader.replay(key_id(task_id))]
        assert [f.json["seq"] for f in frames] == [e["seq"] for e in stored if e["seq"] > floor]
        assert [f.json["seq"] for f in whole] == [e["seq"] for e in stored]


@pytest.mark.parametrize("http", ["deployed", "httptools"])
async def test_a_slow_client_leaves_the_broadcast_and_catches_up_without_loss(
    settings: StreamsSettings, redis: Any, http: str
) -> None:
    """A client that stops reading fills its socket and its transport: it leaves the
    broadcast (the others go on), and once it reads again it gets every event, seqs dense."""
    config = api_settings(settings, sse_slow_client_s=60.0)
    async with serve(config, http) as api, api.client() as client:
        svc = api.services
        task_id = await submit(client)
        path = f"/v1/tasks/{task_id}/events?mode=all"
        async with stalled_reader(api.url, path, ALICE["Authorization"]) as sock:
            loop = asyncio.get_running_loop()
            fast = asyncio.create_task(
                read_sse(client, f"/v1/tasks/{task_id}/events", params={"mode": "all"})
            )
            await eventually(lambda: _true(direct_members(svc) == 2))
            big = [{"type": "token", "content": f"{i:04d}" + "z" * 10_000} for i in range(400)]  # 4 MB
            writer = asyncio.create_task(run_worker(svc.store, task_id, [*big, completed()]))
            await eventually(lambda: _true(svc.metrics.broadcast_leaves >= 1), timeout_s=30)
            raw = bytearray()
            while b"event: completed" not in raw:  # now read it all
                data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 30)
                assert data, "the server closed the slow client's stream"
                raw += data
            await writer
            fast_frames = await fast
        slow = frames_of(dechunk(bytes(raw) + b"0\r\n\r\n"))
        stored = [e async for _, e in svc.reader.replay(key_id(task_id))]
        assert [e["seq"] for e in slow] == list(range(1, len(stored) + 1)) == [e["seq"] for e in stored]
        assert [f.json["seq"] for f in fast_frames] == [e["seq"] for e in stored]
        assert svc.metrics.slow_client_disconnects == 0
        await eventually(lambda: _true(svc.hub.subscriptions == 0 and svc.metrics.sse_clients == 0))


async def test_a_burst_of_connections_all_join_without_error(settings: StreamsSettings, redis: Any) -> None:
    """Many clients connecting at once on a few tasks (the bench runs 1,000): every one gets
    its whole stream; one hub subscription per task."""
    clients, tasks = 120, 4
    async with serve(api_settings(settings), "deployed") as api:
        limits = httpx.Limits(max_connections=clients + 10)
        async with httpx.AsyncClient(base_url=api.url, headers=ALICE, timeout=60.0, limits=limits) as client:
            svc = api.services
            ids = [await submit(client) for _ in range(tasks)]
            readers = [
                asyncio.create_task(
                    read_sse(client, f"/v1/tasks/{ids[i % tasks]}/events", params={"mode": "all"})
                )
                for i in range(clients)
            ]
            await eventually(lambda: _true(direct_members(svc) == clients), timeout_s=60)
            assert svc.hub.subscriptions == tasks
            await asyncio.gather(*(run_worker(svc.store, t, [*tokens(30), completed()]) for t in ids))
            reads = await asyncio.gather(*readers)
            for i, read in enumerate(reads):
                stored = [e async for _, e in svc.reader.replay(key_id(ids[i % tasks]))]
                assert [f.json["seq"] for f in read] == [e["seq"] for e in stored]
            await eventually(lambda: _true(svc.hub.subscriptions == 0 and svc.metrics.sse_clients == 0))


async def test_without_a_reachable_transport_frames_go_through_the_asgi_send(
    settings: StreamsSettings, redis: Any
) -> None:
    """A server whose ``send`` holds no transport (here: a bare ASGI call) gets the same
    stream through the fallback writer, pings included, and the response ends."""
    config = api_settings(settings, ping_interval_s=0.05)
    async with open_services(config) as svc:
        task_id = "fallback"
        await svc.store.create_task(key_id(task_id), owner="alice", agent="llm", input="x")
        body: list[bytes] = []
        ended = asyncio.Event()

        async def send(message: Any) -> None:
            if message["type"] == "http.response.body":
                body.append(message["body"])
                if message.get("more_body") is False:
                    ended.set()

        async def receive() -> dict[str, Any]:
            await ended.wait()
            return {"type": "http.disconnect"}

        slot = svc.slots.take("alice")
        response = LiveEventsResponse(
            svc.broadcast, key_id(task_id), "0", EventFilter.parse("all"), None, slot
        )
        served = asyncio.create_task(response({"type": "http", "method": "GET"}, receive, send))
        await eventually(lambda: _true(svc.broadcast.members == 1))
        await eventually(lambda: _true(b": ping\n\n" in body))  # a silent stream is pinged
        await run_worker(svc.store, task_id, [*tokens(20), completed()])
        await asyncio.wait_for(served, 30)
        events = frames_of(b"".join(body))
        stored = [e async for _, e in svc.reader.replay(key_id(task_id))]
        assert [e["seq"] for e in events] == [e["seq"] for e in stored]
        assert body[-1] == b"" and svc.metrics.sse_clients == 0 and svc.hub.subscriptions == 0


async def _true(value: bool) -> bool:
    return value
