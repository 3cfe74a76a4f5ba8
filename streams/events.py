"""The event vocabulary (PROTOCOL section 3) and the read-time filters (section 5).

On the wire and in readers an event is a plain ``dict`` (the JSON object of the protocol):
that is what agents emit, what the codec stores and what readers yield, so hot paths never
pay for model validation. The pydantic models below are the typed view of the same data:
``parse_event`` validates a dict into the closed union :data:`Event`, and unknown types
still round-trip through :class:`UnknownEvent` untouched (forward compatibility).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from agentstream.protocol import StreamingMode

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


class LoopScope(BaseModel):
    """Where an event was produced: ``main`` or a workflow (``dawp``) step."""

    model_config = ConfigDict(extra="allow")
    kind: str = "main"
    run_id: str | None = None
    workflow_id: str | None = None
    step_id: str | None = None
    step_index: int | None = None


class _Envelope(BaseModel):
    """Fields every event has. ``seq``/``attempt``/``id`` are set once stored."""

    model_config = ConfigDict(extra="allow")
    task_id: str | None = None
    seq: int | None = None
    attempt: int | None = None
    timestamp: str = Field(default_factory=utc_now_iso)
    agent_id: str | None = None
    loop_scope: LoopScope | None = None
    id: str | None = None


class ToolCallItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int
    tool_call_id: str
    tool_name: str
    parameters: JsonObject


class Queued(_Envelope):
    type: Literal["queued"] = "queued"
    agent: str
    input: str


class Status(_Envelope):
    type: Literal["status"] = "status"
    status: str


class Started(_Envelope):
    type: Literal["started"] = "started"
    agent: str


class Retry(_Envelope):
    type: Literal["retry"] = "retry"
    reason: str


class IterationStart(_Envelope):
    type: Literal["iteration_start"] = "iteration_start"
    iteration: int
    max_iterations: int
    remaining: int


class Token(_Envelope):
    type: Literal["token"] = "token"
    content: str


class ThinkingToken(_Envelope):
    type: Literal["thinking_token"] = "thinking_token"
    content: str


class ToolCallDelta(_Envelope):
    type: Literal["tool_call_delta"] = "tool_call_delta"
    index: int
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments_delta: str
    arguments: str


class ToolCallsReady(_Envelope):
    type: Literal["tool_calls_ready"] = "tool_calls_ready"
    tool_calls: list[ToolCallItem]


class Thought(_Envelope):
    type: Literal["thought"] = "thought"
    content: str
    iteration: int


class Action(_Envelope):
    type: Literal["action"] = "action"
    tool_name: str
    tool_call_id: str
    parameters: JsonObject
    iteration: int


class ToolCall(_Envelope):
    type: Literal["tool_call"] = "tool_call"
    tool_name: str
    tool_call_id: str
    parameters: JsonObject


class ToolResult(_Envelope):
    type: Literal["tool_result"] = "tool_result"
    tool_name: str
    tool_call_id: str
    result: Any
    success: bool = True


class ToolError(_Envelope):
    type: Literal["tool_error"] = "tool_error"
    tool_name: str
    tool_call_id: str
    error: str


class Observation(_Envelope):
    type: Literal["observation"] = "observation"
    content: str
    iteration: int
    has_error: bool


class DawpRunStarted(_Envelope):
    type: Literal["dawp_run_started"] = "dawp_run_started"
    run_id: str
    workflow_id: str
    placement: str
    trigger: str


class DawpStepStarted(_Envelope):
    type: Literal["dawp_step_started"] = "dawp_step_started"
    run_id: str
    step_id: str
    step_index: int


class DawpStepCompleted(_Envelope):
    type: Literal["dawp_step_completed"] = "dawp_step_completed"
    run_id: str
    step_id: str
    step_index: int
    success: bool


class DawpRunCompleted(_Envelope):
    type: Literal["dawp_run_completed"] = "dawp_run_completed"
    run_id: str
    success: bool
    step_summaries: list[Any]


class UsageEvent(_Envelope):
    type: Literal["usage"] = "usage"
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResultEvent(_Envelope):
    type: Literal["result"] = "result"
    output: Any
    success: bool
    execution_time: float
    reason: str | None = None
    iterations: int | None = None
    tool_calls_count: int | None = None
    usage: JsonObject | None = None


class ErrorEvent(_Envelope):
    type: Literal["error"] = "error"
    error: str
    error_type: str
    retryable: bool


class Cancelled(_Envelope):
    type: Literal["cancelled"] = "cancelled"
    reason: str


class Completed(_Envelope):
    type: Literal["completed"] = "completed"
    success: bool
    status: Literal["succeeded", "failed", "cancelled"]
    execution_time: float


class Gap(_Envelope):
    """Reader marker, never stored: events before ``first_cursor`` were trimmed."""

    type: Literal["gap"] = "gap"
    first_cursor: str | None


class Reset(_Envelope):
    """Reader marker, never stored: the stream is behind what this reader saw (events
    after ``last_seq`` were lost, e.g. Redis restarted without its last writes). Discard
    anything seen after ``last_seq``; what follows continues the stream from there."""

    type: Literal["reset"] = "reset"
    last_seq: int
    last_cursor: str | None
    reason: str


class UnknownEvent(_Envelope):
    """An event type this version does not know; every field is kept as it came."""

    type: str


_KNOWN: tuple[type[_Envelope], ...] = (
    Queued, Status, Started, Retry, IterationStart, Token, ThinkingToken, ToolCallDelta,
    ToolCallsReady, Thought, Action, ToolCall, ToolResult, ToolError, Observation,
    DawpRunStarted, DawpStepStarted, DawpStepCompleted, DawpRunCompleted, UsageEvent,
    ResultEvent, ErrorEvent, Cancelled, Completed, Gap, Reset,
)  # fmt: skip
_KNOWN_TYPES: frozenset[str] = frozenset(m.model_fields["type"].default for m in _KNOWN)


def _tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    return kind if kind in _KNOWN_TYPES else "__unknown__"


Event = Annotated[
    Union[  # noqa: UP007 - Tag annotations need the explicit Union form
        Annotated[Queued, Tag("queued")],
        Annotated[Status, Tag("status")],
        Annotated[Started, Tag("started")],
        Annotated[Retry, Tag("retry")],
        Annotated[IterationStart, Tag("iteration_start")],
        Annotated[Token, Tag("token")],
        Annotated[ThinkingToken, Tag("thinking_token")],
        Annotated[ToolCallDelta, Tag("tool_call_delta")],
        Annotated[ToolCallsReady, Tag("tool_calls_ready")],
        Annotated[Thought, Tag("thought")],
        Annotated[Action, Tag("action")],
        Annotated[ToolCall, Tag("tool_call")],
        Annotated[ToolResult, Tag("tool_result")],
        Annotated[ToolError, Tag("tool_error")],
        Annotated[Observation, Tag("observation")],
        Annotated[DawpRunStarted, Tag("dawp_run_started")],
        Annotated[DawpStepStarted, Tag("dawp_step_started")],
        Annotated[DawpStepCompleted, Tag("dawp_step_completed")],
        Annotated[DawpRunCompleted, Tag("dawp_run_completed")],
        Annotated[UsageEvent, Tag("usage")],
        Annotated[ResultEvent, Tag("result")],
        Annotated[ErrorEvent, Tag("error")],
        Annotated[Cancelled, Tag("cancelled")],
        Annotated[Completed, Tag("completed")],
        Annotated[Gap, Tag("gap")],
        Annotated[Reset, Tag("reset")],
        Annotated[UnknownEvent, Tag("__unknown__")],
    ],
    Discriminator(_tag),
]
"""The closed union of every event type, discriminated on ``type``."""

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: Mapping[str, Any]) -> Event:
    """Validate a protocol dict into its typed model (``pydantic.ValidationError`` if bad)."""
    return _ADAPTER.validate_python(data)


def dump_event(event: Event) -> JsonObject:
    """The protocol dict of a typed event: unset optional fields are left out."""
    return event.model_dump(mode="json", exclude_none=True)


# -- categories and streaming modes (PROTOCOL section 5) ---------------------------------

CATEGORIES: Mapping[str, str] = {
    "queued": "task", "status": "task", "started": "task", "retry": "task",
    "error": "task", "cancelled": "task", "completed": "task", "gap": "task", "reset": "task",
    "iteration_start": "agent", "thought": "agent", "observation": "agent",
    "token": "chunk", "thinking_token": "chunk", "tool_call_delta": "chunk",
    "tool_calls_ready": "tool", "action": "tool", "tool_call": "tool",
    "tool_result": "tool", "tool_error": "tool",
    "dawp_run_started": "group", "dawp_step_started": "group",
    "dawp_step_completed": "group", "dawp_run_completed": "group",
    "usage": "debug", "result": "output",
}  # fmt: skip
"""Category of every known type; unknown types have none and pass only ``all``."""

#: types that pass every mode and every ``types=`` list: a reader must always learn of
#: failure, of the end, and of lost history (``gap``: trimmed; ``reset``: rewound).
ALWAYS_PASS: frozenset[str] = frozenset({"error", "completed", "gap", "reset"})


#: the types a ``types=`` list may name (the markers ``gap`` and ``reset`` always pass)
_FILTER_TYPES: frozenset[str] = frozenset(CATEGORIES) - {"gap", "reset"}


def category_of(event_type: str) -> str | None:
    """The category of a type, ``None`` for a type this version does not know."""
    return CATEGORIES.get(event_type)


def is_terminal(event: Mapping[str, Any]) -> bool:
    """True for the one event that ends every stream."""
    return event.get("type") == "completed"


def effective_loop_scope(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event's ``loop_scope``; an absent one means ``{"kind": "main"}``."""
    scope = event.get("loop_scope")
    return dict(scope) if isinstance(scope, Mapping) else {"kind": "main"}


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
