"""How uvicorn serves the API: read deadlines against slow clients (slowloris).

uvicorn closes an idle keep-alive connection, but on its own it waits forever for the head
of a request that trickles in, or for a body sent a byte every few seconds: each such
connection holds a socket and a file descriptor, and enough of them exhaust the process.
:func:`uvicorn_options` gives uvicorn a protocol with two deadlines:

- ``header_timeout_s``: the request line and headers must be complete this long after the
  connection opened or the request's first byte arrived;
- ``body_timeout_s``: the whole body must have arrived this long after the headers.

A connection that misses either is closed (there is nobody reading an answer). A request
without a body, such as an SSE ``GET``, is complete with its headers, so a long-lived
response is never cut by them.

Use: ``uvicorn.run(create_app(settings), **uvicorn_options(settings), host=..., port=...)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from agentstream.api.settings import ApiSettings

__all__ = [
    "CONNECTION_LOSS",
    "ConnectionLoss",
    "GuardedHttpToolsProtocol",
    "LazyFlowControl",
    "uvicorn_options",
]

#: the scope key of the request's :class:`ConnectionLoss`
CONNECTION_LOSS = "agentstream.connection_loss"


class ConnectionLoss:
    """What to call once a connection is lost (after uvicorn marked its request
    disconnected): ``callback``, set by the app, one at a time. It holds no reference to
    the connection, so the scope that carries it makes no cycle with the protocol."""

    __slots__ = ("callback",)

    def __init__(self) -> None:
        self.callback: Callable[[], object] | None = None

    def fire(self) -> None:
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


class LazyFlowControl(FlowControl):
    """uvicorn's flow control, its ``asyncio.Event`` made only while writes are paused."""

    def __init__(self, transport: asyncio.Transport) -> None:
        # uvicorn's fields, less the Event (not super().__init__(): it makes one)
        self._transport = transport
        self.read_paused = False
        self.write_paused = False
        self._writable: asyncio.Event | None = None

    async def drain(self) -> None:
        if self._writable is not None:
            await self._writable.wait()

    def pause_writing(self) -> None:
        if not self.write_paused:
            self.write_paused = True
            self._writable = asyncio.Event()

    def resume_writing(self) -> None:
        if self.write_paused:
            self.write_paused = False
            writable, self._writable = self._writable, None
            if writable is not None:
                writable.set()  # wakes every drain() waiting on it


class _Pipeline(list[Any]):
    """uvicorn's queue of pipelined requests (it uses ``appendleft``, ``pop`` and truth)."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header and a body read deadline, a hook for the
    connection's loss, and lean per-connection state (see the module doc)."""

    # Slots, not the instance dict: uvicorn's 28 attributes fill the dict's shared keys
    # (CPython shares up to 30), and two more made each connection's dict a table of its
    # own, 1.6 KB instead of 0.3.
    __slots__ = ("_deadline", "loss")

    header_timeout_s: float = ApiSettings.header_timeout_s
    body_timeout_s: float = ApiSettings.body_timeout_s

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._deadline: asyncio.TimerHandle | None = None
        self.loss = ConnectionLoss()
        super().__init__(*args, **kwargs)
        self.pipeline = _Pipeline()  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = LazyFlowControl(transport)
        self._arm(self.header_timeout_s)  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        self.loss.fire()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[CONNECTION_LOSS] = self.loss  # type: ignore[literal-required]
        if self._deadline is None:  # a later request of a keep-alive connection
            self._arm(self.header_timeout_s)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_timeout_s)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _arm(self, delay_s: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(settings: ApiSettings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config``: the guarded protocol with
    the settings' ``header_timeout_s`` and ``body_timeout_s``."""
    protocol = type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"header_timeout_s": settings.header_timeout_s, "body_timeout_s": settings.body_timeout_s},
    )
    return {"http": protocol}
