"""Protocol events to AWorld's typed messages (the table in :mod:`agentstream.sdk.messages`).

One :class:`MessageTranslator` per stream: it remembers the ``result`` and the last
``error`` so that ``completed`` becomes the task response with the answer and the reason
of a failure, and it keeps ``result`` out of modes that do not deliver outputs (``core``,
``chunk``), where the server was asked for it only to build that response. The waits
(``approval_required``, ``input_required``) become ``HumanMessage`` messages
in every mode, bound to the client that answers them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from agentstream.events import Event, parse_event
from agentstream.protocol import StreamingMode, category_of, is_failure_twin
from agentstream.sdk import messages as m

__all__ = ["MessageTranslator"]

JsonObject = Mapping[str, Any]
_HEADER_FIELDS = ("task_id", "seq", "attempt", "type", "loop_scope")
_TASK_TOPICS = {
    "queued": m.TopicType.START,
    "status": m.TopicType.START,
    "started": m.TopicType.START,
    "retry": m.TopicType.RERUN,
    "error": m.TopicType.ERROR,
    "cancelled": m.TopicType.CANCEL,
}


def _envelope(raw: JsonObject, event: Event) -> dict[str, Any]:
    """The fields every message takes from its event."""
    timestamp = raw.get("timestamp")
    try:
        epoch = datetime.fromisoformat(timestamp).timestamp() if isinstance(timestamp, str) else None
    except ValueError:
        epoch = None
    headers = {key: raw[key] for key in _HEADER_FIELDS if key in raw}
    event_id = raw.get("id")
    return {
        "sender": raw.get("agent_id"),
        "id": event_id if isinstance(event_id, str) else None,
        "timestamp": epoch,
        "headers": headers,
        "event": event,
    }


def _chunk(raw: JsonObject, event: Event) -> m.Message[Any]:
    kind, text = raw.get("type"), str(raw.get("content") or "")
    payload = m.Chunk(
        content=text if kind == "token" else "",
        reasoning_content=text if kind == "thinking_token" else "",
        tool_call_id=raw.get("tool_call_id"),
        tool_name=raw.get("tool_name"),
        arguments_delta=str(raw.get("arguments_delta") or ""),
    )
    return m.ChunkMessage(payload=payload, source_type=str(kind), **_envelope(raw, event))


def _action(raw: JsonObject) -> m.ActionModel:
    params = raw.get("parameters")
    return m.ActionModel(
        tool_name=str(raw.get("tool_name") or ""),
        params=dict(params) if isinstance(params, Mapping) else {},
        tool_call_id=raw.get("tool_call_id"),
        agent_name=raw.get("agent_id"),
    )


def _tools_ready(raw: JsonObject, event: Event) -> m.Message[Any]:
    calls = raw.get("tool_calls") or []
    actions = [_action({**call, "agent_id": raw.get("agent_id")}) for call in calls]
    return m.ToolMessage(payload=actions, **_envelope(raw, event))


def _tool_call(raw: JsonObject, event: Event) -> m.Message[Any]:
    return m.Message(payload=_action(raw), category=m.Constants.TOOL, **_envelope(raw, event))


def _agent_action(raw: JsonObject, event: Event) -> m.Message[Any]:
    return m.AgentMessage(payload=_action(raw), **_envelope(raw, event))


def _tool_result(raw: JsonObject, event: Event) -> m.Message[Any]:
    failed = raw.get("type") == "tool_error" or raw.get("success") is False
    result = m.ActionResult(
        tool_name=str(raw.get("tool_name") or ""),
        tool_call_id=raw.get("tool_call_id"),
        success=not failed,
        content=raw.get("result"),
        error=raw.get("error") if failed else None,
    )
    observation = m.Observation(content=result.error if failed else result.content, action_result=[result])
    return m.AgentMessage(payload=observation, topic=m.TopicType.TOOL_RESULT, **_envelope(raw, event))


def _agent_step(raw: JsonObject, event: Event) -> m.Message[Any]:
    return m.AgentMessage(payload=event, **_envelope(raw, event))


def _observation(raw: JsonObject, event: Event) -> m.Message[Any]:
    info = {key: raw[key] for key in ("iteration", "has_error") if key in raw}
    payload = m.Observation(content=raw.get("content"), info=info)
    return m.AgentMessage(payload=payload, **_envelope(raw, event))


def _input(raw: JsonObject, event: Event) -> m.Message[Any]:
    return m.TaskMessage(payload=event, topic=m.TopicType.HUMAN_RESPONSE, **_envelope(raw, event))


def _group(raw: JsonObject, event: Event) -> m.Message[Any]:
    return m.GroupMessage(payload=event, **_envelope(raw, event))


def _other(raw: JsonObject, event: Event) -> m.Message[Any]:
    category = category_of(str(raw.get("type"))) or str(raw.get("category") or "")
    return m.Message(payload=event, category=category, **_envelope(raw, event))


_BUILDERS: dict[str, Callable[[JsonObject, Event], m.Message[Any]]] = {
    "token": _chunk,
    "thinking_token": _chunk,
    "tool_call_delta": _chunk,
    "tool_calls_ready": _tools_ready,
    "tool_call": _tool_call,
    "action": _agent_action,
    "tool_result": _tool_result,
    "tool_error": _tool_result,
    "iteration_start": _agent_step,
    "thought": _agent_step,
    "observation": _observation,
    "input": _input,
    "dawp_run_started": _group,
    "dawp_step_started": _group,
    "dawp_step_completed": _group,
    "dawp_run_completed": _group,
}


class MessageTranslator:
    """Turns the events of one ``streaming_run`` into messages, in order."""

    def __init__(
        self,
        mode: StreamingMode,
        task_id: str,
        session_id: str | None = None,
        responder: m.Responder | None = None,
    ) -> None:
        categories = mode.categories
        self._responder = responder
        self._outputs = categories is None or "output" in categories
        self._task_id = task_id
        self._session_id = session_id
        self._result: JsonObject | None = None
        self._error: JsonObject | None = None

    def feed(self, raw: JsonObject) -> m.Message[Any] | None:
        """The message of one event, or ``None`` for a ``result`` the mode leaves out and
        for a failed call's ``tool_result`` twin (its ``tool_error`` is the message).
        ``pydantic.ValidationError`` for an event that breaks the protocol."""
        message = self._message(raw)
        if message is not None:
            message.session_id = self._session_id
        return message

    def _message(self, raw: JsonObject) -> m.Message[Any] | None:
        event = parse_event(raw)
        kind = str(raw.get("type"))
        if is_failure_twin(raw):
            return None  # the ``tool_error`` that follows is the call's one TOOL_RESULT
        if kind in ("approval_required", "input_required"):
            return self._wait(raw, event)
        builder = _BUILDERS.get(kind)
        if builder is not None:
            return builder(raw, event)
        if kind == "result":
            self._result = raw
            if not self._outputs:
                return None
            return m.OutputMessage(payload=event, topic=m.TopicType.OUTPUT, **_envelope(raw, event))
        if kind == "completed":
            return m.TaskMessage(
                payload=self._response(raw), topic=m.TopicType.TASK_RESPONSE, **_envelope(raw, event)
            )
        if kind in ("gap", "reset") or kind in _TASK_TOPICS:
            self._remember(kind, raw)
            return m.TaskMessage(payload=event, topic=_TASK_TOPICS.get(kind), **_envelope(raw, event))
        return _other(raw, event)

    def _wait(self, raw: JsonObject, event: Event) -> m.Message[Any]:
        return m.human_message(raw, self._responder, **_envelope(raw, event))

    def _remember(self, kind: str, raw: JsonObject) -> None:
        if kind in ("error", "cancelled"):
            self._error = raw
        elif kind == "retry":
            # A new attempt: what the earlier one reported no longer decides the outcome.
            self._result = self._error = None

    def _response(self, completed: JsonObject) -> m.TaskResponse:
        result = self._result or {}
        success = bool(completed.get("success"))
        usage = result.get("usage")
        stop_reason = result.get("stop_reason")
        return m.TaskResponse(
            id=str(completed.get("task_id") or self._task_id),
            success=success,
            answer=result.get("output"),
            msg=None if success else self._failure(completed),
            status=str(completed.get("status") or ""),
            time_cost=completed.get("execution_time"),
            usage=dict(usage) if isinstance(usage, Mapping) else None,
            stop_reason=stop_reason if isinstance(stop_reason, str) else None,
        )

    def _failure(self, completed: JsonObject) -> str:
        """Why the task failed, in the words of the event that said so."""
        if self._error is not None:
            for key in ("error", "reason"):
                if self._error.get(key):
                    return str(self._error[key])
        result = self._result or {}
        for key in ("error", "reason"):
            if result.get(key):
                return str(result[key])
        return f"the task ended {completed.get('status') or 'without success'}"
