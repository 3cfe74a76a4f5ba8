"""Following one SSE stream to its end, reconnecting as often as it takes.

A dropped connection, a read timeout, a 429 or a 5xx is not the caller's problem: the
follower reconnects with backoff and jitter and resumes from the last cursor it yielded
(``Last-Event-ID``), so the caller sees every event once, in order, with neither a
duplicate nor a gap (:class:`~agentstream.sdk.resume.ResumeState` checks cursor order
again as a safety net). It ends after ``completed``, or, for a group consumer, on the
server's ``drained`` frame; it gives up after ``max_reconnects`` failures in a row without
progress. A response that the server ended on its own after staying open a while
(``AGENTSTREAM_SSE_MAX_DURATION_S``) is no failure even without an event: a task waiting
for a person may be quiet for hours.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import SSEError

from agentstream.sdk.backoff import Backoff
from agentstream.sdk.errors import AgentStreamError, Retryable, check, give_up
from agentstream.sdk.resume import ResumeState, is_cursor
from agentstream.sdk.sse import aiter_frames, frame_to_event

__all__ = ["StreamOptions", "follow"]

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How a client retries (budget and pacing, for requests and streams alike) and the
    timeout of its event streams."""

    timeout: httpx.Timeout
    max_reconnects: int
    backoff: Backoff
    #: a response that ends cleanly after at least this long is a server's rotation, not
    #: a failure (a wait for a person sends no event for as long as it lasts)
    healthy_after_s: float = 15.0


async def follow(
    http: httpx.AsyncClient,
    path: str,
    params: Mapping[str, str],
    after: str | None,
    options: StreamOptions,
    *,
    grouped: bool,
) -> AsyncGenerator[JsonObject, None]:
    """The events of ``path`` from ``after`` (``None``/``"0"``: the start; a cursor; or
    ``"$"``, sent as ``after=`` until the first event gives a cursor) to the end."""
    cursor = after if is_cursor(after) and after != "0" else None
    query = dict(params)
    if after is not None and cursor is None:
        query["after"] = after
    state = ResumeState(cursor, grouped=grouped)
    connection = _Connection(http, path, query, options, state, grouped=grouped)
    failures = 0
    loop = asyncio.get_running_loop()
    while True:
        opened = loop.time()
        try:
            # aclosing: a caller leaving its loop closes the HTTP response now, not at GC
            async with contextlib.aclosing(connection.events()) as events:
                async for event in events:
                    if connection.progressed:
                        failures = 0
                    yield event
            if connection.done:
                return
            if loop.time() - opened >= options.healthy_after_s:
                failures = 0  # a quiet stream the server rotated: reconnect, nothing failed
            raise Retryable(connection.status, "the stream ended before `completed`")
        except Retryable as exc:
            last = exc
        except httpx.TransportError as exc:
            last = Retryable(0, repr(exc))
        if not connection.progressed:
            if failures >= options.max_reconnects:
                raise give_up(last, failures) from None
            failures += 1
        # Even after progress, wait a little: a server closing every stream at once must
        # not be hammered by all its clients in the same millisecond.
        await asyncio.sleep(options.backoff.wait_s(failures - 1 if failures else 0, last))


class _Connection:
    """One SSE request after another on the same path, sharing one :class:`ResumeState`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        path: str,
        params: dict[str, str],
        options: StreamOptions,
        state: ResumeState,
        *,
        grouped: bool,
    ) -> None:
        self._http = http
        self._path = path
        self._params = params
        self._timeout = options.timeout
        self._state = state
        self._grouped = grouped
        self.done = False
        self.progressed = False
        self.status = 0

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "text/event-stream", "cache-control": "no-cache"}
        if self._state.cursor is not None:
            headers["last-event-id"] = self._state.cursor
        return headers

    async def events(self) -> AsyncGenerator[JsonObject, None]:
        """One request: the events it delivers that the caller has not seen yet."""
        self.progressed, self.status = False, 0
        async with self._http.stream(
            "GET", self._path, params=self._params, headers=self._headers(), timeout=self._timeout
        ) as response:
            self.status = response.status_code
            if response.status_code >= 400:
                check(response, await response.aread())
            if response.status_code == 204:
                # The server's word that the stream ended at or before our cursor: the
                # ``completed`` was delivered before the connection dropped.
                self.done = True
                return
            try:
                async for frame in aiter_frames(response):
                    event = frame_to_event(frame)
                    if not self._state.admit(event):
                        continue
                    kind = event.get("type")
                    if kind == "drained" and self._grouped:
                        self.done = True  # the group has nothing left for this consumer
                        return
                    if kind not in ("gap", "reset"):
                        self.progressed = True
                    yield event
                    if kind == "completed":
                        self.done = True
                        return
            except SSEError as exc:
                raise AgentStreamError(response.status_code, "not_event_stream", str(exc)) from None
