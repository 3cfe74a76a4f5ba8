"""Broadcast fan-out of live task streams: each event is framed once per filter and written
to every client of that filter that keeps up.

One **channel** per task this process serves listens to the task's stream through the
reader hub (one hub subscription however many clients read the task). It passes each new
entry through one :class:`~agentstream.streams.Tracker` (cursor order, seq rewinds: once
per channel, not per client) and hands the result to its **groups**, one per
:class:`~agentstream.streams.EventFilter`. A group keeps the frames that pass its filter,
joins them into one body, frames that body once for HTTP/1.1 chunked transfer encoding and
writes it to every member's transport, synchronously, in the hub's loop: no task, queue or
generator per client on this path.

A client (**member**) starts apart: it replays from its own cursor by XRANGE pages
(:class:`~agentstream.streams.Follow`) and joins its group once it stands where the channel
stands. A member whose transport's write buffer passes its high-water mark after a write
leaves the broadcast with the channel's cursor and catches up by XRANGE from there, as it
started (so a slow client costs the process no memory and loses nothing), then joins
again; if its buffer does not drain below the low-water mark within ``slow_client_s`` it is
cut off (:class:`~agentstream.api.sse.SlowClient`). A member with something of its own
to honour (a ``starting_after`` floor not yet passed, entries it read ahead of the channel,
a first-event latency sample still due) is served apart within its group until that is
settled. ``: ping`` comments come from one ticker for the whole process: a group silent for
``ping_interval_s`` pings all its members.

The transport is uvicorn's: its ASGI ``send`` is a method of the request cycle, which holds
the transport, its flow control and whether the body is chunked. The app stores that
``send`` in the scope (:data:`SERVER_SEND`) before any middleware wraps it (so a
middleware that rewrites response bodies, such as compression, must not be added to the
app: these bodies would pass it by). Where no
transport can be reached (another server, an in-process ASGI client), a member's frames go
through the ASGI ``send`` from one writer task per member, with the same rules.

A live client holds thousands of its kind in one process, so it holds little
(``bench/sse_memory.py``): its :class:`LiveStream` runs outside the framework's request
chain (:class:`~agentstream.api.routes.events.LiveTail` serves a plain tail before
FastAPI's routing; :class:`LiveHandoff` runs one the route made once that chain returned),
and on the deployed server it learns of the client's going from the connection itself
(:class:`~agentstream.api.serving.ConnectionLoss`) instead of a task waiting in
``receive()``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agentstream.api.metrics import DeliveryWatch, Metrics
from agentstream.api.serving import CONNECTION_LOSS, ConnectionLoss
from agentstream.api.slots import Slot
from agentstream.api.sse import OPTIONS_STATE_KEY, PING, FrameCache, SlowClient, SseOptions, cancel_all
from agentstream.protocol import cursor_key
from agentstream.streams import EventFilter, Follow, Reader, ReaderHub, Subscription, Tracker

__all__ = [
    "HANDOFF",
    "SERVER_SEND",
    "Broadcast",
    "LiveEventsResponse",
    "LiveHandoff",
    "LiveStream",
    "before_floor",
    "chunk",
]

logger = logging.getLogger(__name__)

#: the scope key under which the app keeps the server's own ``send`` (see the module doc)
SERVER_SEND = "agentstream.server_send"
#: the scope key of the list where a live response leaves its stream to :class:`LiveHandoff`
HANDOFF = "agentstream.live_handoff"
#: at most this many bytes of catch-up frames go in one write
MAX_WRITE_BYTES = 64 * 1024
#: entries a channel keeps of its latest: a member this close behind joins at once
RECENT = 256
#: ... and only those appended within this long of the newest: each holds a decoded
#: event (about 0.7 KB), and 256 of them on each of 40 tasks at 25 events/s were 7 of
#: the 8.5 MB a fan-out of 1,000 clients added while events flowed. A member's own read
#: that comes back this late under load reads once more instead.
RECENT_MS = 2_000
#: distinct filters the broadcast keeps one instance of
MAX_FILTERS = 1024
_NO_DEADLINE = contextlib.nullcontext()

Entry = tuple[str, dict[str, Any]]


def chunk(body: bytes) -> bytes:
    """``body`` as one chunk of HTTP/1.1 chunked transfer encoding."""
    return b"%x\r\n%b\r\n" % (len(body), body)


PING_CHUNK = chunk(PING)


def before_floor(event: Mapping[str, Any], floor: int | None) -> bool:
    """The event is at or before ``starting_after`` (a gap: it hides nothing after it)."""
    if floor is None:
        return False
    if event["type"] == "gap":
        return int(event.get("first_seq") or 0) <= floor + 1
    seq = event.get("seq")
    return isinstance(seq, int) and seq <= floor


# --------------------------------------------------------------------------- sinks


class Flow(Protocol):
    """uvicorn's flow control, as a member uses it."""

    write_paused: bool

    async def drain(self) -> None: ...


class _Direct:
    """A reachable transport: how to write to it and whether its body is chunked."""

    __slots__ = ("chunked", "cycle", "flow", "write")

    def __init__(self, cycle: Any, chunked: bool) -> None:
        self.cycle = cycle
        self.write: Callable[[bytes], object] = cycle.transport.write
        self.flow: Flow = cycle.flow
        self.chunked = chunked

    @property
    def gone(self) -> bool:
        return bool(self.cycle.disconnected)


def reach_transport(scope: Scope) -> _Direct | None:
    """The transport behind this response, once its head was sent, or ``None``: not a
    uvicorn httptools/h11 cycle, a ``HEAD``, or a body framed some other way."""
    cycle = getattr(scope.get(SERVER_SEND), "__self__", None)
    transport, flow = getattr(cycle, "transport", None), getattr(cycle, "flow", None)
    if transport is None or not hasattr(flow, "write_paused") or scope.get("method") == "HEAD":
        return None
    if not getattr(cycle, "response_started", False) or getattr(cycle, "response_complete", True):
        return None
    chunked = getattr(cycle, "chunked_encoding", None)  # httptools
    if chunked is not None:
        return _Direct(cycle, True) if chunked else None
    conn = getattr(cycle, "conn", None)  # h11: ask its writer how it frames a byte
    if conn is None or type(conn).__module__.split(".")[0] != "h11":
        return None
    import h11

    probe = conn.send(h11.Data(data=b"x"))
    if probe == b"1\r\nx\r\n":
        return _Direct(cycle, True)
    return _Direct(cycle, False) if probe == b"x" else None


class _SendQueue:
    """The fallback: frames go through the ASGI ``send`` from one writer task. Its own
    flow control: paused once more than ``bound`` bytes wait, resumed once all are sent."""

    def __init__(self, send: Send, bound: int) -> None:
        self._send = send
        self._bound = bound
        self._queue: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self.write_paused = False
        self.flow: Flow = self
        self.chunked = False

    def write(self, body: bytes) -> None:
        self._queue.append(body)
        self._size += len(body)
        self._ready.set()
        self._empty.clear()
        if self._size > self._bound:
            self.write_paused = True

    async def drain(self) -> None:
        await self._empty.wait()

    async def run(self) -> None:
        queue = self._queue
        while True:
            await self._ready.wait()
            self._ready.clear()
            while queue:
                parts, size = [], 0
                while queue and size < MAX_WRITE_BYTES:
                    parts.append(queue.popleft())
                    size += len(parts[-1])
                await self._send({"type": "http.response.body", "body": b"".join(parts), "more_body": True})
                self._size -= size
            self.write_paused = False
            self._empty.set()


# --------------------------------------------------------------------------- members


#: why a member left its group
COMPLETED, SLOW, ABANDONED, GONE = "completed", "slow", "abandoned", "gone"


class Member:
    """One client: where it writes, its filter and cursor, and its group once joined."""

    __slots__ = ("chunked", "floor", "flow", "follow", "gone", "group", "own", "parted", "watch", "write")

    def __init__(self, write: Callable[[bytes], object], flow: Flow, chunked: bool, follow: Follow,
                 floor: int | None) -> None:  # fmt: skip
        self.write = write
        self.flow = flow
        self.chunked = chunked
        self.follow = follow
        self.floor = floor
        self.watch = DeliveryWatch()
        self.group: _Group | None = None
        #: a tracker of its own while it stands ahead of its channel
        self.own: Tracker | None = None
        self.parted: asyncio.Future[str] | None = None
        self.gone = False

    def frame(self, body: bytes) -> bytes:
        return chunk(body) if self.chunked else body

    def send(self, payload: bytes) -> bool:
        """Write ``payload``; ``False`` if the transport closed (the client went)."""
        try:
            self.write(payload)
        except RuntimeError:  # uvloop: closed before the watcher saw the client go
            self.gone = True
            return False
        return True

    def leave(self, reason: str) -> None:
        """Out of the broadcast (idempotent); the member's runner learns ``reason``."""
        group, self.group = self.group, None
        if group is not None:
            group.remove(self)
        if self.parted is not None and not self.parted.done():
            self.parted.set_result(reason)

    def hang_up(self, task: asyncio.Task[None]) -> None:
        """The watcher saw the client go, or the fallback's writer failed (not cancelled
        by the response's own end)."""
        if not task.cancelled():
            if task.exception() is not None:
                logger.info("SSE client's writer failed: %r", task.exception())
            self.lost()

    def lost(self) -> None:
        """The client went."""
        self.gone = True
        self.leave(GONE)


def _write_all(members: dict[Member, None], payload: bytes, behind: list[Member]) -> None:
    """The broadcast's inner loop: ``payload`` to every member; ``behind``: those whose
    transport paused (or closed) with it."""
    for member in members:
        try:
            member.write(payload)
        except RuntimeError:  # uvloop: closed before the watcher saw the client go
            member.gone = True
            behind.append(member)
            continue
        if member.flow.write_paused:
            behind.append(member)


class _Group:
    """The members of one channel that read it through one filter."""

    def __init__(self, channel: _Channel, flt: EventFilter) -> None:
        self.channel = channel
        self.filter = flt
        self.everything = flt.passes_everything
        self.chunked: dict[Member, None] = {}
        self.raw: dict[Member, None] = {}
        #: members served one by one (see the module doc)
        self.apart: dict[Member, None] = {}
        self.last_write = asyncio.get_running_loop().time()

    def __len__(self) -> int:
        return len(self.chunked) + len(self.raw) + len(self.apart)

    def add(self, member: Member, apart: bool) -> None:
        member.group = self
        if apart:
            self.apart[member] = None
        else:
            (self.chunked if member.chunked else self.raw)[member] = None

    def remove(self, member: Member) -> None:
        for members in (self.chunked, self.raw, self.apart):
            members.pop(member, None)
        if not self:
            self.channel.drop(self)

    def deliver(self, entries: list[Entry], items: list[Entry], now: float) -> list[Member]:
        """Write the frames of ``items`` that pass the filter; the members that fell behind."""
        cache, task_id = self.channel.broadcast.frames, self.channel.task_id
        flt = self.filter
        frames = [cache.frame(task_id, c, e) for c, e in items if self.everything or flt.matches(e)]
        slow: list[Member] = []
        if frames:
            body = frames[0] if len(frames) == 1 else b"".join(frames)
            if self.chunked:
                _write_all(self.chunked, chunk(body), slow)
            if self.raw:
                _write_all(self.raw, body, slow)
            self.channel.broadcast.metrics.broadcast(frames, len(self.chunked) + len(self.raw))
            self.last_write = now
        for member in list(self.apart):
            if self._deliver_apart(member, entries, items):
                slow.append(member)
        return slow

    def _deliver_apart(self, member: Member, entries: list[Entry], items: list[Entry]) -> bool:
        channel, flt = self.channel, self.filter
        if member.own is not None:
            own = member.own
            mine = [item for c, e in entries for item in own.accept(c, e) if flt.matches(item[1])]
            if own.cursor == channel.tracker.cursor:
                member.own = None  # caught up with the channel: its tracker serves from now on
        else:
            mine = [item for item in items if self.everything or flt.matches(item[1])]
        if member.floor is not None:
            mine = [item for item in mine if not before_floor(item[1], member.floor)]
            seq = (member.own or channel.tracker).seq
            if seq is not None and seq >= member.floor:
                member.floor = None
        if mine:
            frames = [channel.broadcast.frames.frame(channel.task_id, c, e) for c, e in mine]
            if not member.send(member.frame(b"".join(frames))):
                return True
            channel.broadcast.metrics.delivered(frames, member.watch)
        if member.own is None and member.floor is None and member.watch.first_seen:
            del self.apart[member]
            (self.chunked if member.chunked else self.raw)[member] = None
        return member.flow.write_paused

    def ping(self, now: float) -> None:
        slow: list[Member] = []
        _write_all(self.chunked, PING_CHUNK, slow)
        _write_all(self.raw, PING, slow)
        for member in self.apart:
            if not member.send(member.frame(PING)):
                slow.append(member)
        self.last_write = now
        for member in slow:
            self.channel.part(member, GONE if member.gone else SLOW)

    def members(self) -> list[Member]:
        return [*self.chunked, *self.raw, *self.apart]


class _Channel:
    """One task's live stream in this process: one hub listener, one tracker, its groups."""

    def __init__(self, broadcast: Broadcast, task_id: str, key: str, cursor: str) -> None:
        self.broadcast = broadcast
        self.task_id = task_id
        self.key = key
        self.tracker = Tracker(task_id, cursor)
        self.groups: dict[EventFilter, _Group] = {}
        self.sub: Subscription | None = None
        #: the latest entries passed, so a member a little behind joins without reading
        #: again (under load its XRANGE came back after the channel had moved on)
        self.recent: collections.deque[Entry] = collections.deque(maxlen=RECENT)
        self.ready = asyncio.Event()
        self.closed = False
        #: members waiting for ``ready`` (the channel stays open for them)
        self.joining = 0

    async def start(self) -> None:
        try:
            self.sub = await self.broadcast.hub.listen(self.key, self.tracker.cursor, self)
        except BaseException:
            self.close()
            raise
        finally:
            self.ready.set()
        if self.closed:  # completed (or abandoned) while the listener was being added
            self.sub.close()
            return
        if not self.tracker.at_or_after(self.sub.since):
            # The hub's shard had passed this cursor: what lies between comes to no one
            # here, so members must have read up to ``since`` before they join.
            self.tracker = Tracker(self.task_id, self.sub.since)

    # the hub's Listener
    def entries(self, entries: list[Entry]) -> None:
        if self.closed:
            return
        tracker, recent = self.tracker, self.recent
        items: list[Entry] = []
        for cursor, event in entries:
            accepted = tracker.accept(cursor, event)
            if accepted:
                items.extend(accepted)
                recent.append((cursor, event))
        if not items:
            return
        oldest = cursor_key(recent[-1][0])[0] - RECENT_MS
        while cursor_key(recent[0][0])[0] < oldest:
            recent.popleft()
        ended = any(event["type"] == "completed" for _, event in items)
        now = asyncio.get_running_loop().time()
        for group in list(self.groups.values()):
            slow = group.deliver(entries, items, now)
            if not ended:
                for member in slow:
                    self.part(member, GONE if member.gone else SLOW)
        if ended:
            self.close(COMPLETED)

    def abandoned(self) -> None:
        self.close(ABANDONED)

    def part(self, member: Member, reason: str) -> None:
        """``member`` leaves; it goes on by XRANGE from this channel's cursor."""
        follow = member.follow
        follow.tracker = member.own or self.tracker.copy()
        follow.caught_up = False
        member.own = None
        member.leave(reason)

    def join(self, member: Member) -> bool:
        """Add ``member`` if it stands at this channel's cursor, ahead of it, or behind it
        by no more than ``recent`` holds (written to it first); ``False``: it is further
        behind, read on. Never awaits: the check and the join are one step."""
        follow = member.follow
        if self.closed:
            return False
        tracker = follow.tracker
        if tracker.cursor != self.tracker.cursor and not tracker.at_or_after(self.tracker.cursor):
            if not self.recent or not tracker.at_or_after(self.recent[0][0]):
                return False
            missed = [item for c, e in self.recent for item in follow.tracker.accept(c, e)]
            self.broadcast.write(member, [item for item in missed if follow.filter.matches(item[1])])
        cursor = follow.tracker.cursor
        if cursor == self.tracker.cursor:
            member.own = None
        elif member.follow.tracker.at_or_after(self.tracker.cursor):
            member.own = member.follow.tracker.copy()
        else:
            return False
        group = self.groups.get(member.follow.filter)
        if group is None:
            group = self.groups[member.follow.filter] = _Group(self, member.follow.filter)
        apart = member.own is not None or member.floor is not None or not member.watch.first_seen
        group.add(member, apart)
        member.parted = asyncio.get_running_loop().create_future()
        return True

    def drop(self, group: _Group) -> None:
        if self.groups.get(group.filter) is group:
            del self.groups[group.filter]
        if not self.groups and not self.joining:
            self.close()

    def close(self, reason: str = ABANDONED) -> None:
        if self.closed:
            return
        self.closed = True
        if self.broadcast.channels.get(self.key) is self:
            del self.broadcast.channels[self.key]
        if self.sub is not None:
            self.sub.close()
        for group in list(self.groups.values()):
            for member in group.members():
                if reason == COMPLETED:
                    member.follow.ended = True
                    member.leave(COMPLETED)
                else:
                    self.part(member, reason)
        self.groups.clear()


# --------------------------------------------------------------------------- the broadcast


class Broadcast:
    """The live streams of one API process. An async context manager (its ping ticker)."""

    def __init__(self, hub: ReaderHub, reader: Reader, frames: FrameCache, metrics: Metrics, *,
                 ping_interval_s: float, slow_client_s: float) -> None:  # fmt: skip
        self.hub = hub
        self.reader = reader
        self.frames = frames
        self.metrics = metrics
        self.ping_interval_s = ping_interval_s
        self.slow_client_s = slow_client_s
        self.channels: dict[str, _Channel] = {}
        self._filters: dict[EventFilter, EventFilter] = {}
        self._ticker: asyncio.Task[None] | None = None

    def intern(self, flt: EventFilter) -> EventFilter:
        """One instance per distinct filter (each holds a set of its own: 1.2 KB a client
        when every request kept its own); at most ``MAX_FILTERS`` are kept."""
        found = self._filters.get(flt)
        if found is not None:
            return found
        if len(self._filters) < MAX_FILTERS:
            self._filters[flt] = flt
        return flt

    async def __aenter__(self) -> Broadcast:
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="sse-ping-ticker")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ticker is not None:
            await cancel_all({self._ticker})
        for channel in list(self.channels.values()):
            channel.close()

    @property
    def members(self) -> int:
        """Clients in the broadcast right now (not those catching up)."""
        return sum(len(g) for c in self.channels.values() for g in c.groups.values())

    async def _tick(self) -> None:
        # One ticker for every client: pings are due per group, not timed per client.
        period = self.ping_interval_s / 4
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for channel in list(self.channels.values()):
                for group in list(channel.groups.values()):
                    if now - group.last_write >= self.ping_interval_s:
                        group.ping(now)

    async def follow(self, member: Member) -> None:
        """Serve ``member`` until its stream completed or it hung up: catch up by XRANGE,
        join the broadcast, and catch up again whenever it fell behind."""
        follow = member.follow
        self.write(member, follow.head)
        follow.head = []
        while not follow.ended and not member.gone:
            await self._drained(member)
            if not follow.caught_up:
                self.write(member, await follow.page())
                continue
            if not await self._join(member):
                follow.caught_up = False  # the channel is ahead: read on
                continue
            assert member.parted is not None
            reason = await member.parted
            if reason == SLOW:
                self.metrics.broadcast_leaves += 1

    async def _drained(self, member: Member) -> None:
        if not member.flow.write_paused or member.gone:
            return
        try:
            async with asyncio.timeout(self.slow_client_s):
                while member.flow.write_paused and not member.gone:
                    await member.flow.drain()
        except TimeoutError:
            raise SlowClient(f"client took nothing for {self.slow_client_s}s with its buffer full") from None

    def write(self, member: Member, items: list[Entry]) -> None:
        """Write ``items`` (what the member's own reading found) to ``member``."""
        frames, floor, task_id = [], member.floor, member.follow.task_id
        for cursor, event in items:
            if not before_floor(event, floor):
                frames.append(self.frames.frame(task_id, cursor, event))
        if not frames:
            return
        start, size = 0, 0
        for end, frame in enumerate(frames, 1):
            size += len(frame)
            if size >= MAX_WRITE_BYTES or end == len(frames):
                if not member.send(member.frame(b"".join(frames[start:end]))):
                    return
                start, size = end, 0
        self.metrics.delivered(frames, member.watch)

    async def _join(self, member: Member) -> bool:
        follow = member.follow
        key = self.reader.keys.events(follow.task_id)
        channel = self.channels.get(key)
        if channel is None:
            channel = self.channels[key] = _Channel(self, follow.task_id, key, follow.tracker.cursor)
            channel.joining += 1
            try:
                await channel.start()
            finally:
                channel.joining -= 1
        elif not channel.ready.is_set():
            channel.joining += 1
            try:
                await channel.ready.wait()
            finally:
                channel.joining -= 1
        joined = not member.gone and channel.join(member)
        if not joined and not channel.groups and not channel.joining:
            channel.close()
        return joined


class LiveEventsResponse(Response):
    """A task's live ``text/event-stream`` through the :class:`Broadcast`. It sends the
    head, then hands its :class:`LiveStream` to :class:`LiveHandoff` when the app has one
    (the chain that built it is then let go), else runs it in place."""

    media_type = "text/event-stream"

    def __init__(self, broadcast: Broadcast, task_id: str, cursor: str, flt: EventFilter, floor: int | None,
                 slot: Slot) -> None:  # fmt: skip
        self.broadcast = broadcast
        self.task_id = task_id
        self.cursor = cursor
        self.filter = broadcast.intern(flt)
        self.floor = floor
        self.slot = slot
        # a response never run still gives its place back
        self._unrun = weakref.finalize(self, slot.release)
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        options = scope.get("state", {}).get(OPTIONS_STATE_KEY)
        options = options if isinstance(options, SseOptions) else SseOptions()
        stream = LiveStream(self.broadcast, self.task_id, self.cursor, self.filter, self.floor, self.slot,
                            options.max_duration_s)  # fmt: skip
        self._unrun.detach()  # the stream gives the place back from here
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            if options.retry_ms:
                retry = b"retry: %d\n\n" % options.retry_ms
                await send({"type": "http.response.body", "body": retry, "more_body": True})
        except BaseException:
            stream.discard()
            raise
        handoff = scope.get(HANDOFF)
        if handoff is not None:
            handoff.append(stream)
            return
        await stream.run(scope, receive, send)


class LiveStream:
    """The body of one live response, once its head is sent: serves a :class:`Member`
    until the task completed, the client went, or ``max_duration_s`` passed; gives the
    slot back however it ends (:meth:`discard` for one that is never run)."""

    __slots__ = ("broadcast", "cursor", "filter", "floor", "max_duration_s", "slot", "started", "task_id")

    def __init__(self, broadcast: Broadcast, task_id: str, cursor: str, flt: EventFilter, floor: int | None,
                 slot: Slot, max_duration_s: float) -> None:  # fmt: skip
        self.broadcast = broadcast
        self.task_id = task_id
        self.cursor = cursor
        self.filter = flt
        self.floor = floor
        self.slot = slot
        self.max_duration_s = max_duration_s
        #: called once the stream's first read is done (or it ended before)
        self.started: Callable[[], object] | None = None

    def _first_read_done(self) -> None:
        started, self.started = self.started, None
        if started is not None:
            started()

    def discard(self) -> None:
        self._first_read_done()
        self.slot.release()

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream to the client of ``scope`` (``send`` ends the response, unless it went)."""
        broadcast = self.broadcast
        sink: _Direct | _SendQueue | None = reach_transport(scope)
        # The server tells of the client's going (api.serving); else a task waits for it.
        loss: ConnectionLoss | None = scope.get(CONNECTION_LOSS) if isinstance(sink, _Direct) else None
        tasks: set[asyncio.Task[Any]] = set()
        member: Member | None = None
        try:
            if sink is None:
                sink = _SendQueue(send, MAX_WRITE_BYTES)
                tasks.add(asyncio.create_task(sink.run(), name="sse-send"))
            if loss is None:
                tasks.add(asyncio.create_task(_watch(receive), name="sse-watch"))
            # no Timeout (and its dict) where there is no limit: it lives as long as the stream
            deadline = asyncio.timeout(self.max_duration_s) if self.max_duration_s else None
            try:
                async with deadline or _NO_DEADLINE:
                    follow = await broadcast.reader.follow(self.task_id, self.cursor, self.filter)
                    self._first_read_done()
                    member = Member(sink.write, sink.flow, sink.chunked, follow, self.floor)
                    for task in tasks:  # the client went, or the fallback's send failed
                        task.add_done_callback(member.hang_up)
                    if loss is not None:
                        if isinstance(sink, _Direct) and sink.gone:
                            member.gone = True  # it went while the stream was being read
                        loss.callback = member.lost
                    await broadcast.follow(member)
            except TimeoutError:
                if deadline is None or not deadline.expired():
                    raise
            if member is not None:
                member.leave(GONE)
            await _flushed(sink, broadcast.slow_client_s)
        except SlowClient as exc:
            broadcast.metrics.slow_client_disconnects += 1
            logger.info("SSE client cut off: %s", exc)
            return
        except Exception as exc:
            # The stream broke (Redis down, task expired): end the response; the client
            # resumes from its last cursor.
            logger.warning("SSE stream ended early: %r", exc)
            return
        finally:
            self._first_read_done()
            if loss is not None:
                loss.callback = None
            if member is not None:
                member.leave(GONE)
            await cancel_all(tasks)
            self.slot.release()
        if not (member is not None and member.gone) and not (isinstance(sink, _Direct) and sink.gone):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class LiveHandoff:
    """The outermost layer of the app's middleware stack: a :class:`LiveStream` runs here,
    after the routing, dependency and middleware chain that built its response returned.
    Parked inside that chain, each live client held it for its whole life: 28 coroutine
    frames, three exit stacks, two ``Request`` objects and their closures, 11 of the 23 KB
    of Python objects it held (``bench/sse_memory.py``). What that chain added to the scope
    goes too. Middleware above this layer (FastAPI's telemetry) still spans the stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        own = tuple(scope)
        # a list, not the stream itself: a layer below that copies the scope shares it
        handoff: list[LiveStream] = []
        scope[HANDOFF] = handoff
        try:
            await self.app(scope, receive, send)
        except BaseException:
            for stream in handoff:
                stream.discard()
            raise
        if not handoff:
            return
        stream = handoff.pop()
        for key in [key for key in scope if key not in own]:
            del scope[key]  # the route's, its dependencies' exit stacks (closed), FastAPI's, HANDOFF
        await stream.run(scope, receive, send)


async def _flushed(sink: _Direct | _SendQueue, timeout_s: float) -> None:
    """Until what was written left (the queue) or the transport takes more (its flow)."""
    try:
        async with asyncio.timeout(timeout_s):
            if isinstance(sink, _SendQueue):
                await sink.drain()
            else:
                while sink.flow.write_paused and not sink.gone:
                    await sink.flow.drain()
    except TimeoutError:
        raise SlowClient(f"client took nothing for {timeout_s}s with its buffer full") from None


async def _watch(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
