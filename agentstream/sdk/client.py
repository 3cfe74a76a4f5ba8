"""The client: submit tasks and follow their event streams over HTTP, resuming by itself.

::

    async with AgentStreamClient("http://127.0.0.1:8000", api_key="sk-...") as client:
        task = await client.submit("What is 17 * 23?")
        async for event in client.events(task["task_id"]):
            print(event["type"], event.get("content", ""))

``events`` follows one task's SSE stream (PROTOCOL section 6) as plain dicts, or as the
typed models of :mod:`agentstream.events` with ``typed=True``; ``streaming_run`` submits
and streams AWorld's typed messages (:mod:`agentstream.sdk.messages`). Reconnection and
resumption are :mod:`agentstream.sdk.stream`'s; the errors are :mod:`agentstream.sdk.errors`'.
"""

from __future__ import annotations

import contextlib
import enum
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack, overload

import httpx

from agentstream.protocol import StreamingMode
from agentstream.sdk.backoff import Backoff
from agentstream.sdk.endpoints import events_path, request_json, seg
from agentstream.sdk.errors import AgentStreamConnectionError, AgentStreamError
from agentstream.sdk.filters import filter_params, run_params
from agentstream.sdk.stream import StreamOptions, follow

if TYPE_CHECKING:
    from agentstream.events import Event
    from agentstream.sdk.agent import RemoteAgent
    from agentstream.sdk.messages import Message

__all__ = [
    "DEFAULT_SSE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "AgentStreamClient",
    "AgentStreamConnectionError",
    "AgentStreamError",
    "Backoff",
]

JsonObject = dict[str, Any]

#: ordinary requests: nothing the API does for one request should take this long
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: the server pings every 15 s; a stream silent for three pings is dead, so reconnect
DEFAULT_SSE_TIMEOUT = httpx.Timeout(connect=5.0, read=45.0, write=10.0, pool=10.0)
_SERVER_PING_S = 15.0


class StreamFilter(TypedDict, total=False):
    """Where :meth:`AgentStreamClient.events` starts and which events it passes."""

    mode: StreamingMode | str
    types: Iterable[str] | str | None
    scope: str | None
    after: str | None


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


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
        self._streams = StreamOptions(sse_timeout, max_reconnects, backoff or Backoff())
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

    async def _request(self, method: str, path: str, **options: Any) -> JsonObject:
        """One JSON request with its retries (:func:`~agentstream.sdk.endpoints.request_json`)."""
        self._ensure_open()
        return await request_json(self._http, self._streams, method, path, **options)

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
        workflow: str | None = None,
        idempotency_key: str | None = None,
        approve_tools: Sequence[str] | None = None,
        input_timeout_s: float | None = None,
    ) -> JsonObject:
        """Submit a task; returns ``{task_id, status, events_url}``.

        Calls of the ``approve_tools`` wait for :meth:`respond` (as do tools declared
        ``requires_approval``); ``input_timeout_s`` bounds such a wait.

        ``workflow`` is a workflow document (markdown: ``# Title`` then ``## Step`` sections
        or a numbered list) that the agent runs as a chain of steps before its main loop;
        its events carry ``loop_scope.kind == "dawp"``.

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
            "workflow": workflow,
            "approve_tools": list(approve_tools) if approve_tools is not None else None,
            "input_timeout_s": input_timeout_s,
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
        return await self._request("GET", f"/v1/tasks/{seg(task_id)}")

    async def cancel(self, task_id: str) -> JsonObject:
        """Ask for the task to be cancelled (idempotent); its stream ends ``cancelled``, ``completed``."""
        return await self._request("POST", f"/v1/tasks/{seg(task_id)}/cancel")

    async def respond(
        self,
        task_id: str,
        *,
        approvals: Iterable[Mapping[str, Any]] | None = None,
        message: str | None = None,
        tool_call_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> JsonObject:
        """Answer a waiting task: ``approvals`` (``{"tool_call_id", "approved", "reason"?}``
        items) or the ``message`` answering its question ``tool_call_id`` (default: the
        oldest one pending). Returns ``{task_id, status, pending, seq, cursor}``;
        ``AgentStreamError`` 409 when the task does not wait for it. Retried safely: one
        idempotency key (a new one unless given) covers every try. A wait may be answered
        as soon as its event is seen, before the task shows ``waiting``. A ``message``
        without ``tool_call_id`` to a queued or running task is handed to its agent before
        its next model turn (202)."""
        body: JsonObject = {"message": message} if message is not None else {}
        if tool_call_id is not None:
            body["tool_call_id"] = tool_call_id
        if approvals is not None:
            body["approvals"] = [dict(item) for item in approvals]
        key = idempotency_key or uuid.uuid4().hex
        return await self._request(
            "POST", f"/v1/tasks/{seg(task_id)}/input", json_body=body, headers={"idempotency-key": key}
        )

    async def ack(self, task_id: str, group: str, ids: Iterable[str]) -> int:
        """Acknowledge group deliveries; returns how many were pending and are now acked."""
        payload = await self._request(
            "POST", f"/v1/tasks/{seg(task_id)}/groups/{seg(group)}/ack", json_body={"ids": list(ids)}
        )
        for key in ("acked", "count", "value"):
            if isinstance(payload.get(key), int):
                return int(payload[key])
        return 0

    async def groups(self, task_id: str) -> JsonObject:
        """Each consumer group of the task: consumers, pending, lag, last delivered."""
        return await self._request("GET", f"/v1/tasks/{seg(task_id)}/groups")

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
        params = filter_params(mode, types, scope)
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = str(limit)
        return await self._request(
            "GET", events_path(task_id), params=params, headers={"accept": "application/json"}
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

    def agent(self, name: str = "hybrid", **submit_options: Any) -> RemoteAgent:
        """The agent ``name`` of this API with the in-process agents' streaming calls,
        ``execute_task_streaming`` and ``process_message_streaming``
        (:class:`~agentstream.sdk.agent.RemoteAgent`); ``submit_options`` apply to every
        run (``approve_tools``, ``tools``, ``model``, ...)."""
        from agentstream.sdk.agent import RemoteAgent

        return RemoteAgent(self, name, **submit_options)

    # ------------------------------------------------------------------------ streams

    @overload
    def events(
        self, task_id: str, *, typed: Literal[False] = ..., **filters: Unpack[StreamFilter]
    ) -> AsyncIterator[JsonObject]: ...

    @overload
    def events(
        self, task_id: str, *, typed: Literal[True], **filters: Unpack[StreamFilter]
    ) -> AsyncIterator[Event]: ...

    async def events(
        self,
        task_id: str,
        *,
        mode: StreamingMode | str = StreamingMode.CORE,
        types: Iterable[str] | str | None = None,
        scope: str | None = None,
        after: str | None = None,
        typed: bool = False,
    ) -> AsyncIterator[JsonObject | Event]:
        """Follow a task's events over SSE until ``completed``, reconnecting as needed.

        ``after`` is where to start: ``None``/``"0"`` the beginning (full replay, then the
        live tail), a cursor to resume, ``"$"`` new events only (until the first event
        arrives, a reconnect asks for ``$`` again, so events written while disconnected
        before that are not seen). Each event carries its cursor as ``id``; a ``gap``
        event means history before its ``first_cursor`` had expired.

        ``typed=True`` yields the pydantic models of :mod:`agentstream.events` (``Token``,
        ``ToolResult``, ... and ``UnknownEvent`` for types this version does not know)
        instead of dicts; an event that breaks the protocol raises
        ``pydantic.ValidationError``.
        """
        self._ensure_open()
        stream = follow(
            self._http, events_path(task_id), filter_params(mode, types, scope), after, self._streams,
            grouped=False,
        )  # fmt: skip
        async with contextlib.aclosing(stream):
            if not typed:
                async for event in stream:
                    yield event
                return
            from agentstream.events import parse_event  # pydantic: loaded only when asked for

            async for event in stream:
                yield parse_event(event)

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
        self._ensure_open()
        params = filter_params(mode, types, scope)
        params.update(group=group, consumer=consumer)
        stream = follow(self._http, events_path(task_id), params, None, self._streams, grouped=True)
        async with contextlib.aclosing(stream):
            async for event in stream:
                yield event

    @overload
    def streaming_run(
        self, input: str, *, raw: Literal[False] = ..., **options: Any
    ) -> AsyncIterator[Message[Any]]: ...

    @overload
    def streaming_run(
        self, input: str, *, raw: Literal[True], **options: Any
    ) -> AsyncIterator[JsonObject]: ...

    async def streaming_run(
        self,
        input: str,
        *,
        agent: str = "hybrid",
        streaming_mode: StreamingMode | str = StreamingMode.CORE,
        raw: bool = False,
        **submit_kwargs: Any,
    ) -> AsyncIterator[Message[Any] | JsonObject]:
        """Submit a task and stream it as AWorld's ``Runners.streaming_run`` does.

        Yields the typed messages of :mod:`agentstream.sdk.messages` (``ChunkMessage``,
        ``ToolMessage``, ``AgentMessage``, ...) for the events of ``streaming_mode``
        (default ``core``), and last, in every mode, a ``TaskMessage`` whose ``topic`` is
        ``TopicType.TASK_RESPONSE`` and whose payload says ``success``, ``answer`` and
        ``msg``. ``raw=True`` yields the same events as plain dicts instead (``core`` and
        ``chunk`` then include the ``result`` event the response is made of).
        ``submit_kwargs`` are those of :meth:`submit`.
        """
        mode = StreamingMode(streaming_mode)
        task = await self.submit(input, agent=agent, **submit_kwargs)
        task_id = str(task["task_id"])
        stream = follow(
            self._http, events_path(task_id), run_params(mode), None, self._streams, grouped=False
        )
        async with contextlib.aclosing(stream):
            if raw:
                async for event in stream:
                    yield event
                return
            from agentstream.sdk.translate import MessageTranslator  # pydantic: loaded only here

            translator = MessageTranslator(mode, task_id, submit_kwargs.get("session_id"), responder=self)
            async for event in stream:
                message = translator.feed(event)
                if message is not None:
                    yield message
