"""Reading a task as a Response: its event stream, its object, and waiting for its end.

Every reader translates the stream from its start (the translator keeps the open items
and their text, which ``*.done`` events repeat), so resuming after ``sequence_number`` N
costs a read of the stored history; only events numbered above N are sent.

A response is a task's whole stream, or its part after an answer (:class:`Window`). While
calls of the response wait for a person, the reader tails with a short idle timeout and,
when the stream goes quiet, reads the task's status: once the task is ``waiting`` the
response ends (:meth:`~agentstream.api.dialects.responses.translator.ResponsesTranslator.park`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from agentstream.api.dialects.parking import Status, tail_until_parked
from agentstream.api.dialects.responses.objects import ResponseState
from agentstream.api.dialects.responses.translator import ResponsesTranslator
from agentstream.streams import EventFilter, Reader, TaskMeta
from agentstream.streams.keys import public_task_id

__all__ = ["Window", "response_frames", "response_object", "wait_for_end"]

_ALL = EventFilter.parse("all")


@dataclass(frozen=True, slots=True)
class Window:
    """Which part of a task a response is: ``after_seq`` 0 for the task's first response
    (its id is the task id), else the continuation after the answer with that seq (its
    id ``<task id>.<seq>``)."""

    meta: TaskMeta
    after_seq: int = 0

    @property
    def response_id(self) -> str:
        task = public_task_id(self.meta.task_id)
        return f"{task}.{self.after_seq}" if self.after_seq else task

    def translator(self) -> ResponsesTranslator:
        state = ResponseState.of(self.meta)
        state.id = self.response_id
        return ResponsesTranslator(state, self.after_seq)


def event_frame(event: Mapping[str, Any]) -> bytes:
    """``event: <type>``, ``data: <event JSON>``, as OpenAI sends them. No ``id:`` line: once
    the ``openai`` SDK's SSE decoder has seen an id, it turns every later blank line (the
    end of a ``: ping`` comment) into an empty event it cannot parse. Clients resume with
    ``starting_after=<sequence_number>``."""
    return b"event: %s\ndata: %s\n\n" % (str(event["type"]).encode(), orjson.dumps(event))


async def _translated(reader: Reader, window: Window, status: Status) -> AsyncIterator[dict[str, Any]]:
    """The window's Responses events, live, until the response ends (the task's end, or
    its park while calls of the response wait)."""
    translator = window.translator()
    items = tail_until_parked(
        reader, window.meta.task_id, "0", status,
        waits=lambda: bool(translator.waits), finished=lambda: translator.finished,
    )  # fmt: skip
    async with contextlib.aclosing(items):  # type: ignore[type-var]
        async for item in items:
            for translated in translator.park() if isinstance(item, TaskMeta) else translator.feed(item[1]):
                yield translated


async def response_frames(
    reader: Reader, window: Window, status: Status, starting_after: int = 0
) -> AsyncIterator[bytes]:
    """The response's events numbered above ``starting_after``, live until its end."""
    events = _translated(reader, window, status)
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for translated in events:
            if translated["sequence_number"] > starting_after:
                yield event_frame(translated)


async def response_object(reader: Reader, window: Window, status: Status) -> dict[str, Any]:
    """The ``Response`` object as the task's stored events stand now (ended when the task
    waits for calls of this response)."""
    translator = window.translator()
    items = reader.replay(window.meta.task_id, "0", _ALL)
    async with contextlib.aclosing(items):  # type: ignore[type-var]
        async for _, event in items:
            translator.feed(event)
    if translator.waits and not translator.finished:
        current = await status()
        if current is not None and current.status == "waiting":
            translator.park()
    return translator.state.snapshot()


async def wait_for_end(reader: Reader, window: Window, status: Status, timeout_s: float) -> None:
    """Return once the response ended (the task's ``completed``, or its park), or after
    ``timeout_s``."""
    if window.meta.done:
        return
    events = _translated(reader, window, status)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s), contextlib.aclosing(events):  # type: ignore[type-var]
            async for _ in events:
                pass
