"""Test helpers: an SSE frame parser, a simulated worker (at once or slowly), and event builders."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from agentstream.streams import TaskStore
from agentstream.streams.keys import scoped_task_id


@dataclass(frozen=True)
class Frame:
    """One SSE frame (or a ``: comment``)."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    comment: str | None = None

    @property
    def json(self) -> dict[str, Any]:
        assert self.data is not None
        value = orjson.loads(self.data)
        assert isinstance(value, dict)
        return value


async def sse_frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """Parse an SSE body as it arrives."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield Frame(**fields)
                fields = {}
            continue
        if line.startswith(":"):
            yield Frame(comment=line[1:].strip())
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
    if fields:
        yield Frame(**fields)


async def read_sse(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    comments: bool = False,
) -> list[Frame]:
    """Every frame until the server ends the response. A 204 (a finished stream read from
    its end: nothing will come) is no frames."""
    async with client.stream("GET", url, params=params, headers=headers) as response:
        if response.status_code == 204:
            return []
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [f async for f in sse_frames(response) if comments or f.comment is None]


def tokens(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"type": "token", "content": f"w{i} "} for i in range(start, start + n)]


def result(output: str = "done") -> dict[str, Any]:
    return {"type": "result", "output": output, "success": True, "execution_time": 0.1}


def completed(status: str = "succeeded") -> dict[str, Any]:
    return {"type": "completed", "success": status == "succeeded", "status": status, "execution_time": 0.1}


def key_id(task_id: str, tenant: str = "alice") -> str:
    """The key id under which the API stores ``tenant``'s task ``task_id`` (ids are per
    tenant); an id that already is a key id is returned as it is."""
    return task_id if "/" in task_id else scoped_task_id(tenant, task_id)


async def run_worker(
    store: TaskStore,
    task_id: str,
    events: Iterable[Mapping[str, Any]],
    *,
    wait_each: bool = False,
    tenant: str = "alice",
) -> None:
    """Play the worker for ``tenant``'s task: open an attempt and append ``events``
    (``wait_each``: one by one)."""
    attempt = await store.open_attempt(key_id(task_id, tenant))
    async with store.writer(attempt) as writer:
        for event in events:
            if wait_each:
                await writer.write(event)
            else:
                await writer.append(event)


async def write_slowly(
    store: TaskStore, task_id: str, events: Iterable[Mapping[str, Any]], delay_s: float
) -> None:
    """Play the worker, one stored event every ``delay_s``."""
    attempt = await store.open_attempt(key_id(task_id))
    async with store.writer(attempt) as writer:
        for event in events:
            await asyncio.sleep(delay_s)
            await writer.write(event)


@contextlib.asynccontextmanager
async def stalled_reader(base_url: str, path: str, authorization: str) -> AsyncIterator[socket.socket]:
    """An SSE request for ``path`` on a raw socket with a 4 KB receive buffer that the test
    reads only when it wants to (``loop.sock_recv``): a client that stops reading."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, int(port)))
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        yield sock
    finally:
        sock.close()
