"""A small SSE server for the SDK's tests: it drops connections at random points, resends
events, rate-limits, reports gaps and honours ``Last-Event-ID`` (the boundary fake), and a
helper that serves any ASGI app on a loopback port inside the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from agentstream.protocol import cursor_key
from agentstream.serving import InLoopServer
from agentstream.streams.events import EventFilter

API_KEY = "stub-key"


class _Drop(Exception):
    """Raised inside a response body to cut the connection mid-stream."""


class _DroppingResponse(StreamingResponse):
    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        except _Drop:
            return  # no final body message: uvicorn closes the connection mid-body


@dataclass
class StubTask:
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
    #: after the frame of this seq, an extra frame with no ``id:`` line (and no id in its data)
    idless_after: int | None = None
    #: cut the first connection right after that id-less frame
    drop_after_idless: bool = False
    down: bool = False
    tasks: dict[str, StubTask] = field(default_factory=dict)
    connections: list[dict[str, str | None]] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    produce: list[asyncio.Task[None]] = field(default_factory=list)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _frame(event: dict[str, Any]) -> bytes:
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _authorised(request: Request) -> bool:
    return request.headers.get("authorization") == f"Bearer {API_KEY}"


def _start(stub: Stub, task: StubTask, cursor: str) -> int:
    if cursor == "0":
        return 0
    key = cursor_key(cursor)
    start = sum(1 for e in task.events if cursor_key(e["id"]) <= key)
    return max(0, start - stub.overlap)


def _body(stub: Stub, task: StubTask, flt: EventFilter, start: int) -> AsyncIterator[bytes]:
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
                if event["seq"] == stub.idless_after:
                    yield b'event: notice\ndata: {"type": "notice", "text": "no id"}\n\n'
                    if stub.drop_after_idless:
                        stub.drop_after_idless = False
                        raise _Drop
                if event["type"] == "completed":
                    return
                if index % 7 == 0:
                    yield b": ping\n\n"
            waiter = task.changed
            await asyncio.wait_for(waiter.wait(), timeout=5)

    return body()


def build_stub(stub: Stub) -> Starlette:
    async def submit(request: Request) -> Response:
        if not _authorised(request):
            return _error(401, "unauthorized", "missing or unknown API key")
        body = await request.json()
        stub.bodies.append({"body": body, "headers": dict(request.headers)})
        task_id = body.get("task_id") or f"tsk_{len(stub.tasks) + 1}"
        task = stub.tasks.setdefault(task_id, StubTask())
        task.append({"type": "queued", "agent": body["agent"], "input": body["input"]})
        stub.produce.append(asyncio.create_task(produce(task, 30, 0.002)))
        return JSONResponse(
            {"task_id": task_id, "status": "queued", "events_url": f"/v1/tasks/{task_id}/events"},
            status_code=202,
        )

    async def ack(request: Request) -> Response:
        body = await request.json()
        stub.bodies.append({"ack": request.path_params["group"], **body})
        return JSONResponse({"acked": len(body["ids"])})

    async def events(request: Request) -> Response:
        header = request.headers.get("last-event-id")
        query = request.query_params
        stub.connections.append({"last_event_id": header, "after": query.get("after"), "group": query.get("group"),
                                 "consumer": query.get("consumer"), "mode": query.get("mode"),
                                 "types": query.get("types")})  # fmt: skip
        if stub.down:
            return _error(503, "unavailable", "down for maintenance")
        if not _authorised(request):
            return _error(401, "unauthorized", "missing or unknown API key")
        if len(stub.connections) <= stub.rate_limit_first:
            return JSONResponse({"error": {"code": "rate_limited", "message": "slow down"}}, status_code=429,
                                headers={"retry-after": "0"})  # fmt: skip
        task = stub.tasks.get(request.path_params["task_id"])
        if task is None:
            return _error(404, "not_found", f"no task {request.path_params['task_id']}")
        flt = EventFilter.parse(query.get("mode"), query.get("types"))
        start = _start(stub, task, header or query.get("after") or "0")
        return _DroppingResponse(_body(stub, task, flt, start), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/v1/tasks", submit, methods=["POST"]),
            Route("/v1/tasks/{task_id}/events", events, methods=["GET"]),
            Route("/v1/tasks/{task_id}/groups/{group}/ack", ack, methods=["POST"]),
        ]
    )


async def produce(task: StubTask, tokens: int, delay_s: float) -> None:
    for i in range(tokens):
        await asyncio.sleep(delay_s)
        task.append({"type": "token", "content": f"w{i} "})
    task.append({"type": "result", "output": "done", "success": True, "execution_time": 0.1})
    task.append({"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.1})


def finished_task(stub: Stub, task_id: str, tokens: int) -> StubTask:
    task = StubTask()
    task.append({"type": "queued", "agent": "llm", "input": "hi"})
    for i in range(tokens):
        task.append({"type": "token", "content": f"w{i} "})
    task.append({"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.1})
    stub.tasks[task_id] = task
    return task


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app on a free loopback port in this loop; yields its base URL."""
    async with InLoopServer(app) as server:
        yield server.url
