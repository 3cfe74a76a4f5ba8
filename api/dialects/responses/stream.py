"""Reading a task as a Response: its event stream, its object, and waiting for its end.

Every reader translates the stream from its start (the translator keeps the open items
and their text, which ``*.done`` events repeat), so resuming after ``sequence_number`` N
costs a read of the stored history; only events numbered above N are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from agentstream.api.dialects.responses.objects import ResponseState
from agentstream.api.dialects.responses.translator import ResponsesTranslator
from agentstream.streams import EventFilter, Reader, TaskMeta

__all__ = ["response_frames", "response_object", "wait_for_end"]

_ALL = EventFilter.parse("all")
_END = EventFilter.parse("all", "completed")


def event_frame(event: Mapping[str, Any]) -> bytes:
    """``event: <type>``, ``data: <event JSON>``, as OpenAI sends them. No ``id:`` line: once
    the ``openai`` SDK's SSE decoder has seen an id, it turns every later blank line (the
    end of a ``: ping`` comment) into an empty event it cannot parse. Clients resume with
    ``starting_after=<sequence_number>``."""
    return b"event: %s\ndata: %s\n\n" % (str(event["type"]).encode(), orjson.dumps(event))


async def response_frames(reader: Reader, meta: TaskMeta, starting_after: int = 0) -> AsyncIterator[bytes]:
    """The task's Responses events numbered above ``starting_after``, live until its end."""
    translator = ResponsesTranslator(ResponseState.of(meta))
    items = reader.tail(meta.task_id, "0", _ALL)
    async with contextlib.aclosing(items):  # type: ignore[type-var]
        async for _, event in items:
            for translated in translator.feed(event):
                if translated["sequence_number"] > starting_after:
                    yield event_frame(translated)


async def response_object(reader: Reader, meta: TaskMeta) -> dict[str, Any]:
    """The ``Response`` object of the task as its stored events stand now."""
    translator = ResponsesTranslator(ResponseState.of(meta))
    items = reader.replay(meta.task_id, "0", _ALL)
    async with contextlib.aclosing(items):  # type: ignore[type-var]
        async for _, event in items:
            translator.feed(event)
    return translator.state.snapshot()


async def wait_for_end(reader: Reader, meta: TaskMeta, timeout_s: float) -> None:
    """Return once the task's ``completed`` is stored, or after ``timeout_s``."""
    if meta.done:
        return
    items = reader.tail(meta.task_id, "0", _END)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s), contextlib.aclosing(items):  # type: ignore[type-var]
            async for _ in items:
                return
