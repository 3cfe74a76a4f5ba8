"""Serving the scripted model: in the running event loop, or in the foreground (CLI)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack
from types import TracebackType

import uvicorn
from agentstream.worker.scripted.app import ScriptState, build_app, create_app
from starlette.types import ASGIApp

__all__ = ["ScriptedLLMServer", "main"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts, so a port of 0 is resolved and bind errors raise here."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@contextlib.asynccontextmanager
async def _serve_in_loop(
    app: ASGIApp, sock: socket.socket, *, startup_timeout_s: float, shutdown_timeout_s: float
) -> AsyncIterator[None]:
    """Run uvicorn on ``sock`` in the running loop for the block, leaving signals to the
    host process (pytest, the demo), whose Ctrl-C an embedded server must not swallow."""

    class Embedded(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    # Nothing a test double serves is worth waiting long for at shutdown.
    config = uvicorn.Config(
        app, lifespan="off", access_log=False, log_config=None, timeout_graceful_shutdown=1
    )
    server = Embedded(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"scripted-llm:{sock.getsockname()[1]}")
    try:
        async with asyncio.timeout(startup_timeout_s):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped the server
                    raise RuntimeError("the scripted LLM server stopped while starting")
                await asyncio.sleep(0.005)
        yield
    finally:
        server.should_exit = True
        # uvicorn cancels lingering responses after timeout_graceful_shutdown; this bound
        # is the backstop should that ever hang.
        await asyncio.wait_for(task, timeout=shutdown_timeout_s)
        sock.close()


class _Lifecycle(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class ScriptedLLMServer:
    """Serve the scripted model on loopback, in the running event loop, for one block.

    ::

        async with ScriptedLLMServer() as llm:
            client = AsyncOpenAI(base_url=llm.base_url, api_key="x")

    ``port=0`` (the default) takes a free port; read it back from ``.port``.
    ``base_url_with("length", "no-done")`` is a base URL whose every request behaves as if
    its message carried those directives.
    """

    def __init__(
        self,
        *,
        token_delay_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 10.0,
        shutdown_timeout_s: float = 10.0,
    ) -> None:
        if token_delay_s < 0:
            raise ValueError(f"token_delay_s must be >= 0, got {token_delay_s}")
        self._script = ScriptState(token_delay_s=token_delay_s)
        self._host = host
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._lifecycle = _Lifecycle.UNOPENED
        self._port: int | None = None
        self._stack = AsyncExitStack()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None or self._lifecycle is not _Lifecycle.OPEN:
            raise RuntimeError("the scripted LLM server is not running; use `async with ScriptedLLMServer()`")
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url`` of this server, ``http://127.0.0.1:PORT/v1``."""
        return f"http://{_url_host(self._host)}:{self.port}/v1"

    def base_url_with(self, *directives: str) -> str:
        """A ``base_url`` whose requests all carry ``directives`` (names without brackets,
        such as ``"reject-stream-options"`` or ``"slow:5"``)."""
        return f"http://{_url_host(self._host)}:{self.port}/with/{'+'.join(directives)}/v1"

    @property
    def requests(self) -> int:
        """How many chat-completion requests the server has received, failed ones included."""
        return self._script.requests

    async def __aenter__(self) -> ScriptedLLMServer:
        if self._lifecycle is not _Lifecycle.UNOPENED:
            raise RuntimeError("a ScriptedLLMServer runs only once; create a new one")
        self._lifecycle = _Lifecycle.OPEN
        sock = _bind(self._host, self._requested_port)
        self._port = sock.getsockname()[1]
        serving = _serve_in_loop(
            build_app(self._script),
            sock,
            startup_timeout_s=self._startup_timeout_s,
            shutdown_timeout_s=self._shutdown_timeout_s,
        )
        try:
            await self._stack.enter_async_context(serving)
        except BaseException:
            self._lifecycle = _Lifecycle.CLOSED
            sock.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lifecycle = _Lifecycle.CLOSED
        await self._stack.aclose()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agentstream.worker.scripted_llm",
        description="Run the deterministic, OpenAI-compatible scripted model in the foreground.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="TCP port, 0 for a free one")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between chunks (default: 0)")
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    parser.add_argument("--allow-remote", action="store_true", help="allow listening on a non-loopback host")
    args = parser.parse_args(argv)
    if not (args.allow_remote or _is_loopback(args.host)):
        parser.error(
            f"refusing to listen on non-loopback host {args.host!r}: this is a test double; "
            "pass --allow-remote to do it anyway"
        )
    if args.token_delay < 0:
        parser.error("--token-delay must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m agentstream.worker.scripted_llm --host 127.0.0.1 --port 8900``."""
    args = _parse_args(argv)
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    # Printed first and flushed, so a parent started with --port 0 learns the port.
    print(f"scripted LLM listening on http://{_url_host(args.host)}:{port}/v1", flush=True)
    config = uvicorn.Config(
        create_app(token_delay_s=args.token_delay), lifespan="off", log_level=args.log_level
    )
    uvicorn.Server(config).run(sockets=[sock])
