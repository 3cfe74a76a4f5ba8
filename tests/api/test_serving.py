"""The deployed HTTP protocol (``api.serving``) as a live stream sees it: it tells the app
when a connection is lost, so a live stream keeps no task waiting for that, and its lean
per-connection state (flow control, queue of pipelined requests) behaves as uvicorn's."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest

from agentstream.api.serving import LazyFlowControl
from agentstream.streams import StreamsSettings
from tests.api.helpers import completed, run_worker, sse_frames
from tests.api.server import Api, api_settings, submit
from tests.api.test_broadcast import serve
from tests.harness import eventually


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


async def test_lazy_flow_control_pauses_and_resumes_writes_and_reads() -> None:
    transport = Transport()
    flow = LazyFlowControl(transport)
    await asyncio.wait_for(flow.drain(), 1)  # writable: returns at once
    flow.pause_writing()
    assert flow.write_paused
    waiters = [asyncio.create_task(flow.drain()) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiters)
    flow.resume_writing()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert not flow.write_paused and flow._writable is None  # no Event kept once writable
    flow.pause_reading()
    assert flow.read_paused and not transport.reading
    flow.resume_reading()
    assert not flow.read_paused and transport.reading


def watchers() -> int:
    return sum(task.get_name() == "sse-watch" for task in asyncio.all_tasks())


async def live(api: Api) -> bool:
    return api.services.broadcast.members == 1


@pytest.mark.parametrize(("http", "watching"), [("deployed", 0), ("h11", 1)])
async def test_a_departed_client_is_seen_at_once_without_a_task_to_watch_for_it(
    settings: StreamsSettings, redis: Any, http: str, watching: int
) -> None:
    """The deployed protocol reports the connection's loss; another server's client is
    watched by a task of its own. Either way the stream ends when the client goes."""
    async with serve(api_settings(settings), http) as api, api.client() as client:
        task_id = await submit(client)
        async with client.stream("GET", f"/v1/tasks/{task_id}/events") as response:
            frames = sse_frames(response)
            async with contextlib.aclosing(frames):
                assert (await anext(frames)).event == "queued"
                await eventually(lambda: live(api))
                assert watchers() == watching
        svc = api.services
        await eventually(lambda: _true(svc.metrics.sse_clients == 0 and svc.hub.subscriptions == 0))
        assert watchers() == 0


async def test_pipelined_requests_are_answered_in_order(settings: StreamsSettings, redis: Any) -> None:
    async with serve(api_settings(settings), "deployed") as api:
        host, port = api.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
            first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(next(line for line in first.split(b"\r\n") if line.lower().startswith(b"content-length"))
                         .split(b":")[1])  # fmt: skip
            await reader.readexactly(length)
            second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        finally:
            writer.close()
        assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 404")


async def test_a_stream_over_a_keep_alive_connection_then_another_request(
    settings: StreamsSettings, redis: Any
) -> None:
    """A connection whose live stream ended serves its next request (the loss hook of the
    stream is gone with it)."""
    async with serve(api_settings(settings), "deployed") as api:
        limits = httpx.Limits(max_connections=1)
        async with api.client(limits=limits) as client:
            task_id = await submit(client)
            await run_worker(api.services.store, task_id, [completed()])
            async with client.stream("GET", f"/v1/tasks/{task_id}/events") as response:
                events = [frame.event async for frame in sse_frames(response)]
            assert events[0] == "queued" and events[-1] == "completed"
            assert (await client.get("/healthz")).status_code == 200
        await eventually(lambda: _true(api.services.metrics.sse_clients == 0))


async def _true(value: bool) -> bool:
    return value
