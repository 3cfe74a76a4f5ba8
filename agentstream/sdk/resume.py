"""What a reader has seen: the cursor to resume from and the safety net against duplicates.

The server resumes after ``Last-Event-ID``, so a correct server never resends an event; a
buggy proxy or a server that resends a few anyway must still not show the caller an
event twice. A plain stream is ordered by cursor, so anything at or before the last cursor
yielded is a duplicate. Group delivery is not ordered (claimed entries of a dead consumer
come late), so there it is the exact ids seen recently. A ``gap`` marker passes once; a
``reset`` marker moves the cursor back to where the stream now continues.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from agentstream.protocol import cursor_key

__all__ = ["ResumeState", "is_cursor"]

#: how many delivered ids a group reader remembers to drop redeliveries
_RECENT_IDS = 10_000


def is_cursor(value: object) -> bool:
    """Whether ``value`` is a stream entry id (``<ms>-<n>``)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        cursor_key(value)
    except ValueError:
        return False
    return True


def reset_point(event: Mapping[str, Any]) -> str | None:
    """Where the stream continues after a ``reset`` marker: its ``last_cursor`` (``None``:
    from the start), else the marker's own id."""
    point = event["last_cursor"] if "last_cursor" in event else event.get("id")
    return point if is_cursor(point) else None


class ResumeState:
    """One reader's position (``cursor``, sent as ``Last-Event-ID`` on reconnect) and the
    duplicate filter; :meth:`admit` is called once per event received."""

    def __init__(self, cursor: str | None, *, grouped: bool) -> None:
        self.cursor = cursor
        self._grouped = grouped
        self._last = cursor_key(cursor) if cursor else None
        self._recent: deque[str] = deque(maxlen=_RECENT_IDS)
        self._recent_set: set[str] = set()
        self._gaps: set[str] = set()

    def admit(self, event: Mapping[str, Any]) -> bool:
        """Whether the caller should see ``event``; moves the cursor past it if so."""
        kind = event.get("type")
        if kind == "reset":
            # Whatever came after the reset point was lost: later events are new again.
            self.cursor = reset_point(event)
            self._last = cursor_key(self.cursor) if self.cursor else None
            return True
        if kind == "gap":
            marker = str(event.get("first_cursor"))
            fresh = marker not in self._gaps
            self._gaps.add(marker)
            return fresh
        event_id = event.get("id")
        if not isinstance(event_id, str) or not is_cursor(event_id):
            return True  # no position of its own: nothing to compare, nothing to move
        fresh = self._fresh_in_group(event_id) if self._grouped else self._fresh_in_order(event_id)
        if fresh:
            self.cursor = event_id
        return fresh

    def _fresh_in_order(self, event_id: str) -> bool:
        key = cursor_key(event_id)
        if self._last is not None and key <= self._last:
            return False
        self._last = key
        return True

    def _fresh_in_group(self, event_id: str) -> bool:
        if event_id in self._recent_set:
            return False
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(event_id)
        self._recent_set.add(event_id)
        return True
