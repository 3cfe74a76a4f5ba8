"""The Python SDK: submit tasks and follow their event streams over HTTP, resuming by itself.

::

    async with AgentStreamClient("http://127.0.0.1:8000", api_key="sk-...") as client:
        task = await client.submit("What is 17 * 23?")
        async for event in client.events(task["task_id"]):
            print(event["type"], event.get("content", ""))

``events`` follows one task's SSE stream (PROTOCOL section 6). A dropped connection, a
read timeout or a 5xx is not the caller's problem: the client reconnects with exponential
backoff and jitter and resumes from the last cursor it yielded (``Last-Event-ID``), so the
caller sees every event once, in order, with neither a duplicate nor a gap; cursor ordering
is checked again on the client as a safety net. The iterator ends after ``completed``.

Errors, all :class:`AgentStreamError` (``status``, ``code``, ``message``)::

    AgentStreamError            the server answered 4xx (429 only once retries ran out)
    └── AgentStreamConnectionError   the server could not be reached, or kept failing
                                     (5xx, dropped streams) more than ``max_reconnects``
                                     times in a row; ``status`` is the last HTTP status or 0

Misuse (a closed client, a bad argument) raises ``RuntimeError``/``ValueError``.
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from agentstream.protocol import StreamingMode, cursor_key

__all__ = [
    "DEFAULT_SSE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "AgentStreamClient",
    "AgentStreamConnectionError",
    "AgentStreamError",
    "Backoff",
    "SSEFrame",
    "SSEParser",
    "cursor_key",
]

JsonObject = dict[str, Any]

#: ordinary requests: nothing the API does for one request should take this long
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: the server pings every 15 s; a stream silent for three pings is dead, so reconnect
DEFAULT_SSE_TIMEOUT = httpx.Timeout(connect=5.0, read=45.0, write=10.0, pool=10.0)
_SERVER_PING_S = 15.0


class AgentStreamError(Exception):
    """The server refused a request: ``status`` (HTTP), ``code`` and ``message`` from its
    JSON error body ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class AgentStreamConnectionError(AgentStreamError):
    """The server stayed unreachable or failing after every allowed retry."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: try ``n`` waits ``initial_s * multiplier**n``, capped
    at ``max_s``, then scaled by a random factor in ``[1 - jitter, 1]`` so that many clients
    dropped together do not come back together."""

    initial_s: float = 0.2
    max_s: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.multiplier < 1:
            raise ValueError("Backoff needs 0 <= initial_s <= max_s and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Backoff.jitter must be within [0, 1]")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        base = min(self.max_s, self.initial_s * self.multiplier ** min(attempt, 64))
        return base * (1 - self.jitter * random.random())


# ----------------------------------------------------------------------------- SSE parsing


@dataclass(frozen=True, slots=True)
class SSEFrame:
    """One dispatched server-sent event."""

    event: str
    data: str
    id: str | None


class SSEParser:
    """The WHATWG event-stream line format, fed one line at a time (no I/O).

    Comments (``: ping``) and frames without data are dropped; ``retry:`` is remembered.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, line: str) -> SSEFrame | None:
        """Consume one line (without its line ending); return a frame when one completes."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value or None
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEFrame | None:
        data, event, frame_id = self._data, self._event, self._id
        self._data, self._event, self._id = [], "", None
        if not data:
            return None
        return SSEFrame(event=event or "message", data="\n".join(data), id=frame_id)


def _is_cursor(value: str | None) -> bool:
    if not value:
        return False
    try:
        cursor_key(value)
    except ValueError:
        return False
    return True


def _frame_to_event(frame: SSEFrame) -> JsonObject:
    """The event dict of a frame; a ``gap`` frame becomes ``{"type": "gap", ...}``."""
    try:
        data: Any = json.loads(frame.data)
    except ValueError:
        data = frame.data
    if frame.event in ("gap", "reset"):
        if isinstance(data, dict):
            event = dict(data)
            event.setdefault("type", frame.event)
        else:
            event = {"type": "gap", "first_cursor": data}
    elif isinstance(data, dict):
        event = data
        if "type" not in event and frame.event != "message":
            event["type"] = frame.event
    else:
        event = {"type": frame.event, "data": data}
    if frame.id is not None:
        event.setdefault("id", frame.id)
    return event


# ------------------------------------------------------------------------------ the client


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class _Retryable(Exception):
    """One failed try that may be retried: the status (0 for transport) and why."""

    def __init__(self, status: int, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s


def _error_from(response: httpx.Response, body: bytes) -> AgentStreamError:
    code, message = f"http_{response.status_code}", response.reason_phrase or "error"
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or code)
            message = str(error.get("message") or message)
        elif "detail" in payload:  # FastAPI's own shape, should a route not map its error
            detail = payload["detail"]
            message = detail if isinstance(detail, str) else json.dumps(detail)
    elif body:
        message = body.decode("utf-8", "replace")[:500]
    return AgentStreamError(response.status_code, code, message)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _check(response: httpx.Response, body: bytes) -> None:
    """Raise for an error status: :class:`_Retryable` for 429/5xx, else the typed error."""
    status = response.status_code
    if status < 400:
        return
    error = _error_from(response, body)
    if status == 429 or status >= 500:
        raise _Retryable(status, str(error), _retry_after(response))
    raise error


class AgentStreamClient:
    """An async client of one agentstream API; use it as ``async with``.

    ``timeout`` bounds every ordinary request; ``sse_timeout`` the event streams, whose read
    timeout must exceed two server ping intervals (30 s) so a quiet task is not mistaken
    for a dead connection. ``max_reconnects`` is how many failures in a row (without any
    progress in between) a request or stream survives; ``backoff`` paces them.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        sse_timeout: httpx.Timeout = DEFAULT_SSE_TIMEOUT,
        max_reconnects: int = 10,
        backoff: Backoff | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_reconnects < 0:
            raise ValueError("max_reconnects must be >= 0")
        if sse_timeout.read is None or sse_timeout.read < 2 * _SERVER_PING_S:
            raise ValueError(f"sse_timeout.read must be >= {2 * _SERVER_PING_S} s, twice the server ping")
        headers = {"user-agent": "agentstream-client/0.1"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._sse_timeout = sse_timeout
        self._max_reconnects = max_reconnects
        self._backoff = backoff or Backoff()
        self._state = _State.UNOPENED

    async def __aenter__(self) -> AgentStreamClient:
        if self._state is not _State.UNOPENED:
            raise RuntimeError("an AgentStreamClient can be opened only once; create a new one")
        await self._http.__aenter__()
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool; the client cannot be used afterwards."""
        self._state = _State.CLOSED
        await self._http.aclose()

    def _ensure_open(self) -> None:
        if self._state is _State.CLOSED:
            raise RuntimeError("cannot use a closed AgentStreamClient; create a new one")

    # ------------------------------------------------------------------ plain requests

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry_server_errors: bool = True,
    ) -> JsonObject:
        """One JSON request, retried on 429 (and on 5xx/transport errors when safe)."""
        self._ensure_open()
        failures = 0
        while True:
            try:
                response = await self._http.request(
                    method, path, json=json_body, params=params, headers=headers
                )
                _check(response, response.content)
                payload = response.json() if response.content else {}
                return payload if isinstance(payload, dict) else {"value": payload}
            except _Retryable as exc:
                if exc.status >= 500 and not retry_server_errors:
                    raise AgentStreamError(exc.status, f"http_{exc.status}", exc.reason) from None
                last: _Retryable = exc
            except httpx.TransportError as exc:
                if not retry_server_errors and not isinstance(exc, httpx.ConnectError):
                    raise AgentStreamConnectionError(0, "transport_error", repr(exc)) from exc
                last = _Retryable(0, repr(exc))
            if failures >= self._max_reconnects:
                raise _give_up(last, failures)
            await asyncio.sleep(_wait_s(self._backoff, failures, last))
            failures += 1

    async def submit(
        self,
        input: str,
        *,
        agent: str = "hybrid",
        tools: Sequence[str] | None = None,
        model: str | None = None,
        session_id: str | None = None,
        task_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        max_iterations: int | None = None,
        idempotency_key: str | None = None,
    ) -> JsonObject:
        """Submit a task; returns ``{task_id, status, events_url}``.

        A submission is retried after a 5xx or a dropped connection only when it is
        idempotent, that is when ``task_id`` or ``idempotency_key`` is given (a repeated
        ``task_id`` returns the existing task); otherwise a retry could run it twice.
        """
        body: JsonObject = {"input": input, "agent": agent}
        optional = {
            "tools": list(tools) if tools is not None else None,
            "model": model,
            "session_id": session_id,
            "task_id": task_id,
            "metadata": dict(metadata) if metadata is not None else None,
            "max_iterations": max_iterations,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        return await self._request(
            "POST",
            "/v1/tasks",
            json_body=body,
            headers=headers,
            retry_server_errors=task_id is not None or idempotency_key is not None,
        )

    async def get(self, task_id: str) -> JsonObject:
        """The task's status, attempt, times and result or error."""
        return await self._request("GET", f"/v1/tasks/{_seg(task_id)}")

    async def cancel(self, task_id: str) -> JsonObject:
        """Ask for the task to be cancelled (idempotent); its stream ends ``cancelled``, ``completed``."""
        return await self._request("POST", f"/v1/tasks/{_seg(task_id)}/cancel")

    async def ack(self, task_id: str, group: str, ids: Iterable[str]) -> int:
        """Acknowledge group deliveries; returns how many were pending and are now acked."""
        payload = await self._request(
            "POST", f"/v1/tasks/{_seg(task_id)}/groups/{_seg(group)}/ack", json_body={"ids": list(ids)}
        )
        for key in ("acked", "count", "value"):
            if isinstance(payload.get(key), int):
                return int(payload[key])
        return 0

    async def groups(self, task_id: str) -> JsonObject:
        """Each consumer group of the task: consumers, pending, lag, last delivered."""
        return await self._request("GET", f"/v1/tasks/{_seg(task_id)}/groups")

    async def events_page(
        self,
        task_id: str,
        *,
        after: str | None = None,
        mode: StreamingMode | str = StreamingMode.CORE,
        types: Iterable[str] | str | None = None,
        scope: str | None = None,
        limit: int | None = None,
    ) -> JsonObject:
        """One JSON page of events: ``{events, next_after, done}``."""
        params = _filter_params(mode, types, scope)
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = str(limit)
        return await self._request(
            "GET", f"/v1/tasks/{_seg(task_id)}/events", params=params, headers={"accept": "application/json"}
        )

    async def replay(
        self,
        task_id: str,
        *,
        mode: StreamingMode | str = StreamingMode.CORE,
        types: Iterable[str] | str | None = None,
        scope: str | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[JsonObject]:
        """Every event held so far, from the start, then stop (no live tail): JSON pages."""
        after = "0"
        while True:
            page = await self.events_page(
                task_id, after=after, mode=mode, types=types, scope=scope, limit=page_size
            )
            events = page.get("events") or []
            for event in events:
                yield event
            next_after = page.get("next_after")
            if page.get("done") or not events or not next_after or next_after == after:
                return
            after = str(next_after)

    # ------------------------------------------------------------------------ streams

    async def events(
        self,
        task_id: str,
        *,
        mode: StreamingMode | str = StreamingMode.CORE,
        types: Iterable[str] | str | None = None,
        scope: str | None = None,
        after: str | None = None,
    ) -> AsyncIterator[JsonObject]:
        """Follow a task's events over SSE until ``completed``, reconnecting as needed.

        ``after`` is where to start: ``None``/``"0"`` the beginning (full replay, then the
        live tail), a cursor to resume, ``"$"`` new events only (until the first event
        arrives, a reconnect asks for ``$`` again, so events written while disconnected
        before that are not seen). Each event dict carries its cursor as ``id``; a ``gap``
        event means history before its ``first_cursor`` had expired.
        """
        params = _filter_params(mode, types, scope)
        async for event in self._follow(f"/v1/tasks/{_seg(task_id)}/events", params, after, grouped=False):
            yield event

    async def group_events(
        self,
        task_id: str,
        group: str,
        consumer: str,
        *,
        mode: StreamingMode | str = StreamingMode.CORE,
        types: Iterable[str] | str | None = None,
        scope: str | None = None,
    ) -> AsyncIterator[JsonObject]:
        """Consumer-group delivery (PROTOCOL section 7): this consumer's share of the events.

        Delivery is at-least-once; acknowledge with :meth:`ack`. On a reconnect the server
        acks this consumer's pending entries up to the last cursor yielded and re-delivers
        the rest; entries claimed from a dead consumer may arrive out of cursor order, so
        duplicates are dropped by id here, not by ordering.
        """
        params = _filter_params(mode, types, scope)
        params.update(group=group, consumer=consumer)
        async for event in self._follow(f"/v1/tasks/{_seg(task_id)}/events", params, None, grouped=True):
            yield event

    async def streaming_run(
        self,
        input: str,
        *,
        agent: str = "hybrid",
        streaming_mode: StreamingMode | str = StreamingMode.CHUNK,
        **submit_kwargs: Any,
    ) -> AsyncIterator[JsonObject]:
        """Submit a task and stream its events in ``streaming_mode`` (AWorld's ``streaming_run``);
        ``submit_kwargs`` are those of :meth:`submit`."""
        task = await self.submit(input, agent=agent, **submit_kwargs)
        async for event in self.events(task["task_id"], mode=str(streaming_mode)):
            yield event

    async def _follow(
        self, path: str, params: dict[str, str], after: str | None, *, grouped: bool
    ) -> AsyncIterator[JsonObject]:
        self._ensure_open()
        cursor: str | None = after if _is_cursor(after) and after != "0" else None
        if after is not None and cursor is None:
            params = {**params, "after": after}
        seen = _Seen(grouped, cursor)
        failures = 0
        while True:
            progressed = False
            headers = {"accept": "text/event-stream", "cache-control": "no-cache"}
            if cursor is not None:
                headers["last-event-id"] = cursor
            try:
                async with self._http.stream(
                    "GET", path, params=params, headers=headers, timeout=self._sse_timeout
                ) as response:
                    if response.status_code >= 400:
                        _check(response, await response.aread())
                    parser = SSEParser()
                    async for line in response.aiter_lines():
                        frame = parser.feed(line)
                        if frame is None:
                            continue
                        event = _frame_to_event(frame)
                        if not seen.fresh(event):
                            continue
                        if event.get("type") == "drained" and grouped:
                            return  # the group has nothing left for this consumer
                        if event.get("type") == "gap":
                            yield event
                            continue
                        if event.get("type") == "reset":
                            # The stream lost what we saw after ``last_seq``: go on from
                            # where it now continues, and let the caller discard.
                            reset_to = event.get("id")
                            cursor = (
                                reset_to if isinstance(reset_to, str) and _is_cursor(reset_to) else cursor
                            )
                            yield event
                            continue
                        event_id = event.get("id")
                        if isinstance(event_id, str) and _is_cursor(event_id):
                            cursor = event_id
                        progressed = True
                        failures = 0
                        yield event
                        if event.get("type") == "completed":
                            return
                raise _Retryable(response.status_code, "the stream ended before `completed`")
            except _Retryable as exc:
                last = exc
            except httpx.TransportError as exc:
                last = _Retryable(0, repr(exc))
            if not progressed:
                if failures >= self._max_reconnects:
                    raise _give_up(last, failures)
                failures += 1
            # Even after progress, wait a little: a server closing every stream at once
            # must not be hammered by all its clients in the same millisecond.
            await asyncio.sleep(_wait_s(self._backoff, failures - 1 if failures else 0, last))


class _Seen:
    """The client-side safety net against duplicates across reconnects.

    A plain stream is ordered by cursor, so anything at or before the last cursor yielded
    is a duplicate. Group delivery is not ordered (claimed entries of a dead consumer come
    late), so there it is the exact ids seen recently. A ``gap`` marker passes once.
    """

    def __init__(self, grouped: bool, cursor: str | None) -> None:
        self._grouped = grouped
        self._last = cursor_key(cursor) if cursor else None
        self._recent: deque[str] = deque(maxlen=10_000)
        self._recent_set: set[str] = set()
        self._gaps: set[str] = set()

    def fresh(self, event: Mapping[str, Any]) -> bool:
        if event.get("type") == "reset":
            # Whatever came after the reset point was lost: later events are new again.
            reset_to = event.get("id")
            self._last = cursor_key(reset_to) if isinstance(reset_to, str) and _is_cursor(reset_to) else None
            return True
        if event.get("type") == "gap":
            marker = str(event.get("first_cursor"))
            if marker in self._gaps:
                return False
            self._gaps.add(marker)
            return True
        event_id = event.get("id")
        if not isinstance(event_id, str) or not _is_cursor(event_id):
            return True
        if self._grouped:
            if event_id in self._recent_set:
                return False
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(event_id)
            self._recent_set.add(event_id)
            return True
        key = cursor_key(event_id)
        if self._last is not None and key <= self._last:
            return False
        self._last = key
        return True


def _filter_params(
    mode: StreamingMode | str, types: Iterable[str] | str | None, scope: str | None
) -> dict[str, str]:
    params = {"mode": str(mode)}
    if types is not None:
        params["types"] = types if isinstance(types, str) else ",".join(types)
    if scope is not None:
        params["scope"] = str(scope)
    return params


def _seg(value: str) -> str:
    """One URL path segment; refuses what would change the path."""
    if not value or "/" in value:
        raise ValueError(f"invalid path segment {value!r}")
    return quote(value, safe="")


def _wait_s(backoff: Backoff, attempt: int, failure: _Retryable) -> float:
    delay = backoff.delay(attempt)
    if failure.retry_after_s is not None:
        delay = max(delay, min(failure.retry_after_s, backoff.max_s * 6))
    return delay


def _give_up(failure: _Retryable, failures: int) -> AgentStreamError:
    if failure.status == 429:
        return AgentStreamError(429, "rate_limited", f"still rate limited after {failures} retries")
    return AgentStreamConnectionError(
        failure.status, "unavailable", f"gave up after {failures} retries: {failure.reason}"
    )
