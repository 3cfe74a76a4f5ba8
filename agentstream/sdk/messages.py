"""AWorld's typed messages, as ``AgentStreamClient.streaming_run`` yields them.

Code written against AWorld's ``Runners.streaming_run`` ports with its imports changed::

    from agentstream.sdk.messages import ChunkMessage, ToolMessage, TopicType

    async for msg in client.streaming_run("Search for weather in Beijing", agent="hybrid"):
        if isinstance(msg, ChunkMessage):
            print(msg.payload.content, end="", flush=True)  # answer tokens only
        elif isinstance(msg, ToolMessage):
            for action in msg.payload:
                print(f"[Tool Call]: {action.tool_name} (params: {action.params})")
        elif msg.topic == TopicType.TASK_RESPONSE:
            result = msg.payload
            print(result.answer if result.success else result.msg)

Every event of the stream becomes one message (``msg.type`` is the event's type,
``msg.event`` the typed event of :mod:`agentstream.events`, ``msg.id`` its cursor):

=============================  =================  =================  =========================
event type                     message            ``topic``          ``payload``
=============================  =================  =================  =========================
token, thinking_token,         ChunkMessage                          :class:`Chunk` (answer
tool_call_delta                                                      text only in ``content``)
tool_calls_ready               ToolMessage                           ``[ActionModel, ...]``
tool_call                      Message (tool)                        :class:`ActionModel`
action                         AgentMessage                          :class:`ActionModel`
tool_result, tool_error        AgentMessage       ``TOOL_RESULT``    :class:`Observation`
iteration_start, thought       AgentMessage                          the typed event
observation                    AgentMessage                          :class:`Observation`
queued, status, started        TaskMessage        ``START``          the typed event
retry                          TaskMessage        ``RERUN``          the typed event
error                          TaskMessage        ``ERROR``          the typed event
cancelled                      TaskMessage        ``CANCEL``         the typed event
completed                      TaskMessage        ``TASK_RESPONSE``  :class:`TaskResponse`
gap, reset                     TaskMessage                           the typed event
dawp_*                         GroupMessage                          the typed event
result (modes with output)     OutputMessage      ``OUTPUT``         the typed event
usage (``all``)                Message (debug)                       the typed event
unknown types (``all``)        Message                               ``UnknownEvent``
=============================  =================  =================  =========================

The task response comes last, in every mode, and says how the task ended: ``success``,
``answer`` (the ``result`` event's output) and ``msg`` (why it failed, else ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from agentstream.events import Event

__all__ = [
    "ActionModel",
    "ActionResult",
    "AgentMessage",
    "Chunk",
    "ChunkMessage",
    "Constants",
    "GroupMessage",
    "Message",
    "Observation",
    "OutputMessage",
    "TaskMessage",
    "TaskResponse",
    "ToolMessage",
    "TopicType",
]

P = TypeVar("P")


class Constants:
    """Message categories (AWorld's names; ``debug`` is what only ``all`` delivers)."""

    AGENT = "agent"
    TOOL = "tool"
    TASK = "task"
    OUTPUT = "output"
    GROUP = "group"
    CHUNK = "chunk"
    DEBUG = "debug"


class TopicType:
    """Message topics (AWorld's values)."""

    START = "__start"
    OUTPUT = "__output"
    ERROR = "__error"
    RERUN = "__rerun"
    CANCEL = "__cancel"
    TOOL_RESULT = "__tool_result"
    TASK_RESPONSE = "__task_response"


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of model output. ``content`` is answer text only: a reasoning token is in
    ``reasoning_content`` and a piece of tool-call arguments in ``arguments_delta``, so a
    typewriter that prints ``content`` prints the answer."""

    content: str = ""
    reasoning_content: str = ""
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments_delta: str = ""


@dataclass(frozen=True, slots=True)
class ActionModel:
    """One tool call the agent asks for."""

    tool_name: str
    params: dict[str, Any]
    tool_call_id: str | None = None
    agent_name: str | None = None


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What one tool call returned (``success``, ``content``) or why it failed (``error``)."""

    tool_name: str
    tool_call_id: str | None
    success: bool
    content: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """What the agent observes: tool results (``action_result``) or its own summary."""

    content: Any = None
    action_result: list[ActionResult] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def is_tool_result(self) -> bool:
        return bool(self.action_result)


@dataclass(frozen=True, slots=True)
class TaskResponse:
    """How the task ended: ``success``, ``answer`` and, when it failed, ``msg`` (why)."""

    id: str
    success: bool
    answer: Any = None
    msg: str | None = None
    #: ``succeeded``, ``failed`` or ``cancelled``
    status: str = ""
    #: seconds from the start of the task to its end
    time_cost: float | None = None
    usage: dict[str, Any] | None = None
    #: why the model stopped (``stop``, ``length``, ...), when the server says
    stop_reason: str | None = None


# --------------------------------------------------------------------------- messages


@dataclass(kw_only=True, slots=True)
class Message(Generic[P]):
    """One event of the task's stream as a message: ``payload``, ``category``, ``topic``.

    ``sender`` is the agent that wrote the event, ``id`` its cursor (resume with
    ``after=msg.id``), ``timestamp`` seconds since the epoch, ``session_id`` the one the
    task was submitted with; ``headers`` carries
    ``task_id``, ``seq``, ``attempt``, ``type`` and ``loop_scope``; ``event`` is the typed
    event it was made from.
    """

    payload: P
    category: str = ""
    topic: str | None = None
    sender: str | None = None
    session_id: str | None = None
    id: str | None = None
    timestamp: float | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    event: Event | None = field(default=None, repr=False)

    @property
    def type(self) -> str:
        """The protocol type of the event (``token``, ``tool_result``, ...)."""
        return str(self.headers.get("type", ""))

    @property
    def task_id(self) -> str | None:
        value = self.headers.get("task_id")
        return value if isinstance(value, str) else None

    @property
    def seq(self) -> int | None:
        value = self.headers.get("seq")
        return value if isinstance(value, int) else None

    def is_error(self) -> bool:
        """True for a task error (the ``error`` event)."""
        return self.topic == TopicType.ERROR


@dataclass(kw_only=True, slots=True)
class ChunkMessage(Message[Chunk]):
    """A piece of model output; ``source_type`` is the event type it came from."""

    category: str = Constants.CHUNK
    source_type: str | None = None


@dataclass(kw_only=True, slots=True)
class ToolMessage(Message[list[ActionModel]]):
    """The tool calls the agent asks for, one message per model turn."""

    category: str = Constants.TOOL


@dataclass(kw_only=True, slots=True)
class AgentMessage(Message[Any]):
    """An agent step: iteration, thought, action, tool results, observation."""

    category: str = Constants.AGENT


@dataclass(kw_only=True, slots=True)
class TaskMessage(Message[Any]):
    """The task's lifecycle; ``topic == TopicType.TASK_RESPONSE`` ends every stream."""

    category: str = Constants.TASK


@dataclass(kw_only=True, slots=True)
class GroupMessage(Message[Any]):
    """A workflow (dawp) run or step boundary."""

    category: str = Constants.GROUP


@dataclass(kw_only=True, slots=True)
class OutputMessage(Message[Any]):
    """The task's ``result`` (modes ``output``, ``chunk_output`` and ``all``)."""

    category: str = Constants.OUTPUT
