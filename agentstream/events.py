"""The typed view of the protocol's events (PROTOCOL section 3): pydantic models, one per
type, in the closed union :data:`Event` discriminated on ``type``.

On the wire, in the core and in readers an event is a plain ``dict`` (the JSON object of
the protocol), so hot paths never pay for model validation. These models are for the
readers that want types: the SDK hands them out (``AgentStreamClient.events(...,
typed=True)`` and the payloads of ``streaming_run``'s messages), and :func:`parse_event`
turns any protocol dict into one. Unknown types still round-trip through
:class:`UnknownEvent` untouched (forward compatibility)::

    from agentstream.events import Token, parse_event

    event = parse_event({"type": "token", "content": "Hi", "seq": 3})
    assert isinstance(event, Token) and event.content == "Hi"

A leaf module: it depends on pydantic alone, so the light SDK can import it without
loading anything of the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, TypeAdapter

from agentstream._envelope import Envelope, JsonObject, LoopScope

__all__ = [
    "Action",
    "ApprovalRequired",
    "Cancelled",
    "Completed",
    "Custom",
    "DawpRunCompleted",
    "DawpRunStarted",
    "DawpStepCompleted",
    "DawpStepStarted",
    "ErrorEvent",
    "Event",
    "Gap",
    "Input",
    "InputApproval",
    "InputDelivered",
    "InputRequired",
    "IterationStart",
    "LoopScope",
    "Observation",
    "Queued",
    "Refusal",
    "Reset",
    "ResultEvent",
    "Retry",
    "Started",
    "Status",
    "ThinkingToken",
    "Thought",
    "Token",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallItem",
    "ToolCallsReady",
    "ToolError",
    "ToolResult",
    "UnknownEvent",
    "UsageEvent",
    "dump_event",
    "parse_event",
]

# The envelope lives in its own module (this one holds every type); re-exported here.
_Envelope = Envelope


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


class Refusal(_Envelope):
    """A piece of the model's refusal (``delta.refusal``); the result says ``refusal``."""

    type: Literal["refusal"] = "refusal"
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
    """What a tool returned; a failed call (v1.1) has ``success`` false and ``error``."""

    type: Literal["tool_result"] = "tool_result"
    tool_name: str
    tool_call_id: str
    result: Any = None
    success: bool = True
    error: str | None = None


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
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None


class ResultEvent(_Envelope):
    type: Literal["result"] = "result"
    output: Any
    success: bool
    execution_time: float
    reason: str | None = None
    iterations: int | None = None
    tool_calls_count: int | None = None
    usage: JsonObject | None = None
    #: why the model stopped (v1.1): ``stop``, ``length``, ``content_filter``, ``refusal``, ...
    stop_reason: str | None = None
    #: the model's refusal text when ``stop_reason`` is ``refusal``
    refusal: str | None = None


class ErrorEvent(_Envelope):
    type: Literal["error"] = "error"
    error: str
    error_type: str
    retryable: bool


class Cancelled(_Envelope):
    type: Literal["cancelled"] = "cancelled"
    reason: str


class ApprovalRequired(_Envelope):
    """A tool call waits for a person's approval (the task's status is ``waiting``)."""

    type: Literal["approval_required"] = "approval_required"
    tool_call_id: str
    tool_name: str
    parameters: JsonObject


class InputRequired(_Envelope):
    """The agent asked the user (``ask_user``), or a tool did (``ctx.ask``: ``tool_name``
    is the tool's); the task waits for the answer."""

    type: Literal["input_required"] = "input_required"
    tool_call_id: str
    prompt: str
    tool_name: str | None = None


class InputApproval(BaseModel):
    """One decision of an ``input`` event."""

    model_config = ConfigDict(extra="allow")
    tool_call_id: str
    approved: bool
    reason: str | None = None


class Input(_Envelope):
    """A person's answer, recorded by ``POST /v1/tasks/{id}/input``: decisions on
    approvals, or the ``message`` answering the question ``tool_call_id``."""

    type: Literal["input"] = "input"
    approvals: list[InputApproval] | None = None
    message: str | None = None
    tool_call_id: str | None = None


class InputDelivered(_Envelope):
    """Messages sent while the task ran (the ``input`` events ``input_seqs``) were handed
    to the model as user messages, before its next turn; ``answer`` is the model's answer
    they follow when they came as it finished (it then answers them too)."""

    type: Literal["input_delivered"] = "input_delivered"
    input_seqs: list[int]
    answer: str | None = None


class Completed(_Envelope):
    type: Literal["completed"] = "completed"
    success: bool
    status: Literal["succeeded", "failed", "cancelled"]
    execution_time: float


class Custom(_Envelope):
    """An event a tool emitted itself (``ctx.emit(name, data)``), category ``custom``."""

    type: Literal["custom"] = "custom"
    name: str
    data: Any = None
    tool_name: str | None = None
    tool_call_id: str | None = None


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
    Queued, Status, Started, Retry, IterationStart, Token, ThinkingToken, Refusal, ToolCallDelta,
    ToolCallsReady, Thought, Action, ToolCall, ToolResult, ToolError, Observation,
    DawpRunStarted, DawpStepStarted, DawpStepCompleted, DawpRunCompleted, UsageEvent,
    ResultEvent, ErrorEvent, Cancelled, Completed, Custom, Gap, Reset, ApprovalRequired,
    InputRequired, Input, InputDelivered,
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
        Annotated[Refusal, Tag("refusal")],
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
        Annotated[ApprovalRequired, Tag("approval_required")],
        Annotated[InputRequired, Tag("input_required")],
        Annotated[Input, Tag("input")],
        Annotated[InputDelivered, Tag("input_delivered")],
        Annotated[Completed, Tag("completed")],
        Annotated[Custom, Tag("custom")],
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
