"""Serving the scripted model: in the running event loop, or in the foreground (CLI)."""

from __future__ import annotations

import argparse
import enum
import ipaddress
from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType

import uvicorn

from agentstream.serving import InLoopServer, bind, url_host
from agentstream.worker.scripted.app import ScriptState, build_app, create_app

__all__ = ["ScriptedLLMServer", "main"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        return f"http://{url_host(self._host)}:{self.port}/v1"

    def base_url_with(self, *directives: str) -> str:
        """A ``base_url`` whose requests all carry ``directives`` (names without brackets,
        such as ``"reject-stream-options"`` or ``"slow:5"``)."""
        return f"http://{url_host(self._host)}:{self.port}/with/{'+'.join(directives)}/v1"

    @property
    def requests(self) -> int:
        """How many chat-completion requests the server has received, failed ones included."""
        return self._script.requests

    async def __aenter__(self) -> ScriptedLLMServer:
        if self._lifecycle is not _Lifecycle.UNOPENED:
            raise RuntimeError("a ScriptedLLMServer runs only once; create a new one")
        self._lifecycle = _Lifecycle.OPEN
        server = InLoopServer(
            build_app(self._script),
            host=self._host,
            port=self._requested_port,
            name="scripted-llm",
            startup_timeout_s=self._startup_timeout_s,
            shutdown_timeout_s=self._shutdown_timeout_s,
        )
        try:
            await self._stack.enter_async_context(server)
        except BaseException:
            self._lifecycle = _Lifecycle.CLOSED
            raise
        self._port = server.port
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
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    # Printed first and flushed, so a parent started with --port 0 learns the port.
    print(f"scripted LLM listening on http://{url_host(args.host)}:{port}/v1", flush=True)
    config = uvicorn.Config(
        create_app(token_delay_s=args.token_delay), lifespan="off", log_level=args.log_level
    )
    uvicorn.Server(config).run(sockets=[sock])
