"""The event vocabulary (PROTOCOL section 3) and the read-time filters (section 5).

On the wire and in readers an event is a plain ``dict`` (the JSON object of the protocol):
that is what agents emit, what the codec stores and what readers yield, so hot paths never
pay for model validation. The categories are the protocol's (:mod:`agentstream.protocol`)
and the typed models live in the leaf :mod:`agentstream.events`, which the SDK shares
without loading Redis; both are re-exported here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentstream.events import Event, LoopScope, UnknownEvent, dump_event, parse_event
from agentstream.protocol import ALWAYS_PASS, CATEGORIES, StreamingMode, category_of

from .errors import InvalidFilter

__all__ = [
    "ALWAYS_PASS",
    "CATEGORIES",
    "Event",
    "EventFilter",
    "LoopScope",
    "Scope",
    "StreamingMode",
    "UnknownEvent",
    "category_of",
    "dump_event",
    "effective_loop_scope",
    "is_terminal",
    "parse_event",
    "utc_now_iso",
]

JsonObject = dict[str, Any]


def utc_now_iso() -> str:
    """Now, ISO 8601 UTC with microseconds and offset (the protocol's timestamp form)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


# -- streaming modes (PROTOCOL section 5) ---------------------------------------------


def is_terminal(event: Mapping[str, Any]) -> bool:
    """True for the one event that ends every stream."""
    return event.get("type") == "completed"


def effective_loop_scope(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's ``loop_scope``; an absent one means ``{"kind": "main"}``."""
    scope = event.get("loop_scope")
    return dict(scope) if isinstance(scope, Mapping) else {"kind": "main"}


#: the types a ``types=`` list may name (the markers ``gap`` and ``reset`` always pass)
_FILTER_TYPES: frozenset[str] = frozenset(CATEGORIES) - {"gap", "reset"}


class Scope(enum.StrEnum):
    """Filter on ``loop_scope.kind``."""

    MAIN = "main"
    DAWP = "dawp"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class EventFilter:
    """One reader's view of a stream: mode, optional type list and loop scope.

    Filtering happens at read time per reader; the cursor stays the stream's own, so a
    reader may change its filter and still resume where it was.
    """

    mode: StreamingMode = StreamingMode.CORE
    types: frozenset[str] | None = None
    scope: Scope = Scope.ALL
    _passing: frozenset[str] = field(init=False, repr=False, compare=False)

    @classmethod
    def parse(
        cls,
        mode: str | StreamingMode | None = None,
        types: str | Iterable[str] | None = None,
        scope: str | Scope | None = None,
    ) -> EventFilter:
        """Build a filter from query-string values; :class:`InvalidFilter` if unknown."""
        try:
            parsed_mode = StreamingMode((mode or "core").lower())
        except ValueError:
            allowed = ", ".join(m.value for m in StreamingMode)
            raise InvalidFilter(f"unknown mode {mode!r}; expected one of {allowed}") from None
        try:
            parsed_scope = Scope((scope or "all").lower())
        except ValueError:
            raise InvalidFilter(f"unknown scope {scope!r}; expected main, dawp or all") from None
        parsed_types: frozenset[str] | None = None
        if types is not None:
            items = types.split(",") if isinstance(types, str) else list(types)
            cleaned = frozenset(t.strip() for t in items if t.strip())
            if any(len(t) > 64 for t in cleaned):
                raise InvalidFilter("a type name in types= is longer than 64 characters")
            if cleaned and cleaned.isdisjoint(_FILTER_TYPES):
                # Nothing but ``error``/``completed`` could ever pass: surely a typo. Unknown
                # names beside a known one are kept: a newer writer may use them (mode all).
                raise InvalidFilter(
                    f"types={','.join(sorted(cleaned))} names no known event type; "
                    f"known types: {', '.join(sorted(_FILTER_TYPES))}"
                )
            parsed_types = cleaned or None
        return cls(parsed_mode, parsed_types, parsed_scope)

    def __post_init__(self) -> None:
        # Precompute which known types pass, so matching a stored event is one set lookup.
        allowed = self.mode.categories
        passing = {
            kind
            for kind, category in CATEGORIES.items()
            if kind in ALWAYS_PASS
            or ((allowed is None or category in allowed) and (self.types is None or kind in self.types))
        }
        object.__setattr__(self, "_passing", frozenset(passing))

    @property
    def passes_everything(self) -> bool:
        return self.mode is StreamingMode.ALL and self.types is None and self.scope is Scope.ALL

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether this reader receives ``event``."""
        kind = event.get("type")
        if kind in CATEGORIES:
            if kind not in self._passing:
                return False
            if kind in ALWAYS_PASS or self.scope is Scope.ALL:
                return True
        elif self.mode is not StreamingMode.ALL or (self.types is not None and kind not in self.types):
            return False  # unknown types pass only ``all``
        elif self.scope is Scope.ALL:
            return True
        scope = event.get("loop_scope")
        scope_kind = scope.get("kind", "main") if isinstance(scope, Mapping) else "main"
        return bool(scope_kind == self.scope.value)
