"""The SSE response's bounded buffering, without a network: a stalled socket costs at most
``buffer`` frames, and a departed client stops the source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentstream.api.metrics import Metrics
from agentstream.api.sse import PING, EventStreamResponse, FrameCache, SlowClient, event_frame, pump


class Source:
    """An endless frame source that counts what it produced and whether it was closed."""

    def __init__(self, limit: int | None = None) -> None:
        self.produced = 0
        self.closed = False
        self.limit = limit

    async def frames(self) -> AsyncIterator[bytes]:
        try:
            while self.limit is None or self.produced < self.limit:
                self.produced += 1
                yield b"id: %d-0\nevent: token\ndata: {}\n\n" % self.produced
                await asyncio.sleep(0)
        finally:
            self.closed = True


async def never() -> Any:
    await asyncio.Event().wait()


async def test_pump_holds_at_most_the_buffer_and_gives_up_on_a_stalled_reader() -> None:
    source = Source()
    queue: asyncio.Queue[bytes] = asyncio.Queue(3)
    with pytest.raises(SlowClient):
        await pump(source.frames(), queue, slow_client_s=0.05)
    assert queue.qsize() == 3
    assert source.produced == 4  # three queued, one waiting for room
    assert source.closed


async def test_pump_keeps_pace_with_a_slow_but_steady_reader() -> None:
    source = Source(limit=50)
    queue: asyncio.Queue[bytes] = asyncio.Queue(2)
    received: list[bytes] = []

    async def consume() -> None:
        while (frame := await queue.get()) != b"":
            received.append(frame)
            await asyncio.sleep(0.001)

    consumer = asyncio.create_task(consume())
    # a generous limit: a loaded machine may pause the consumer for a while
    await pump(source.frames(), queue, slow_client_s=30.0)
    await consumer
    assert len(received) == 50 and source.closed


async def test_a_stalled_socket_costs_at_most_the_buffer() -> None:
    metrics = Metrics()
    source = Source()
    messages: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        messages.append(message)
        if message["type"] == "http.response.body":
            await never()  # the socket is full and stays full

    response = EventStreamResponse(
        source.frames(), metrics=metrics, buffer=8, ping_interval_s=10, slow_client_s=0.05
    )
    await asyncio.wait_for(response({"type": "http"}, never, send), 30)
    # one frame in the stalled send, eight queued, one waiting for room
    assert source.produced <= 10
    assert source.closed
    assert metrics.slow_client_disconnects == 1 and metrics.sse_clients == 0
    assert not any(m.get("more_body") is False for m in messages)  # cut off, not completed


async def test_a_disconnect_stops_the_source_at_once() -> None:
    metrics = Metrics()
    source = Source()
    disconnected = asyncio.Event()
    sent = 0

    async def send(message: Any) -> None:
        nonlocal sent
        if message["type"] == "http.response.body":
            sent += 1
            if sent == 3:
                disconnected.set()

    async def receive() -> dict[str, Any]:
        await disconnected.wait()
        return {"type": "http.disconnect"}

    response = EventStreamResponse(
        source.frames(), metrics=metrics, buffer=4, ping_interval_s=10, slow_client_s=5
    )
    await asyncio.wait_for(response({"type": "http"}, receive, send), 30)
    assert source.closed and metrics.sse_clients == 0
    assert metrics.slow_client_disconnects == 0


async def test_a_finite_stream_is_sent_whole_then_ended() -> None:
    metrics = Metrics()
    source = Source(limit=5)
    body: list[bytes] = []
    ended = False

    async def send(message: Any) -> None:
        nonlocal ended
        if message["type"] == "http.response.body":
            body.append(message["body"])
            ended = ended or message["more_body"] is False

    response = EventStreamResponse(
        source.frames(), metrics=metrics, buffer=2, ping_interval_s=10, slow_client_s=5
    )
    await asyncio.wait_for(response({"type": "http"}, never, send), 30)
    assert b"".join(body).count(b"event: token") == 5 and ended
    assert metrics.events_delivered == 5


async def test_silence_is_filled_with_pings() -> None:
    metrics = Metrics()
    pings = 0
    enough = asyncio.Event()

    async def quiet() -> AsyncIterator[bytes]:
        await never()
        yield b""

    async def send(message: Any) -> None:
        nonlocal pings
        if message.get("body") == PING:
            pings += 1
            if pings == 2:
                enough.set()

    async def receive() -> dict[str, Any]:
        await enough.wait()
        return {"type": "http.disconnect"}

    response = EventStreamResponse(quiet(), metrics=metrics, buffer=2, ping_interval_s=0.02, slow_client_s=5)
    await asyncio.wait_for(response({"type": "http"}, receive, send), 30)
    assert pings == 2


async def test_cancelling_the_response_propagates_and_cleans_up() -> None:
    metrics = Metrics()
    source = Source()

    async def send(message: Any) -> None:
        await asyncio.sleep(0.001)

    response = EventStreamResponse(
        source.frames(), metrics=metrics, buffer=2, ping_interval_s=10, slow_client_s=5
    )
    task = asyncio.create_task(response({"type": "http"}, never, send))
    async with asyncio.timeout(30):  # until the response is streaming, however loaded the box
        while source.produced < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.closed and metrics.sse_clients == 0


def test_frame_cache_encodes_each_event_once_and_stays_bounded() -> None:
    cache = FrameCache(size=3)
    event = {"type": "token", "content": "hi", "id": "5-0"}
    first = cache.frame("t1", "5-0", event)
    assert (
        first
        == event_frame("5-0", event)
        == b'id: 5-0\nevent: token\ndata: {"type":"token","content":"hi","id":"5-0"}\n\n'
    )
    assert cache.frame("t1", "5-0", {"type": "token", "content": "changed"}) is first  # shared
    for i in range(10):
        cache.frame("t1", f"{i}-1", event)
    assert len(cache) == 3
    gap = cache.frame("t1", "1-0", {"type": "gap", "first_cursor": "9-0", "id": "1-0"})
    assert gap == b'event: gap\ndata: {"type":"gap","first_cursor":"9-0"}\n\n'
    assert b"\n" not in event_frame("1-0", {"type": "bad\nname"}).split(b"\n")[1][7:]
