"""Request and response bodies of the HTTP API (they make the OpenAPI schema)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentstream.worker.payload import MAX_INPUT_CHARS, TaskRequest

__all__ = [
    "SSE_CONTENT",
    "SSE_EVENT",
    "AckRequest",
    "AckResponse",
    "CancelAccepted",
    "DeadLetterView",
    "DeadLettersResponse",
    "ErrorDetail",
    "ErrorResponse",
    "EventsPage",
    "GroupView",
    "GroupsResponse",
    "HealthResponse",
    "ReadyResponse",
    "RequeueResponse",
    "SubmitTask",
    "TaskAccepted",
    "TaskView",
    "error_responses",
]

TASK_ID_REGEX = r"^[A-Za-z0-9_-]{1,64}$"
CURSOR_REGEX = r"^\d{1,20}(-\d{1,20})?$"


#: one server-sent event, as OpenAPI 3.2 describes a sequential media type (``itemSchema``):
#: ``data`` holds the event's JSON (ours, a marker, an AG-UI or a Responses event)
SSE_EVENT: dict[str, object] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "the cursor (AG-UI: `<cursor>[:<k>]`)"},
        "event": {"type": "string", "description": "the event type"},
        "data": {"type": "string", "description": "the event as JSON"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}

#: the ``text/event-stream`` content of every SSE route's OpenAPI description
SSE_CONTENT: dict[str, object] = {"itemSchema": SSE_EVENT, "schema": {"type": "array", "items": SSE_EVENT}}


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str


class ErrorResponse(BaseModel):
    """Every error: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class SubmitTask(TaskRequest):
    """A task to run. ``input`` above ``MAX_INPUT_CHARS`` characters is refused with 413
    (not 422), so its length is checked by the route rather than by the schema."""

    input: str = Field(
        min_length=1, description=f"the task; at most {MAX_INPUT_CHARS} characters (413 beyond)"
    )
    task_id: str | None = Field(
        default=None,
        pattern=TASK_ID_REGEX,
        description="your own id makes submission idempotent; the server makes one otherwise",
    )

    @field_validator("metadata")
    @classmethod
    def _finite(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Python's JSON parser reads NaN, Infinity and 1e999 (as inf); JSON has no such
        # numbers, and the stored task would silently hold null instead: refuse them (422).
        if not _all_finite(value):
            raise ValueError("metadata holds NaN or an infinite number (such as 1e999); JSON has neither")
        return value

    def to_request(self) -> TaskRequest:
        """The worker's payload (``task_id`` is not part of it)."""
        return TaskRequest.model_validate(self.model_dump(exclude={"task_id"}))


def _all_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


class TaskAccepted(BaseModel):
    task_id: str
    status: str
    events_url: str


class TaskFields(BaseModel):
    """What every view of a task shows from its meta hash."""

    task_id: str
    status: str = Field(description="queued, running, waiting (for input), succeeded, failed or cancelled")
    agent: str
    attempt: int
    done: bool
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


class TaskView(TaskFields):
    """A task as its owner sees it."""

    cancel_requested: bool = False
    result: dict[str, Any] | None = Field(default=None, description="the last `result` event")
    error: dict[str, Any] | None = Field(default=None, description="the last `error` event")
    events_url: str


class CancelAccepted(BaseModel):
    task_id: str
    status: str
    cancel_requested: bool


class EventsPage(BaseModel):
    """One page of events (``Accept: application/json``); pass ``next_after`` as ``after``."""

    events: list[dict[str, Any]]
    next_after: str | None = Field(description="the cursor to continue from")
    done: bool = Field(description="`completed` was reached: nothing will follow")


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(min_length=1, max_length=10_000, description="cursors to acknowledge")


class AckResponse(BaseModel):
    acked: int


class GroupView(BaseModel):
    name: str
    consumers: int
    pending: int
    lag: int | None = Field(description="events not yet delivered to the group")
    last_delivered: str
    consumer_pending: dict[str, int]


class GroupsResponse(BaseModel):
    groups: list[GroupView]


class DeadLetterView(BaseModel):
    """An entry a group gave up on, with why."""

    id: str = Field(description="the dead letter's own id (pass it to requeue)")
    cursor: str = Field(description="the event's cursor in the task's stream")
    group: str
    consumer: str = Field(description="the consumer holding it when it was given up")
    reason: str
    deliveries: int
    event: dict[str, Any] = Field(description="the event as readers get it")


class DeadLettersResponse(BaseModel):
    dead_letters: list[DeadLetterView] = Field(description="oldest first")


class RequeueResponse(BaseModel):
    cursor: str = Field(description="the requeued event's cursor: the group delivers it again")
    group: str


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str = Field(description="`ready` or `unavailable`")
    checks: dict[str, str]


_DESCRIPTIONS = {
    400: "Bad cursor, mode, scope, group name or query value",
    401: "Missing or unknown bearer key",
    404: "No such task for this tenant",
    403: "The viewer's session cookie cannot do this: send the API key",
    409: "The task's state forbids the operation (e.g. its group limit is reached)",
    413: "Input or request body too large",
    422: "Invalid request body",
    429: "Submit rate limit or the tenant's live-stream limit reached (see Retry-After)",
    503: "Redis or the queue unreachable, or too many live streams",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, all with :class:`ErrorResponse`.

    A ``4XX`` entry covers the rest; it also keeps FastAPI from documenting its own 422
    body, which this API never sends (a bad query value is a 400 ``ErrorResponse``).
    """
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses
    }
    responses["4XX"] = {"model": ErrorResponse, "description": "Any other client error"}
    return responses
