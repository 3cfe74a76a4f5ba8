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
approval_required              HumanMessage       ``HUMAN_CONFIRM``  :class:`PendingApproval`
input_required                 HumanMessage       ``HUMAN_CONFIRM``  :class:`PendingQuestion`
input                          TaskMessage        ``HUMAN_RESPONSE`` the typed event
usage (``all``)                Message (debug)                       the typed event
unknown types (``all``)        Message                               ``UnknownEvent``
=============================  =================  =================  =========================

The task response comes last, in every mode, and says how the task ended: ``success``,
``answer`` (the ``result`` event's output) and ``msg`` (why it failed, else ``None``).

**Waiting for a person.** A tool call that needs approval, or a question the agent asks
(``ask_user``), reaches every mode as a :class:`HumanMessage` (category ``human``, topic
``TopicType.HUMAN_CONFIRM``), one per waiting call. The task then waits (status
``waiting``, no worker held) and the stream stays open, quiet but for the server's
pings, until someone answers; answer right on the message and keep iterating the same
stream, which goes on with the ``input``, a ``retry`` and the rest of the run::

    async for msg in client.streaming_run("Clean up /tmp/x", approve_tools=["delete_file"]):
        if isinstance(msg, HumanMessage):
            if isinstance(msg.payload, PendingApproval):
                await msg.approve()            # or await msg.deny("too risky")
            else:
                await msg.answer("blue")       # msg.payload.prompt is the question

Several calls of one model turn wait together, one message each; the task goes on once
all of them are answered (each answer is its own ``POST /v1/tasks/{id}/input``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from agentstream.events import Event

__all__ = [
    "ActionModel",
    "ActionResult",
    "AgentMessage",
    "Chunk",
    "ChunkMessage",
    "Constants",
    "GroupMessage",
    "HumanMessage",
    "Message",
    "Observation",
    "OutputMessage",
    "PendingApproval",
    "PendingQuestion",
    "Responder",
    "TaskMessage",
    "TaskResponse",
    "ToolMessage",
    "TopicType",
    "human_message",
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
    #: a call that waits for a person (approval or answer)
    HUMAN = "human"


class TopicType:
    """Message topics (AWorld's values)."""

    START = "__start"
    OUTPUT = "__output"
    ERROR = "__error"
    RERUN = "__rerun"
    CANCEL = "__cancel"
    TOOL_RESULT = "__tool_result"
    TASK_RESPONSE = "__task_response"
    #: the task waits for a person: approve, deny or answer (AWorld's name)
    HUMAN_CONFIRM = "__human_confirm"
    #: a person's answer was recorded (the ``input`` event)
    HUMAN_RESPONSE = "__human_response"


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


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A tool call that waits for a person's approval before it runs."""

    tool_call_id: str
    tool_name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PendingQuestion:
    """A question the agent asked the user (the ``ask_user`` tool); the answer is the
    call's result."""

    tool_call_id: str
    prompt: str


class Responder(Protocol):
    """What answers a waiting task: :class:`AgentStreamClient` has this shape."""

    async def get(self, task_id: str) -> dict[str, Any]: ...

    async def respond(
        self,
        task_id: str,
        *,
        approvals: Iterable[Mapping[str, Any]] | None = None,
        message: str | None = None,
        tool_call_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]: ...


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


@dataclass(kw_only=True, slots=True)
class HumanMessage(Message[PendingApproval | PendingQuestion]):
    """One tool call that waits for a person: a :class:`PendingApproval` or a
    :class:`PendingQuestion` as ``payload``. Answer it with :meth:`approve`, :meth:`deny`
    or :meth:`answer` (each one ``POST /v1/tasks/{id}/input``, idempotent across the
    client's retries) and keep iterating: the stream goes on once every waiting call of
    the turn is answered. Each returns the server's reply ``{task_id, status, pending,
    seq, cursor}``; ``AgentStreamError`` 409 if the call no longer waits (answered
    elsewhere, cancelled, or past its deadline)."""

    category: str = Constants.HUMAN
    topic: str | None = TopicType.HUMAN_CONFIRM
    responder: Responder | None = field(default=None, repr=False, compare=False)

    @property
    def tool_call_id(self) -> str:
        return self.payload.tool_call_id

    @property
    def is_approval(self) -> bool:
        return isinstance(self.payload, PendingApproval)

    async def approve(self, reason: str | None = None) -> dict[str, Any]:
        """Let the waiting tool call run."""
        return await self._decide(True, reason)

    async def deny(self, reason: str | None = None) -> dict[str, Any]:
        """Refuse the tool call: the model is told it was denied (with ``reason``)."""
        return await self._decide(False, reason)

    async def answer(self, message: str) -> dict[str, Any]:
        """Answer the agent's question: ``message`` becomes the ``ask_user`` call's result."""
        if not isinstance(self.payload, PendingQuestion):
            raise TypeError("this call waits for an approval: use approve() or deny(), not answer()")
        return await self._send(message=message, tool_call_id=self.tool_call_id)

    async def _decide(self, approved: bool, reason: str | None) -> dict[str, Any]:
        if not isinstance(self.payload, PendingApproval):
            raise TypeError("this call is a question: use answer(), not approve() or deny()")
        decision: dict[str, Any] = {"tool_call_id": self.tool_call_id, "approved": approved}
        if reason is not None:
            decision["reason"] = reason
        return await self._send(approvals=[decision])

    async def _send(self, **answer: Any) -> dict[str, Any]:
        # one idempotency key for the client's own retries of this answer
        return await self._responder().respond(self._task(), idempotency_key=uuid.uuid4().hex, **answer)

    def _responder(self) -> Responder:
        if self.responder is None:
            raise RuntimeError("this message was made without a client; answer with client.respond(...)")
        return self.responder

    def _task(self) -> str:
        task_id = self.task_id
        if task_id is None:
            raise RuntimeError("this message carries no task id; answer with client.respond(...)")
        return task_id


def human_message(raw: Mapping[str, Any], responder: Responder | None, **envelope: Any) -> HumanMessage:
    """The :class:`HumanMessage` of a wait event (``approval_required`` or
    ``input_required``, as a dict), answered through ``responder``. ``envelope`` fields
    (``id``, ``headers``, ``event``, ...) default to what the dict says."""
    call_id = str(raw.get("tool_call_id") or "")
    payload: PendingApproval | PendingQuestion
    if raw.get("type") == "approval_required":
        params = raw.get("parameters")
        payload = PendingApproval(
            tool_call_id=call_id,
            tool_name=str(raw.get("tool_name") or ""),
            parameters=dict(params) if isinstance(params, dict) else {},
        )
    else:
        payload = PendingQuestion(tool_call_id=call_id, prompt=str(raw.get("prompt") or ""))
    event_id = raw.get("id")
    envelope.setdefault("id", event_id if isinstance(event_id, str) else None)
    envelope.setdefault(
        "headers",
        {key: raw[key] for key in ("task_id", "seq", "attempt", "type", "loop_scope") if key in raw},
    )
    return HumanMessage(payload=payload, responder=responder, **envelope)
