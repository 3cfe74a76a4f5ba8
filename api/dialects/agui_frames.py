"""AG-UI frames over SSE: frame ids, resumption, and the reader of a task's stream.

**Frame ids.** Every frame keeps the stream's cursor. One stream event may become several
AG-UI events: the last frame of the group has ``id: <cursor>``, the earlier ones
``id: <cursor>:<k>`` (``k`` counting from 0), so any id a client holds says exactly which
frames it has. Both forms are accepted back as ``Last-Event-ID`` or ``after``. Frames that
are no event of the stream (a ``gap``, the resume prelude below) have no ``id:`` line, so
a client's last id does not move.

**Resumption.** AG-UI's own transports cannot resume; this one can. A reader resuming
from an id gets the translator rebuilt by replaying the stream up to that point without
sending anything, then, before the rest of the stream: ``RUN_STARTED`` again (AG-UI
clients expect every response to open with it) and the start event of every message, tool
call, step and reasoning span still open at that point, with their original ids, so the
deltas that follow land where they belong. A reader resuming after the end of the run gets
nothing.

**Waiting.** While the stream has announced waits that no ``input`` answered, the reader
tails with a short idle timeout and, when the stream goes quiet, reads the task's status:
once it is ``waiting`` the run ends with the interrupt outcome (frames without ``id:``,
derived again by any reader that reaches the same point), and the response ends. A
continuation (``RunAgentInput.resume``) reads from the answer's cursor like a resumed
reader, under the client's new run id.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    ReasoningEndEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallEndEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder

from agentstream.api.dialects.agui import AgUiTranslator
from agentstream.api.dialects.parking import Status, tail_until_parked
from agentstream.protocol import cursor_key
from agentstream.streams import EventFilter, InvalidCursor, Reader, TaskMeta, parse_cursor
from agentstream.streams.keys import public_task_id

__all__ = ["AgUiFrames", "OpenBlocks", "ResumePoint", "agui_frames", "frame_ids", "resume_point"]

_MAX_INDEX_DIGITS = 6
_ALL = EventFilter.parse("all")


def _block(event: BaseEvent) -> tuple[str, str, bool] | None:
    """``(kind, id, opens)`` of an event that opens or closes a block, else None."""
    match event:
        case RunStartedEvent():
            return "run", "", True
        case RunFinishedEvent() | RunErrorEvent():
            return "run", "", False
        case StepStartedEvent(step_name=name) | StepFinishedEvent(step_name=name):
            return "step", name, isinstance(event, StepStartedEvent)
        case TextMessageStartEvent(message_id=mid) | TextMessageEndEvent(message_id=mid):
            return "text", mid, isinstance(event, TextMessageStartEvent)
        case ToolCallStartEvent(tool_call_id=cid) | ToolCallEndEvent(tool_call_id=cid):
            return "tool", cid, isinstance(event, ToolCallStartEvent)
        case ReasoningStartEvent(message_id=mid) | ReasoningEndEvent(message_id=mid):
            return "reasoning", mid, isinstance(event, ReasoningStartEvent)
        case ReasoningMessageStartEvent(message_id=mid) | ReasoningMessageEndEvent(message_id=mid):
            return "reasoning_message", mid, isinstance(event, ReasoningMessageStartEvent)
    return None


class OpenBlocks:
    """What a sequence of AG-UI events left open: the run, steps, messages, tool calls,
    reasoning spans; kept as their start events, in the order they opened."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], BaseEvent] = {}

    def observe(self, event: BaseEvent) -> None:
        block = _block(event)
        if block is None:
            return
        kind, block_id, opens = block
        if opens:
            self._open[kind, block_id] = event
        else:
            self._open.pop((kind, block_id), None)

    def starts(self) -> list[BaseEvent]:
        """The start events that re-open everything still open, outermost first."""
        return list(self._open.values())


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a reader resumes: after the stream event at ``cursor``, or, with ``index``,
    after the frame ``index`` of that event's group (``id: <cursor>:<index>``)."""

    cursor: str
    index: int | None = None

    @classmethod
    def parse(cls, value: str | None) -> ResumePoint:
        """``<cursor>`` or ``<cursor>:<k>``; :class:`~streams.InvalidCursor` otherwise."""
        text = value or "0"
        cursor, sep, index = text.partition(":")
        if not sep:
            return cls(parse_cursor(cursor))
        if not index.isdigit() or len(index) > _MAX_INDEX_DIGITS or cursor == "$":
            raise InvalidCursor(f"invalid event id {text!r}: expected '<cursor>' or '<cursor>:<k>'")
        return cls(parse_cursor(cursor), int(index))

    @property
    def fresh(self) -> bool:
        return self.cursor == "0-0" and self.index is None


def frame_ids(cursor: str, count: int) -> list[str]:
    """The ids of the ``count`` frames of the event at ``cursor``: ``<cursor>:<k>``, the
    last one plain ``<cursor>``."""
    return [f"{cursor}:{k}" for k in range(count - 1)] + [cursor] if count else []


class AgUiFrames:
    """One reader's SSE frames: translation, frame ids and resumption. Pure: feed it the
    task's events from the start of the stream (``resume``) or from wherever the reader
    starts (a fresh read), then call :meth:`resumed` once the stored history is read."""

    def __init__(
        self,
        thread_id: str,
        run_id: str,
        resume: ResumePoint | None = None,
        reported_run_id: str | None = None,
    ) -> None:
        self.translator = AgUiTranslator(thread_id, run_id, reported_run_id)
        self._encoder = EventEncoder()
        self._resume = None if resume is None or resume.fresh else resume
        self._open = OpenBlocks()
        self._held: list[bytes] = []
        self._lost: list[BaseEvent] = []

    @property
    def finished(self) -> bool:
        """The run ended and nothing is left to send."""
        return self.translator.finished and self._resume is None

    def encode(self, event: BaseEvent, frame_id: str | None) -> bytes:
        data = self._encoder.encode(event).encode()
        return b"id: %s\n%s" % (frame_id.encode(), data) if frame_id is not None else data

    def frames(self, cursor: str, event: Mapping[str, Any]) -> list[bytes]:
        """The frames to send for the stream event at ``cursor`` (none while rebuilding)."""
        translated = self.translator.feed(event)
        resume = self._resume
        if event.get("type") == "gap":
            if resume is None:
                return [self.encode(e, None) for e in translated]
            for e in translated:
                self._open.observe(e)
            if cursor_key(resume.cursor) < cursor_key(str(event.get("first_cursor") or "0-0")):
                self._lost = [e for e in translated if isinstance(e, CustomEvent)]
            return []
        ids = frame_ids(cursor, len(translated))
        if resume is None:
            return [self.encode(e, i) for e, i in zip(translated, ids, strict=True)]
        position = cursor_key(cursor), cursor_key(resume.cursor)
        if position[0] < position[1] or (cursor == resume.cursor and resume.index is None):
            for e in translated:
                self._open.observe(e)
            return []
        if cursor == resume.cursor:
            seen = (resume.index or 0) + 1
            for e in translated[:seen]:
                self._open.observe(e)
            self._held = [self.encode(e, i) for e, i in zip(translated[seen:], ids[seen:], strict=True)]
            return []
        return self.resumed() + [self.encode(e, i) for e, i in zip(translated, ids, strict=True)]

    def resumed(self) -> list[bytes]:
        """The resume prelude, once: ``RUN_STARTED`` and the starts of what is open at the
        resume point (no ids), a ``gap`` the client has not seen, then the rest of the
        group the client was in. Empty for a fresh read and when the client has it all."""
        if self._resume is None:
            return []
        self._resume = None
        reopen = self._open.starts()
        frames = [self.encode(e, None) for e in (*reopen, *self._lost)]
        frames += self._held
        self._held, self._lost = [], []
        return frames

    def interrupt(self, meta: TaskMeta) -> list[bytes]:
        """The frames that end the run because the task waits (``meta``), without ids."""
        pending = [str(item.get("tool_call_id")) for item in meta.pending_input]
        return [self.encode(e, None) for e in self.translator.interrupt(pending, meta.input_deadline)]


async def resume_point(
    reader: Reader, task_id: str, last_event_id: str | None, starting_after: int | None, after: str | None
) -> ResumePoint:
    """Where an AG-UI reader starts: ``Last-Event-ID``, else ``starting_after`` (a seq),
    else ``after``; ``$`` is the newest event. :class:`~streams.InvalidCursor` for a bad id."""
    if last_event_id:
        resume = ResumePoint.parse(last_event_id)
    elif starting_after is not None:
        resume = ResumePoint(await reader.cursor_after_seq(task_id, starting_after))
    else:
        resume = ResumePoint.parse(after)
    if resume.cursor == "$":
        resume = ResumePoint(await reader.last_cursor(task_id) or "0-0")
    return resume


def thread_id(meta: TaskMeta) -> str:
    """The AG-UI thread of a task: its ``session_id``, else the task id."""
    return str(meta.request.get("session_id") or public_task_id(meta.task_id))


async def agui_frames(
    reader: Reader,
    meta: TaskMeta,
    resume: ResumePoint,
    status: Status,
    *,
    run_id: str | None = None,
) -> AsyncIterator[bytes]:
    """The task's run as AG-UI SSE frames from ``resume`` to ``RUN_FINISHED``/``RUN_ERROR``,
    or to the interrupt once the task waits for a person (``status`` reads its meta).

    A fresh read tails from the start. A resumed one first replays the stored history from
    the start to rebuild the translator (sending nothing up to the resume point), then
    tails from where the replay stopped. ``run_id`` is the client's run when it continues
    the task (a resume), reported in ``RUN_STARTED``/``RUN_FINISHED``."""
    task_id = meta.task_id
    frames = AgUiFrames(thread_id(meta), public_task_id(task_id), resume, run_id)
    after = "0-0"
    if not resume.fresh:
        items = reader.replay(task_id, "0", _ALL)
        async with contextlib.aclosing(items):  # type: ignore[type-var]
            async for cursor, event in items:
                for frame in frames.frames(cursor, event):
                    yield frame
                if event["type"] != "gap":
                    after = cursor
                if event["type"] == "completed":
                    break
        for frame in frames.resumed():
            yield frame
        if frames.finished:
            return
    items = tail_until_parked(
        reader, task_id, after, status,
        waits=lambda: bool(frames.translator.waits), finished=lambda: frames.finished,
    )  # fmt: skip
    async with contextlib.aclosing(items):  # type: ignore[type-var]
        async for item in items:
            if isinstance(item, TaskMeta):
                for frame in frames.interrupt(item):
                    yield frame
            else:
                for frame in frames.frames(*item):
                    yield frame
