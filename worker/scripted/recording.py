"""A bare HTTP/1.1 server on loopback that keeps each request's JSON body and answers every
request with the same one-token chat-completions stream.

For what the scripted server cannot tell: the exact body a client sent (a test compares it
with the one the ``openai`` SDK's own ``create`` sends), and a model whose own CPU per
request is next to nothing (``bench/model_request_bench.py`` runs it as a child process:
``python -m agentstream.worker.scripted.recording`` prints its port, then serves until its
standard input closes).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, Self

__all__ = ["RecordingServer"]

SSE = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
REPLY = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s" % (
    len(SSE),
    SSE,
)
#: a request head larger than this is refused (the connection closes)
MAX_HEAD = 64 * 1024


class RecordingServer:
    """``async with RecordingServer() as server``: ``server.base_url`` to point a client at,
    ``server.bodies`` the JSON bodies received, in order (``keep=False``: none kept)."""

    def __init__(self, *, keep: bool = True) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._keep = keep
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started: use `async with RecordingServer()`")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=MAX_HEAD)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                body = await reader.readexactly(length)
                if self._keep:
                    self.bodies.append(json.loads(body))
                writer.write(REPLY)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


async def _main() -> None:
    async with RecordingServer(keep=False) as server:
        print(server.port, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes stdin


if __name__ == "__main__":
    asyncio.run(_main())
