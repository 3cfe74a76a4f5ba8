"""Reading an SSE response: httpx-sse's WHATWG decoder, then protocol event dicts.

The decoder keeps the last event id across frames, as the WHATWG spec and browsers'
``EventSource`` do: a frame without an ``id:`` line reports the id of the frame before it.
Only a frame that *moved* the id names a cursor of its own, so :func:`frame_to_event`
gives the event an ``id`` only then; a marker (``gap``, ``drained``) that inherits the
previous id is no event of the stream and must neither move the client's cursor nor be
mistaken for a duplicate of the event before it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource

__all__ = ["SSEFrame", "aiter_frames", "frame_to_event"]

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SSEFrame:
    """One dispatched server-sent event.

    ``id`` is the last event id when it was dispatched (``None`` before any), ``new_id``
    whether this frame's own ``id:`` line set it.
    """

    event: str
    data: str
    id: str | None
    new_id: bool = True


async def aiter_frames(response: httpx.Response) -> AsyncIterator[SSEFrame]:
    """The frames of an ``text/event-stream`` response; comments (``: ping``) and frames
    without data are not dispatched, as the spec says. ``httpx_sse.SSEError`` if the
    response is not an event stream."""
    last_id = ""
    async for sse in EventSource(response).aiter_sse():
        moved, last_id = sse.id != last_id, sse.id
        if not sse.data:
            continue
        yield SSEFrame(event=sse.event, data=sse.data, id=sse.id or None, new_id=moved)


def frame_to_event(frame: SSEFrame) -> JsonObject:
    """The event dict of a frame; a ``gap`` frame becomes ``{"type": "gap", ...}``.

    The event keeps the ``id`` its JSON carries (the server always sends it for stored
    events); otherwise it takes the frame's id only when the frame set it.
    """
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
    if frame.id is not None and frame.new_id:
        event.setdefault("id", frame.id)
    return event
