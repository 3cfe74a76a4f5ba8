"""Server-sent events: frame encoding and a response that stays bounded in memory.

One response runs three tasks:

- the **pump** moves frames from the event source into a bounded queue of ``buffer``
  frames; when the queue stays full for ``slow_client_s`` the client is too far behind and
  is cut off (:class:`SlowClient`): it resumes by cursor, the server buffers nothing more;
- the **writer** sends what is queued (several frames per write when they piled up), and a
  ``: ping`` comment after ``ping_interval_s`` of silence;
- the **watcher** waits for the client's disconnect.

Whichever ends first decides; the others are cancelled and awaited, so a departed client
stops the Redis reads at once, and cancellation of the response itself is never swallowed.

Two app-wide knobs (:class:`SseOptions`): ``max_duration_s`` ends each response, between
two frames, after that long, so clients reconnect and resume by cursor (long-lived streams
then rebalance across API processes); ``retry_ms`` starts each response with a ``retry:``
field, the delay after which browsers' ``EventSource`` reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from agentstream.api.metrics import DeliveryWatch, Metrics
from agentstream.api.slots import Slot
from agentstream.errors import StackError

__all__ = [
    "OPTIONS_STATE_KEY",
    "PING",
    "EventStreamResponse",
    "FrameCache",
    "SlowClient",
    "SseOptions",
    "cancel_all",
    "event_frame",
    "gap_frame",
    "pump",
]

logger = logging.getLogger(__name__)

PING = b": ping\n\n"
#: end of the stream in the queue (no frame is empty)
_END = b""
#: the lifespan-state key under which ``create_app`` hands every response its options
OPTIONS_STATE_KEY = "sse_options"


#: at most this many bytes of frames are joined into one write
MAX_WRITE_BYTES = 32 * 1024
#: a response's tasks are cancelled again every ``_CANCEL_WAIT_S`` until they end
_CANCEL_WAIT_S = 0.05
_CANCEL_ROUNDS = 200


class SlowClient(StackError):
    """The client did not take a frame for ``slow_client_s`` while its buffer was full."""


@dataclass(frozen=True, slots=True)
class SseOptions:
    """Options every SSE response of one app shares; 0 turns either off."""

    #: end each response after this long (between frames); the client resumes by cursor
    max_duration_s: float = 0.0
    #: reconnection delay sent first as ``retry: <ms>``
    retry_ms: int = 0


def _safe_type(kind: Any) -> bytes:
    text = kind if isinstance(kind, str) else "message"
    if "\n" in text or "\r" in text:
        return b"message"
    return text.encode()


def event_frame(cursor: str, event: Mapping[str, Any]) -> bytes:
    """``id: <cursor>\\nevent: <type>\\ndata: <event JSON>\\n\\n`` (orjson never emits a newline)."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        cursor.encode(),
        _safe_type(event.get("type")),
        orjson.dumps(event),
    )


def gap_frame(event: Mapping[str, Any]) -> bytes:
    """A ``gap`` marker: no ``id:`` line, since it is no event of the stream and the
    client's cursor must not move."""
    data = {k: v for k, v in event.items() if k != "id"}
    return b"event: gap\ndata: %s\n\n" % orjson.dumps(data)


def reset_frame(event: Mapping[str, Any]) -> bytes:
    """A ``reset`` marker: the client saw events the stream lost. Its ``id:`` is where the
    stream goes on from, so a browser's EventSource resumes from there."""
    data = {k: v for k, v in event.items() if k != "id"}
    cursor = event.get("id")
    head = b"id: %s\n" % str(cursor).encode() if cursor and cursor != "0-0" else b""
    return head + b"event: reset\ndata: %s\n\n" % orjson.dumps(data)


def drained_frame(group: str, consumer: str) -> bytes:
    """The last frame of a group consumer's stream when the task ended and the group has
    nothing left for it (another consumer received ``completed``). No ``id:`` line."""
    data = {"type": "drained", "group": group, "consumer": consumer,
            "reason": "the task ended and the group has nothing left to deliver"}  # fmt: skip
    return b"event: drained\ndata: %s\n\n" % orjson.dumps(data)


class FrameCache:
    """The frames of recent events, keyed by (task, cursor): many clients of one task
    share each event's JSON encoding. Bounded to ``size`` frames (least recent dropped)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._frames: collections.OrderedDict[tuple[str, str], bytes] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._frames)

    def frame(self, task_id: str, cursor: str, event: Mapping[str, Any]) -> bytes:
        """The event's frame, with ``sequence_number`` (= ``seq``, as OpenAI's streaming
        events carry it); encoded once per event, however many clients read it."""
        kind = event.get("type")
        if kind == "gap":
            return gap_frame(event)
        if kind == "reset":
            return reset_frame(event)
        key = (task_id, cursor)
        frame = self._frames.get(key)
        if frame is None:
            seq = event.get("seq")
            served = {**event, "sequence_number": seq} if seq is not None else event
            frame = self._frames[key] = event_frame(cursor, served)
            if len(self._frames) > self.size:
                self._frames.popitem(last=False)
        return frame


async def pump(
    frames: AsyncIterator[bytes],
    queue: asyncio.Queue[bytes],
    slow_client_s: float,
    max_duration_s: float = 0.0,
) -> None:
    """Move ``frames`` into ``queue`` (then an end marker); :class:`SlowClient` when the
    queue stays full for ``slow_client_s``. With ``max_duration_s``, stop taking frames
    after that long: a frame is queued whole or not at all, so the response ends on a
    frame boundary. The source is closed however this ends."""
    deadline = asyncio.timeout(max_duration_s or None)
    async with contextlib.aclosing(frames):  # type: ignore[type-var]
        try:
            async with deadline:
                async for frame in frames:
                    await _put(queue, frame, slow_client_s)
        except TimeoutError:
            if not deadline.expired():
                raise
    await _put(queue, _END, slow_client_s)


async def _put(queue: asyncio.Queue[bytes], frame: bytes, slow_client_s: float) -> None:
    try:
        queue.put_nowait(frame)
        return
    except asyncio.QueueFull:
        pass
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow a cancellation that
        # lands as the inner await completes, and a cancelled response must stop.
        async with asyncio.timeout(slow_client_s):
            await queue.put(frame)
    except TimeoutError:
        raise SlowClient(f"client took no frame for {slow_client_s}s with {queue.maxsize} queued") from None


async def _write(
    queue: asyncio.Queue[bytes], send: Send, ping_interval_s: float, on_sent: Callable[[list[bytes]], None]
) -> None:
    while True:
        if queue.empty():
            try:
                async with asyncio.timeout(ping_interval_s):
                    frame = await queue.get()
            except TimeoutError:
                await send({"type": "http.response.body", "body": PING, "more_body": True})
                continue
        else:
            frame = queue.get_nowait()
        chunks: list[bytes] = []
        size = 0
        while frame != _END:
            chunks.append(frame)
            size += len(frame)
            # Join what piled up into one write, up to a bound: a write to a socket
            # that does not drain sits in the server's memory until it does.
            if queue.empty() or size >= MAX_WRITE_BYTES:
                break
            frame = queue.get_nowait()
        if chunks:
            await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": True})
            on_sent(chunks)
        if frame == _END:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return


async def cancel_all(tasks: set[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until each has ended, cancelling again as needed: a
    cancellation can be lost inside a library call, and then a pump went on to block on
    its full queue, holding the dropped client's slot until the slow-client timeout (all
    1,000 of 1,000 dropped connections, with the timeout set to 600 s). Gives up waiting
    after ``_CANCEL_ROUNDS`` rounds (logged)."""
    pending = {task for task in tasks if not task.done()}
    for _ in range(_CANCEL_ROUNDS):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_CANCEL_WAIT_S)
    logger.error("SSE response: %d task(s) ignored cancellation: %s", len(pending), pending)


async def _watch(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStreamResponse(Response):
    """A ``text/event-stream`` response of ``frames`` with bounded buffering."""

    media_type = "text/event-stream"

    def __init__(
        self,
        frames: AsyncIterator[bytes],
        *,
        metrics: Metrics,
        buffer: int,
        ping_interval_s: float,
        slow_client_s: float,
        group: bool = False,
        options: SseOptions | None = None,
        slot: Slot | None = None,
    ) -> None:
        self.frames = frames
        self.metrics = metrics
        self.buffer = buffer
        self.ping_interval_s = ping_interval_s
        self.slow_client_s = slow_client_s
        self.group = group
        #: ``None``: the app's options, from the lifespan state (none outside an app)
        self.options = options
        #: times this response's deliveries (api.metrics)
        self.watch = DeliveryWatch()
        #: the place taken by the route (:class:`~api.slots.StreamSlots`); ``None``: the
        #: response counts itself in the gauges, uncapped
        self.slot = slot
        if slot is not None:
            # A response that is never run (the request was cancelled first) still gives
            # its place back.
            weakref.finalize(self, slot.release)
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})

    def _sent(self, frames: list[bytes]) -> None:
        self.metrics.delivered(frames, self.watch)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        counted = self.slot is None
        if counted:
            self.metrics.sse_clients += 1
            self.metrics.group_streams += self.group
        options = self.options or scope.get("state", {}).get(OPTIONS_STATE_KEY)
        try:
            await self._run(receive, send, options if isinstance(options, SseOptions) else SseOptions())
        finally:
            if self.slot is not None:
                self.slot.release()
            if counted:
                self.metrics.sse_clients -= 1
                self.metrics.group_streams -= self.group

    async def _run(self, receive: Receive, send: Send, options: SseOptions) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue(self.buffer)
        producer = asyncio.create_task(
            pump(self.frames, queue, self.slow_client_s, options.max_duration_s), name="sse-pump"
        )
        tasks = {producer}
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            if options.retry_ms:
                retry = b"retry: %d\n\n" % options.retry_ms
                await send({"type": "http.response.body", "body": retry, "more_body": True})
            writer = asyncio.create_task(
                _write(queue, send, self.ping_interval_s, self._sent), name="sse-write"
            )
            watcher = asyncio.create_task(_watch(receive), name="sse-watch")
            tasks |= {writer, watcher}
            pending = set(tasks)
            while writer in pending and watcher in pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if producer in done and (producer.cancelled() or producer.exception() is not None):
                    break
        finally:
            await cancel_all(tasks)
        self._report(producer)

    def _report(self, producer: asyncio.Task[None]) -> None:
        if not producer.done() or producer.cancelled():
            return
        exc = producer.exception()
        if isinstance(exc, SlowClient):
            self.metrics.slow_client_disconnects += 1
            logger.info("SSE client cut off: %s", exc)
        elif exc is not None:
            # The stream broke (Redis down, task expired): end the response; the client
            # resumes from its last cursor.
            logger.warning("SSE stream ended early: %r", exc)
