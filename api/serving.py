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
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from agentstream.api.settings import ApiSettings

__all__ = ["GuardedHttpToolsProtocol", "uvicorn_options"]


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header and a body read deadline."""

    header_timeout_s: float = ApiSettings.header_timeout_s
    body_timeout_s: float = ApiSettings.body_timeout_s
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s)  # a connection that never sends a request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
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
