"""The protocol's small vocabulary, shared by the SDK and the server without either
importing the other: streaming modes and the order of cursors.

A leaf module: it imports nothing of the project and no third-party package, so the light
SDK (:mod:`agentstream.sdk`) and the streams core (:mod:`agentstream.streams`) both build on
it. The full event vocabulary (types, categories, filters) is the core's
(:mod:`agentstream.streams.events`).
"""

from __future__ import annotations

import enum

__all__ = ["MODE_CATEGORIES", "StreamingMode", "cursor_key"]


class StreamingMode(enum.StrEnum):
    """AWorld's streaming modes: which categories a reader receives."""

    CORE = "core"
    CHUNK = "chunk"
    OUTPUT = "output"
    CHUNK_OUTPUT = "chunk_output"
    ALL = "all"

    @property
    def categories(self) -> frozenset[str] | None:
        """The categories passed; ``None`` means everything, unknown types included."""
        return MODE_CATEGORIES[self]


MODE_CATEGORIES: dict[StreamingMode, frozenset[str] | None] = {
    StreamingMode.CORE: frozenset({"agent", "tool", "chunk", "task", "group"}),
    StreamingMode.CHUNK: frozenset({"chunk"}),
    StreamingMode.OUTPUT: frozenset({"output"}),
    StreamingMode.CHUNK_OUTPUT: frozenset({"chunk", "output"}),
    StreamingMode.ALL: None,
}


def cursor_key(cursor: str) -> tuple[int, int]:
    """A cursor ``<ms>-<n>`` as a tuple that sorts the way Redis orders entries
    (``<ms>`` alone means ``<ms>-0``). Raises ``ValueError`` for anything else."""
    ms, _, n = cursor.partition("-")
    return int(ms), int(n or 0)
