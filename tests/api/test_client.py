"""The SDK against a real HTTP server: a small SSE stub that drops connections at random
points and honours ``Last-Event-ID`` (the boundary fake), and the real API when present."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import random
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from agentstream.streams.events import EventFilter, StreamingMode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from agentstream.sdk.client import (
    AgentStreamClient,
    AgentStreamConnectionError,
    AgentStreamError,
    Backoff,
    SSEFrame,
    SSEParser,
    cursor_key,
)

# arq's Worker.close() calls redis-py's deprecated close() when the real stack stops.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")

FAST = Backoff(initial_s=0.001, max_s=0.01)
API_KEY = "stub-key"


# ------------------------------------------------------------------------- the SSE stub


class _Drop(Exception):
    """Raised inside a response body to cut the connection mid-stream."""


class _DroppingResponse(StreamingResponse):
    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except _Drop:
            return  # no final body message: uvicorn closes the connection mid-body


@dataclass
class _Task:
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, event: dict[str, Any]) -> None:
        seq = len(self.events) + 1
        self.events.append({**event, "seq": seq, "id": f"{1_700_000_000_000 + seq}-0"})
        self.changed.set()
        self.changed = asyncio.Event()


@dataclass
class Stub:
    """What the stub holds and what it saw."""

    rng: random.Random
    drop_max: int = 0  # drop after a random number of frames in 1..drop_max; 0 never
    overlap: int = 0  # a buggy server that resends this many already-seen events
    rate_limit_first: int = 0
    gap_before: str | None = None
    down: bool = False
    tasks: dict[str, _Task] = field(default_factory=dict)
    connections: list[dict[str, str | None]] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    produce: list[asyncio.Task[None]] = field(default_factory=list)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _frame(event: dict[str, Any]) -> bytes:
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _build(stub: Stub) -> Starlette:
    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {API_KEY}"

    async def submit(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "unauthorized", "missing or unknown API key")
        body = await request.json()
        stub.bodies.append({"body": body, "headers": dict(request.headers)})
        task_id = body.get("task_id") or f"tsk_{len(stub.tasks) + 1}"
        task = stub.tasks.setdefault(task_id, _Task())
        task.append({"type": "queued", "agent": body["agent"], "input": body["input"]})
        stub.produce.append(asyncio.create_task(_produce(task, 30, 0.002)))
        return JSONResponse(
            {"task_id": task_id, "status": "queued", "events_url": f"/v1/tasks/{task_id}/events"},
            status_code=202,
        )

    async def ack(request: Request) -> Response:
        body = await request.json()
        stub.bodies.append({"ack": request.path_params["group"], **body})
        return JSONResponse({"acked": len(body["ids"])})

    async def events(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        header = request.headers.get("last-event-id")
        stub.connections.append(
            {
                "last_event_id": header,
                "after": request.query_params.get("after"),
                "group": request.query_params.get("group"),
                "consumer": request.query_params.get("consumer"),
            }
        )
        if stub.down:
            return _error(503, "unavailable", "down for maintenance")
        if not authorised(request):
            return _error(401, "unauthorized", "missing or unknown API key")
        if len(stub.connections) <= stub.rate_limit_first:
            return JSONResponse(
                {"error": {"code": "rate_limited", "message": "slow down"}},
                status_code=429,
                headers={"retry-after": "0"},
            )
        task = stub.tasks.get(task_id)
        if task is None:
            return _error(404, "not_found", f"no task {task_id}")
        flt = EventFilter.parse(request.query_params.get("mode"), request.query_params.get("types"))
        cursor = header or request.query_params.get("after") or "0"
        start = 0
        if cursor != "0":
            key = cursor_key(cursor)
            start = sum(1 for e in task.events if cursor_key(e["id"]) <= key)
            start = max(0, start - stub.overlap)
        budget = stub.rng.randint(1, stub.drop_max) if stub.drop_max else None

        async def body() -> AsyncIterator[bytes]:
            nonlocal budget
            yield b": connected\n\n"
            if stub.gap_before is not None:
                yield f"event: gap\ndata: {json.dumps(stub.gap_before)}\n\n".encode()
            index = start
            while True:
                while index < len(task.events):
                    event = task.events[index]
                    index += 1
                    if not flt.matches(event):
                        continue
                    if budget is not None:
                        if budget == 0:
                            raise _Drop
                        budget -= 1
                    yield _frame(event)
                    if event["type"] == "completed":
                        return
                    if index % 7 == 0:
                        yield b": ping\n\n"
                waiter = task.changed
                await asyncio.wait_for(waiter.wait(), timeout=5)

        return _DroppingResponse(body(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/tasks", submit, methods=["POST"]),
            Route("/v1/tasks/{task_id}/events", events, methods=["GET"]),
            Route("/v1/tasks/{task_id}/groups/{group}/ack", ack, methods=["POST"]),
        ]
    )


async def _produce(task: _Task, tokens: int, delay_s: float) -> None:
    for i in range(tokens):
        await asyncio.sleep(delay_s)
        task.append({"type": "token", "content": f"w{i} "})
    task.append({"type": "result", "output": "done", "success": True, "execution_time": 0.1})
    task.append({"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.1})


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app on a free loopback port in this loop; yields its base URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="off", access_log=False, log_config=None, timeout_graceful_shutdown=1
    )
    server = _Quiet(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        sock.close()


@pytest.fixture
async def stub() -> AsyncIterator[tuple[Stub, str]]:
    state = Stub(rng=random.Random(1234))
    async with serve(_build(state)) as url:
        yield state, url
    for producer in state.produce:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


def _finished_task(stub: Stub, task_id: str, tokens: int) -> _Task:
    task = _Task()
    task.append({"type": "queued", "agent": "llm", "input": "hi"})
    for i in range(tokens):
        task.append({"type": "token", "content": f"w{i} "})
    task.append({"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.1})
    stub.tasks[task_id] = task
    return task


def _client(url: str, **kwargs: Any) -> AgentStreamClient:
    return AgentStreamClient(url, API_KEY, backoff=FAST, **kwargs)


# -------------------------------------------------------------------------------- tests


async def test_resumes_across_random_drops_without_duplicates_or_gaps(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.drop_max = 5
    _finished_task(state, "t1", 200)
    async with _client(url, max_reconnects=3) as client:
        seen = [event async for event in client.events("t1")]
    assert [e["seq"] for e in seen] == list(range(1, 203))
    assert seen[-1]["type"] == "completed"
    resumed = [c["last_event_id"] for c in state.connections[1:]]
    assert len(resumed) > 20, "the stub should have dropped the stream many times"
    assert all(resumed), "every reconnect resumes with Last-Event-ID"
    assert state.connections[0]["last_event_id"] is None


async def test_live_tail_with_drops_while_the_task_runs(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.drop_max = 4
    async with _client(url) as client:
        task = await client.submit("hello", agent="llm")
        text = ""
        seqs = []
        async for event in client.events(task["task_id"]):
            seqs.append(event["seq"])
            text += event.get("content", "")
    assert seqs == [*range(1, 32), 33]  # core mode leaves out `result` (seq 32)
    assert text == "".join(f"w{i} " for i in range(30))


async def test_duplicates_from_the_server_are_dropped_by_cursor(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.drop_max, state.overlap = 6, 3
    _finished_task(state, "t1", 60)
    async with _client(url) as client:
        seqs = [event["seq"] async for event in client.events("t1")]
    assert seqs == list(range(1, 63))


async def test_after_resumes_from_a_cursor_and_mode_filters(stub: tuple[Stub, str]) -> None:
    state, url = stub
    task = _finished_task(state, "t1", 10)
    async with _client(url) as client:
        later = [e async for e in client.events("t1", after=task.events[4]["id"], mode=StreamingMode.ALL)]
        chunks = [e["type"] async for e in client.events("t1", mode="chunk")]
    assert [e["seq"] for e in later] == list(range(6, 13))
    assert state.connections[0]["last_event_id"] == task.events[4]["id"]
    assert chunks == ["token"] * 10 + ["completed"]


async def test_not_found_raises_at_once(stub: tuple[Stub, str]) -> None:
    state, url = stub
    async with _client(url) as client:
        with pytest.raises(AgentStreamError) as caught:
            [e async for e in client.events("missing")]
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert "no task missing" in caught.value.message
    assert len(state.connections) == 1


async def test_unauthorised_raises_without_retry(stub: tuple[Stub, str]) -> None:
    state, url = stub
    _finished_task(state, "t1", 1)
    async with AgentStreamClient(url, "wrong", backoff=FAST) as client:
        with pytest.raises(AgentStreamError) as caught:
            [e async for e in client.events("t1")]
    assert caught.value.status == 401
    assert len(state.connections) == 1


async def test_rate_limit_is_retried_with_backoff(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.rate_limit_first = 2
    _finished_task(state, "t1", 3)
    async with _client(url) as client:
        seqs = [e["seq"] async for e in client.events("t1")]
    assert seqs == [1, 2, 3, 4, 5]
    assert len(state.connections) == 3


async def test_rate_limit_gives_up_after_max_reconnects(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.rate_limit_first = 100
    _finished_task(state, "t1", 3)
    async with _client(url, max_reconnects=2) as client:
        with pytest.raises(AgentStreamError) as caught:
            [e async for e in client.events("t1")]
    assert caught.value.status == 429
    assert len(state.connections) == 3


async def test_a_server_that_stays_down_ends_in_a_connection_error(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.down = True
    async with _client(url, max_reconnects=3) as client:
        with pytest.raises(AgentStreamConnectionError) as caught:
            [e async for e in client.events("t1")]
    assert caught.value.status == 503
    assert len(state.connections) == 4


async def test_unreachable_server_ends_in_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with _client(f"http://127.0.0.1:{port}", max_reconnects=1) as client:
        with pytest.raises(AgentStreamConnectionError) as caught:
            [e async for e in client.events("t1")]
        assert caught.value.status == 0
        with pytest.raises(AgentStreamConnectionError):
            await client.get("t1")


async def test_gap_frame_is_yielded_once_as_an_event(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.gap_before, state.drop_max = "1700000000000005-0", 3
    _finished_task(state, "t1", 8)
    async with _client(url) as client:
        seen = [e async for e in client.events("t1", after="1-0")]
    assert seen[0] == {"type": "gap", "first_cursor": "1700000000000005-0"}
    assert [e["type"] for e in seen].count("gap") == 1
    assert [e["seq"] for e in seen[1:]] == list(range(1, 11))


async def test_streaming_run_submits_and_streams_chunks(stub: tuple[Stub, str]) -> None:
    state, url = stub
    async with _client(url) as client:
        events = [
            e
            async for e in client.streaming_run(
                input="hi", agent="llm", streaming_mode=StreamingMode.CHUNK, task_id="mine", max_iterations=3
            )
        ]
    assert {e["type"] for e in events} == {"token", "completed"}
    assert state.bodies[0]["body"] == {"input": "hi", "agent": "llm", "task_id": "mine", "max_iterations": 3}


async def test_submit_sends_the_idempotency_key(stub: tuple[Stub, str]) -> None:
    state, url = stub
    async with _client(url) as client:
        created = await client.submit("x", idempotency_key="k-1", metadata={"a": 1}, tools=["calculator"])
    assert created["status"] == "queued"
    assert state.bodies[0]["headers"]["idempotency-key"] == "k-1"
    assert state.bodies[0]["body"]["tools"] == ["calculator"]


async def test_group_events_pass_group_and_consumer_and_ack(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.drop_max = 4
    _finished_task(state, "t1", 12)
    async with _client(url) as client:
        ids = [e["id"] async for e in client.group_events("t1", "billing", "c1")]
        acked = await client.ack("t1", "billing", ids)
    assert len(ids) == 14 and len(set(ids)) == 14
    assert acked == 14
    assert {(c["group"], c["consumer"]) for c in state.connections} == {("billing", "c1")}
    assert state.bodies[-1] == {"ack": "billing", "ids": ids}


async def test_closed_client_refuses_use(stub: tuple[Stub, str]) -> None:
    _, url = stub
    client = _client(url)
    async with client:
        pass
    with pytest.raises(RuntimeError, match="closed AgentStreamClient"):
        await client.get("t1")


def test_sse_read_timeout_must_cover_two_pings() -> None:
    with pytest.raises(ValueError, match="twice the server ping"):
        AgentStreamClient("http://x", sse_timeout=httpx.Timeout(5.0))


def test_backoff_grows_with_jitter_and_caps() -> None:
    backoff = Backoff(initial_s=0.1, max_s=1.0, jitter=0.5)
    for attempt, base in [(0, 0.1), (1, 0.2), (3, 0.8), (10, 1.0)]:
        delay = backoff.delay(attempt)
        assert base * 0.5 <= delay <= base


def test_sse_parser_frames_comments_and_multiline_data() -> None:
    parser = SSEParser()
    lines = [": ping", "", "id: 5-0", "event: token", "data: {\"a\":", "data: 1}", "", "retry: 300",
             "data:plain", ""]  # fmt: skip
    frames = [frame for line in lines if (frame := parser.feed(line)) is not None]
    assert frames == [SSEFrame("token", '{"a":\n1}', "5-0"), SSEFrame("message", "plain", None)]
    assert parser.retry_ms == 300


# ----------------------------------------------------------------- against the real API


def _real_app_available() -> bool:
    modules = ("api.app", "api.settings", "agentstream.worker.jobs", "agentstream.worker.settings")
    try:
        return all(importlib.util.find_spec(name) is not None for name in modules)
    except ImportError:
        return False


real_api = pytest.mark.skipif(not _real_app_available(), reason="api.app or the worker is not there yet")


@pytest.fixture(scope="module")
async def stack(redis_url: str) -> AsyncIterator[tuple[str, str]]:
    """The real API and an arq worker in this loop, the scripted model behind them."""
    from agentstream.worker.scripted_llm import ScriptedLLMServer

    from agentstream.cli.main import running_stack

    async with (
        ScriptedLLMServer() as llm,
        running_stack(redis_url, model_base_url=llm.base_url, prefix=f"t{uuid.uuid4().hex[:8]}") as stack,
    ):
        yield stack


@real_api
async def test_end_to_end_against_the_real_api(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        task = await client.submit("What is 17 * 23?", agent="hybrid")
        events = [e async for e in client.events(task["task_id"], mode="all")]
        replayed = [e async for e in client.events(task["task_id"], mode="all", after="0")]
        paged = [e async for e in client.replay(task["task_id"], mode="all", page_size=5)]
        status = await client.get(task["task_id"])
    assert events[0]["type"] == "queued" and events[-1]["type"] == "completed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["id"] for e in replayed] == [e["id"] for e in events] == [e["id"] for e in paged]
    assert "391" in "".join(e.get("content", "") for e in events if e["type"] == "token")
    assert status["status"] in {"succeeded", "completed"}


@real_api
async def test_real_api_resumes_from_the_last_cursor(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        task = await client.submit("[slow:20] What is 17 * 23?", agent="hybrid", idempotency_key="resume-1")
        first: list[dict[str, Any]] = []
        async for event in client.events(task["task_id"], mode="all"):
            first.append(event)
            if len(first) == 4:
                break  # the consumer goes away mid-stream
        rest = [e async for e in client.events(task["task_id"], mode="all", after=first[-1]["id"])]
    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    assert rest[-1]["type"] == "completed"


@real_api
async def test_real_api_errors_are_typed(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        with pytest.raises(AgentStreamError) as missing:
            await client.get("no_such_task")
        with pytest.raises(AgentStreamError) as bad_mode:
            [e async for e in client.events("no_such_task", mode="loud")]
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert "no_such_task" in missing.value.message
    assert bad_mode.value.status in {400, 404}  # unknown task or unknown mode: both refused, no retry
    async with AgentStreamClient(url, "wrong-key", backoff=FAST) as client:
        with pytest.raises(AgentStreamError) as unauthorised:
            await client.get("no_such_task")
    assert (unauthorised.value.status, unauthorised.value.code) == (401, "unauthorized")


@real_api
async def test_real_api_group_delivery_and_ack(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        task = await client.submit("What is 17 * 23?", agent="hybrid")
        delivered = [e async for e in client.group_events(task["task_id"], "audit", "c1", mode="all")]
        acked = await client.ack(task["task_id"], "audit", [e["id"] for e in delivered])
        groups = await client.groups(task["task_id"])
    assert delivered[0]["seq"] == 1 and delivered[-1]["type"] == "completed"
    assert 0 <= acked <= len(delivered)
    assert "audit" in json.dumps(groups)


async def test_two_sdk_group_consumers_both_end_cleanly(stack: tuple[str, str]) -> None:
    """The consumer that does not receive ``completed`` ends on the server's ``drained``
    frame, instead of reconnecting until it gives up."""
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        task = await client.submit("What is 17 * 23?", agent="hybrid")
        task_id = task["task_id"]

        async def consume(name: str) -> list[dict[str, Any]]:
            got = []
            async for event in client.group_events(task_id, "split", name, mode="all"):
                got.append(event)
                await client.ack(task_id, "split", [event["id"]])
            return got

        first, second = await asyncio.wait_for(asyncio.gather(consume("a"), consume("b")), 60)
    ids = [e["id"] for e in first + second]
    assert len(ids) == len(set(ids))
    assert [e["type"] for e in first + second].count("completed") == 1
