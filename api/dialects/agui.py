"""AG-UI: a task's stream as AG-UI events (``?format=ag-ui``, ``POST /v1/ag-ui``).

The events are the ``ag-ui-protocol`` package's own models, encoded by its ``EventEncoder``
(a ``data:`` line of camelCase JSON). Everything here is pure and synchronous: the
reader feeds the stream in (:mod:`~agentstream.api.dialects.agui_frames`).

**Mapping.** The stream's first event opens the run (``RUN_STARTED``, thread id and run id
from the task). ``token``\\ s form a text message (``TEXT_MESSAGE_START/CONTENT/END``) and
``thinking_token``\\ s a reasoning span (``REASONING_START``, ``REASONING_MESSAGE_START/
CONTENT/END``, ``REASONING_END``); a message or span is closed by the first event of another
type, since every other event ends the run of chunks. Their ids derive from the run id and
the seq of their first chunk, so every reader, resumed or not, sees the same ids.
``tool_call_delta`` opens a tool call (``TOOL_CALL_START``, parented to the turn's text
message) as soon as its index has both an id and a name, and streams ``TOOL_CALL_ARGS``;
arguments that came before the id are sent with the start. A call whose id never streamed
(servers that send none get one generated when the turn ends) starts at
``tool_calls_ready``, which ends every call of the turn (``TOOL_CALL_END``). A ``tool_call``
or ``action`` of a call never streamed announces it whole. ``tool_result``/``tool_error``
become ``TOOL_CALL_RESULT`` (content: the result, JSON unless a string, or the error text,
flagged in ``metadata``). ``iteration_start`` finishes the previous step and starts
``iteration <n>``. ``retry`` closes whatever is open (a renderer resets its partial text).
``completed`` closes everything, then ``RUN_FINISHED`` (``result``: the last ``result``'s
output) when it succeeded, ``RUN_FINISHED`` with the ``cancelled`` outcome when cancelled
(AG-UI 1.0: a cancelled run did not fail), ``RUN_ERROR`` (the last ``error``'s message and
type) when it failed. Every other event, unknown types included, passes as
``CUSTOM`` named ``agentstream.<type>`` with the event as its value; so does ``gap``.

**Waiting for a person** is AG-UI's interrupt (spec 1.0, "Interrupts and Resume"): the
translator keeps the waits the stream announced (``approval_required``,
``input_required``) until an ``input`` answers them, and once the reader sees the task
parked (status ``waiting``) :meth:`AgUiTranslator.interrupt` closes what is open and ends
the run with ``RUN_FINISHED`` whose outcome is ``interrupt``: one :class:`Interrupt` per
waiting call (:func:`interrupt_for`). The run that answers them (``RunAgentInput.resume``)
continues the same task (:mod:`agentstream.api.routes.agui`).

How frames carry ids and resume: :mod:`agentstream.api.dialects.agui_frames`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    CustomEvent,
    Interrupt,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunStartedEvent,
    StepFinishedEvent,
    StepStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)

from agentstream.api.dialects.tool_calls import TurnCalls, json_text, ready_calls
from agentstream.protocol import is_failure_twin

__all__ = [
    "APPROVAL_SCHEMA",
    "QUESTION_SCHEMA",
    "AgUiTranslator",
    "interrupt_for",
    "interrupt_id",
    "split_interrupt_id",
]

#: the ``resume`` payload an approval interrupt expects (a bare boolean is taken too)
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "reason": {"type": "string", "description": "told to the model when denied"},
    },
    "required": ["approved"],
}
#: the ``resume`` payload a question expects (a bare string is taken too)
QUESTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string", "description": "the answer"}},
    "required": ["message"],
}
#: between the task id and the tool call id in an interrupt id (no task id holds it)
_ID_SEP = ":"


def interrupt_id(run_id: str, tool_call_id: str) -> str:
    """The id of the interrupt for ``tool_call_id`` of the task ``run_id``: the task id,
    so that a resume names its task, then the call."""
    return f"{run_id}{_ID_SEP}{tool_call_id}"


def split_interrupt_id(value: str) -> tuple[str, str] | None:
    """``(task id, tool call id)`` of an interrupt id, ``None`` if it is not one of ours."""
    task_id, sep, call_id = value.partition(_ID_SEP)
    return (task_id, call_id) if sep and task_id and call_id else None


def interrupt_for(run_id: str, wait: Mapping[str, Any], expires_at: str | None = None) -> Interrupt:
    """The AG-UI interrupt of one wait event: ``tool_call`` (an approval: ``toolCallId``,
    the call in ``metadata``) or ``input_required`` (a question: its prompt as
    ``message``), each with the ``responseSchema`` its answer follows."""
    call_id = str(wait.get("tool_call_id") or "")
    if wait.get("type") == "approval_required":
        name, parameters = str(wait.get("tool_name") or ""), wait.get("parameters") or {}
        return Interrupt(
            id=interrupt_id(run_id, call_id),
            reason="tool_call",
            message=f"Approve {name}({json_text(parameters)})?",
            tool_call_id=call_id,
            response_schema=APPROVAL_SCHEMA,
            expires_at=expires_at,
            metadata={"agentstream": {"tool_name": name, "parameters": parameters}},
        )
    return Interrupt(
        id=interrupt_id(run_id, call_id),
        reason="input_required",
        message=str(wait.get("prompt") or ""),
        tool_call_id=call_id,
        response_schema=QUESTION_SCHEMA,
        expires_at=expires_at,
    )


def _millis(timestamp: Any) -> int | None:
    """An event's ISO 8601 timestamp as epoch milliseconds, AG-UI's habit."""
    if not isinstance(timestamp, str):
        return None
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except ValueError:
        return None


class AgUiTranslator:
    """Turns one task's events, in stream order, into AG-UI events (see the module doc).

    Pure and synchronous: ``feed`` each event (as readers yield them) and send what it
    returns. It tracks the open text message, reasoning span, tool calls and step.
    """

    def __init__(self, thread_id: str, run_id: str, reported_run_id: str | None = None) -> None:
        self.thread_id = thread_id
        #: the task id: ids of messages and interrupts derive from it
        self.run_id = run_id
        #: the run id of ``RUN_STARTED``/``RUN_FINISHED``: the client's own run when it
        #: continues the task with a resume, else the task id
        self.reported_run_id = reported_run_id or run_id
        #: waits announced and not answered yet, by tool call id (the wait events)
        self.waits: dict[str, Mapping[str, Any]] = {}
        self.started = False
        self.finished = False
        self._message: str | None = None
        #: the text message of the current model turn, the parent of its tool calls
        self._turn_message: str | None = None
        self._reasoning: str | None = None
        self._step: str | None = None
        self._calls = TurnCalls()
        #: started and not yet ended, in start order
        self._open_calls: dict[str, None] = {}
        self._announced: set[str] = set()
        self._output: Any = None
        self._usage: Mapping[str, Any] | None = None
        self._error: Mapping[str, Any] | None = None
        self._cancel_reason: str | None = None

    def feed(self, event: Mapping[str, Any]) -> list[BaseEvent]:
        """The AG-UI events for ``event`` (none after the run ended)."""
        if self.finished:
            return []
        kind = event.get("type")
        ts = _millis(event.get("timestamp"))
        out: list[BaseEvent] = []
        if not self.started:
            self.started = True
            out.append(
                RunStartedEvent(
                    thread_id=self.thread_id,
                    run_id=self.reported_run_id,
                    protocol_version=PROTOCOL_VERSION,
                    timestamp=ts,
                )
            )
        if kind != "token":
            self._close_message(out, ts)
        if kind != "thinking_token":
            self._close_reasoning(out, ts)
        match kind:
            case "queued":
                pass
            case "token":
                self._token(event, ts, out)
            case "thinking_token":
                self._thinking(event, ts, out)
            case "tool_call_delta":
                self._tool_call_delta(event, ts, out)
            case "tool_calls_ready":
                self._tool_calls_ready(event, ts, out)
            case "tool_call" | "action":
                self._announce(event, ts, out)
            case "tool_result" | "tool_error":
                self._tool_result(event, ts, out)
            case "iteration_start":
                self._close_step(out, ts)
                self._turn_message = None
                self._step = f"iteration {event.get('iteration')}"
                out.append(StepStartedEvent(step_name=self._step, timestamp=ts))
            case "completed":
                self._completed(event, ts, out)
            case _:
                self._remember(event)
                self._track_wait(event)
                if kind in ("retry", "thought", "result"):
                    self._turn_message = None
                if kind == "retry":
                    self._close_all(out, ts)
                out.append(CustomEvent(name=f"agentstream.{kind}", value=dict(event), timestamp=ts))
        return out

    # ------------------------------------------------------------------ chunks

    def _token(self, event: Mapping[str, Any], ts: int | None, out: list[BaseEvent]) -> None:
        content = event.get("content")
        if not isinstance(content, str) or not content:
            return
        if self._message is None:
            self._message = self._turn_message = f"{self.run_id}-msg-{event.get('seq')}"
            out.append(TextMessageStartEvent(message_id=self._message, role="assistant", timestamp=ts))
        out.append(TextMessageContentEvent(message_id=self._message, delta=content, timestamp=ts))

    def _thinking(self, event: Mapping[str, Any], ts: int | None, out: list[BaseEvent]) -> None:
        content = event.get("content")
        if not isinstance(content, str) or not content:
            return
        if self._reasoning is None:
            self._reasoning = f"{self.run_id}-reasoning-{event.get('seq')}"
            out.append(ReasoningStartEvent(message_id=self._reasoning, timestamp=ts))
            out.append(ReasoningMessageStartEvent(message_id=f"{self._reasoning}-m", timestamp=ts))
        out.append(
            ReasoningMessageContentEvent(message_id=f"{self._reasoning}-m", delta=content, timestamp=ts)
        )

    def _close_message(self, out: list[BaseEvent], ts: int | None) -> None:
        if self._message is not None:
            out.append(TextMessageEndEvent(message_id=self._message, timestamp=ts))
            self._message = None

    def _close_reasoning(self, out: list[BaseEvent], ts: int | None) -> None:
        if self._reasoning is not None:
            out.append(ReasoningMessageEndEvent(message_id=f"{self._reasoning}-m", timestamp=ts))
            out.append(ReasoningEndEvent(message_id=self._reasoning, timestamp=ts))
            self._reasoning = None

    # ------------------------------------------------------------------ tool calls

    def _start_call(
        self, tool_call_id: str, name: str, args: str, ts: int | None, out: list[BaseEvent]
    ) -> None:
        out.append(
            ToolCallStartEvent(
                tool_call_id=tool_call_id,
                tool_call_name=name,
                parent_message_id=self._turn_message,
                timestamp=ts,
            )
        )
        self._open_calls[tool_call_id] = None
        self._announced.add(tool_call_id)
        if args:
            out.append(ToolCallArgsEvent(tool_call_id=tool_call_id, delta=args, timestamp=ts))

    def _end_call(self, tool_call_id: str, ts: int | None, out: list[BaseEvent]) -> None:
        if tool_call_id in self._open_calls:
            del self._open_calls[tool_call_id]
            out.append(ToolCallEndEvent(tool_call_id=tool_call_id, timestamp=ts))

    def _tool_call_delta(self, event: Mapping[str, Any], ts: int | None, out: list[BaseEvent]) -> None:
        call, delta = self._calls.absorb(event)
        if call.started and call.call_id is not None:
            if delta:
                out.append(ToolCallArgsEvent(tool_call_id=call.call_id, delta=delta, timestamp=ts))
        elif call.call_id is not None and call.name is not None:
            call.started = True
            self._start_call(call.call_id, call.name, call.arguments, ts, out)

    def _tool_calls_ready(self, event: Mapping[str, Any], ts: int | None, out: list[BaseEvent]) -> None:
        for ready in ready_calls(event):
            call = self._calls.pop(ready.index)
            if call is not None and call.started and call.call_id is not None:
                self._end_call(call.call_id, ts, out)
                continue
            if not ready.call_id or ready.call_id in self._announced:
                continue
            args = call.arguments if call is not None and call.arguments else None
            if args is None and ready.parameters is not None:
                args = json_text(ready.parameters)
            self._start_call(ready.call_id, ready.name, args or "", ts, out)
            self._end_call(ready.call_id, ts, out)
        for call in self._calls.clear():  # streamed but not reported ready: end them too
            if call.started and call.call_id is not None:
                self._end_call(call.call_id, ts, out)

    def _announce(self, event: Mapping[str, Any], ts: int | None, out: list[BaseEvent]) -> None:
        """``tool_call``/``action``: only news for a call that was never streamed."""
        tool_call_id = event.get("tool_call_id")
        if not isinstance(tool_call_id, str) or not tool_call_id or tool_call_id in self._announced:
            return
        parameters = event.get("parameters")
        args = json_text(parameters) if parameters is not None else ""
        self._start_call(tool_call_id, str(event.get("tool_name") or ""), args, ts, out)
        self._end_call(tool_call_id, ts, out)

    def _tool_result(self, event: Mapping[str, Any], ts: int | None, out: list[BaseEvent]) -> None:
        if is_failure_twin(event):
            return  # the ``tool_error`` that follows is the call's one result
        tool_call_id = str(event.get("tool_call_id") or "")
        if tool_call_id not in self._announced:
            self._start_call(tool_call_id, str(event.get("tool_name") or ""), "", ts, out)
        self._end_call(tool_call_id, ts, out)
        failed = event.get("type") == "tool_error"
        out.append(
            ToolCallResultEvent(
                message_id=f"{self.run_id}-tool-{event.get('seq')}",
                tool_call_id=tool_call_id,
                content=json_text(event.get("error") if failed else event.get("result")),
                role="tool",
                metadata={"agentstream": {"error": True}} if failed else None,
                timestamp=ts,
            )
        )

    # ------------------------------------------------------------------ run

    def _close_step(self, out: list[BaseEvent], ts: int | None) -> None:
        if self._step is not None:
            out.append(StepFinishedEvent(step_name=self._step, timestamp=ts))
            self._step = None

    def _close_all(self, out: list[BaseEvent], ts: int | None) -> None:
        self._close_message(out, ts)
        self._close_reasoning(out, ts)
        for tool_call_id in list(self._open_calls):
            self._end_call(tool_call_id, ts, out)
        self._calls.clear()
        self._close_step(out, ts)

    def _remember(self, event: Mapping[str, Any]) -> None:
        match event.get("type"):
            case "result":
                self._output = event.get("output")
                usage = event.get("usage")
                self._usage = usage if isinstance(usage, Mapping) else self._usage
            case "error":
                self._error = event
            case "cancelled":
                self._cancel_reason = str(event.get("reason") or "cancelled")

    def _track_wait(self, event: Mapping[str, Any]) -> None:
        match event.get("type"):
            case "approval_required" | "input_required":
                self.waits[str(event.get("tool_call_id") or "")] = event
            case "input":
                for approval in event.get("approvals") or []:
                    if isinstance(approval, Mapping):
                        self.waits.pop(str(approval.get("tool_call_id") or ""), None)
                if event.get("message") is not None:
                    self.waits.pop(str(event.get("tool_call_id") or ""), None)

    def interrupt(self, pending: list[str], expires_at: str | None = None) -> list[BaseEvent]:
        """End the run because the task waits for ``pending`` (tool call ids, the task's
        own list): close what is open, then ``RUN_FINISHED`` with the interrupt outcome.
        Nothing when none of them was announced in the stream."""
        waits = [self.waits[call_id] for call_id in pending if call_id in self.waits]
        if self.finished or not waits:
            return []
        out: list[BaseEvent] = []
        self._close_all(out, None)
        self.finished = True
        interrupts = [interrupt_for(self.run_id, wait, expires_at) for wait in waits]
        out.append(
            RunFinishedEvent(
                thread_id=self.thread_id,
                run_id=self.reported_run_id,
                outcome=RunFinishedInterruptOutcome(interrupts=interrupts),
                usage=self._token_usage(),
            )
        )
        return out

    def _token_usage(self) -> list[TokenUsage] | None:
        usage = self._usage
        if not usage or not all(
            isinstance(usage.get(k), int) for k in ("prompt_tokens", "completion_tokens")
        ):
            return None
        return [
            TokenUsage(
                input_tokens=usage["prompt_tokens"],
                output_tokens=usage["completion_tokens"],
                total_tokens=usage["prompt_tokens"] + usage["completion_tokens"],
            )
        ]

    def _completed(self, event: Mapping[str, Any], ts: int | None, out: list[BaseEvent]) -> None:
        self._close_all(out, ts)
        self.finished = True
        status = event.get("status") or ("succeeded" if event.get("success") else "failed")
        if status == "succeeded":
            out.append(
                RunFinishedEvent(
                    thread_id=self.thread_id,
                    run_id=self.reported_run_id,
                    result=self._output,
                    usage=self._token_usage(),
                    timestamp=ts,
                )
            )
        elif status == "cancelled":
            out.append(
                RunFinishedEvent(
                    thread_id=self.thread_id,
                    run_id=self.reported_run_id,
                    outcome=RunFinishedCancelledOutcome(),
                    metadata={"agentstream": {"status": "cancelled", "reason": self._cancel_reason}},
                    usage=self._token_usage(),
                    timestamp=ts,
                )
            )
        else:
            error = self._error or {}
            message = error.get("error") or (self._output if isinstance(self._output, str) else None)
            out.append(
                RunErrorEvent(
                    message=str(message or f"the task {status}"),
                    code=str(error.get("error_type") or status),
                    usage=self._token_usage(),
                    timestamp=ts,
                )
            )
