"""Serve an ASGI app with uvicorn inside the running event loop, for one ``async with``.

The one helper behind every in-process server of the project: the CLI's stack (the API),
the scripted model, and the test suite's servers. It depends on uvicorn alone, so any
layer may import it (it sits beside :mod:`agentstream.protocol`, below everything)::

    async with InLoopServer(app) as server:          # a free loopback port
        httpx.get(f"{server.url}/healthz")

The socket is bound before uvicorn starts, so ``port=0`` resolves at once and a bind
error raises in the caller. The server never installs signal handlers: the host process
(the CLI, pytest) owns SIGINT/SIGTERM, and an embedded server that took them would
swallow a Ctrl-C meant for its host.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import uvicorn

__all__ = ["EmbeddedServer", "InLoopServer", "bind", "url_host"]


class EmbeddedServer(uvicorn.Server):
    """``uvicorn.Server`` that leaves signal handling to the host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when the host has a colon)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def url_host(host: str) -> str:
    """``host`` as it appears in a URL (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host else host


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class InLoopServer:
    """Run ``app`` under uvicorn as a task of the current loop until the block ends.

    ``config`` goes to ``uvicorn.Config`` (defaults: no lifespan, no access log, no logging
    configuration of its own, a 1 s graceful shutdown). Start-up waits at most
    ``startup_timeout_s``; shutdown asks uvicorn to exit and cancels the task after
    ``shutdown_timeout_s``. An error that stopped the server is raised, never dropped.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "uvicorn",
        startup_timeout_s: float = 10.0,
        shutdown_timeout_s: float = 10.0,
        **config: Any,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._name = name
        self._startup_timeout_s = startup_timeout_s
        self._shutdown_timeout_s = shutdown_timeout_s
        options: dict[str, Any] = {
            "lifespan": "off",
            "access_log": False,
            "log_config": None,
            "timeout_graceful_shutdown": 1,
        }
        self._config = uvicorn.Config(app, **{**options, **config})
        self._state = _State.UNOPENED
        self._sock: socket.socket | None = None
        self._server: EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._sock is None or self._state is not _State.OPEN:
            raise RuntimeError(f"the {self._name} server is not running; use `async with`")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, no trailing slash."""
        return f"http://{url_host(self._host)}:{self.port}"

    async def __aenter__(self) -> InLoopServer:
        if self._state is not _State.UNOPENED:
            raise RuntimeError(f"the {self._name} server runs only once; create a new one")
        self._state = _State.OPEN
        self._sock = bind(self._host, self._requested_port)
        self._server = server = EmbeddedServer(self._config)
        self._task = task = asyncio.create_task(self._serve(server, self._sock), name=self._name)
        try:
            async with asyncio.timeout(self._startup_timeout_s):
                while not server.started:
                    if task.done():
                        task.result()  # raises what stopped the server
                        raise RuntimeError(f"the {self._name} server stopped while starting")
                    await asyncio.sleep(0.005)
        except BaseException:
            with contextlib.suppress(Exception):  # the start-up error is the one to report
                await self._stop()
            raise
        return self

    async def _serve(self, server: EmbeddedServer, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:
            # uvicorn exits the process when the app's start-up fails: here that would end
            # the host's event loop, so it becomes an error of this server instead.
            raise RuntimeError(
                f"the {self._name} server stopped while starting (uvicorn exit code {exc.code}; "
                "see the log above)"
            ) from None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        self._state = _State.CLOSED
        server, task, sock = self._server, self._task, self._sock
        self._server = self._task = None
        try:
            if server is not None and task is not None:
                server.should_exit = True
                # uvicorn cancels lingering responses after its graceful timeout; this
                # bound is the backstop should that ever hang.
                done, _ = await asyncio.wait([task], timeout=self._shutdown_timeout_s)
                if not done:
                    task.cancel()
                    await asyncio.wait([task], timeout=self._shutdown_timeout_s)
                    raise TimeoutError(
                        f"the {self._name} server did not stop within {self._shutdown_timeout_s:g}s"
                    )
                error = None if task.cancelled() else task.exception()
                if error is not None:
                    raise error
        finally:
            if sock is not None:
                sock.close()
