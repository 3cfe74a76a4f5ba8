"""Resume a task from the events its earlier attempts recorded (pure, no I/O).

A retried attempt continues the conversation instead of starting over (PROTOCOL section 3,
rule 4). :func:`rebuild_resume_state` reads every stored event of the task so far and
rebuilds what the agent needs to continue:

- a model turn counts as completed once its ``tool_calls_ready`` was recorded; a turn cut
  off mid-tokens is dropped from the conversation (its partial output stays in the stream
  as history, and readers reset partial text on ``retry``). A turn without tool calls is
  always an agent's last one, so it is simply asked again;
- every recorded ``tool_result``/``tool_error`` becomes a tool message and is never run
  again; calls of the last recorded ``tool_calls_ready`` without a recorded result are
  ``pending_tool_calls``, which the resumed agent runs before its next model turn;
- a workflow (dawp) run that finished keeps its output, so it is not run twice;
- ``approval_required``/``input_required`` and ``input`` events fill ``inputs``: a call
  still pending because it waited is run, denied or answered as its input says;
- ``input_delivered`` puts the messages sent while the task ran where the model was given
  them (after the last turn's tool messages, or after its ``answer``, a turn that counts
  as completed): a message is in the conversation once, and never given again.

The same helpers (:func:`tool_message`, :func:`assistant_message`) build the messages of a
live run, so a resumed conversation is the one the model would have seen anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentstream.streams.events import effective_loop_scope
from agentstream.streams.tasks import TRIMMED_MESSAGE
from agentstream.worker.app.batch import dawp_call_key
from agentstream.worker.app.waits import InputBook
from agentstream.worker.llm import ReadyToolCall
from agentstream.worker.model.turn import assistant_message

__all__ = [
    "ResumeState",
    "assistant_message",
    "rebuild_resume_state",
    "tool_message",
    "zero_usage",
]

_CHUNK_TYPES = frozenset({"token", "thinking_token", "tool_call_delta", "usage"})
_MAIN_LOOP_TYPES = frozenset(
    {"iteration_start", "token", "thinking_token", "tool_call_delta", "tool_calls_ready"}
)
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def zero_usage() -> dict[str, int]:
    """Usage totals before any model call."""
    return dict.fromkeys(_USAGE_FIELDS, 0)


@dataclass(slots=True)
class ResumeState:
    """What a resumed attempt continues from.

    ``messages`` is the conversation *after* the initial prompt (system, memory, user
    message), which the agent rebuilds itself: assistant turns and tool messages. When
    ``pending_tool_calls`` is not empty, ``messages`` ends with the assistant message that
    asked for them, and the tool messages of that last batch are left to the agent (results
    recorded so far are in ``recorded_results``), so it can append the whole batch in call
    order once the pending calls have run. ``iteration`` is the last iteration whose model
    turn completed; the resumed agent's next ``iteration_start`` is ``iteration + 1``.
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    pending_tool_calls: list[ReadyToolCall] = field(default_factory=list)
    recorded_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    iteration: int = 0
    tool_calls_count: int = 0
    usage: dict[str, int] = field(default_factory=zero_usage)
    completed_turns: int = 0
    workflow_output: str | None = None
    #: the calls of the last recorded batch, pending or not, in call order
    open_batch: list[ReadyToolCall] = field(default_factory=list)
    #: outcomes of workflow-step tool calls, by :func:`dawp_call_key`: a workflow run
    #: again (it had not finished) reuses them instead of calling the tool again
    dawp_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the waits announced (``approval_required``, ``input_required``) and their answers
    inputs: InputBook = field(default_factory=InputBook)
    #: messages were given to the model after its last completed turn
    unanswered: bool = False


def tool_message(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI tool message for a ``tool_result``/``tool_error`` event's fields."""
    if fields.get("type") == "tool_error" or "error" in fields:
        body: dict[str, Any] = {"error": fields.get("error")}
    else:
        body = {"result": fields.get("result")}
    content = orjson.dumps(body, default=str).decode()
    return {"role": "tool", "tool_call_id": fields["tool_call_id"], "content": content}


def _ready_call(item: Mapping[str, Any]) -> ReadyToolCall:
    raw = item.get("parameters")
    parameters = dict(raw) if isinstance(raw, dict) else None
    return ReadyToolCall(
        index=int(item.get("index", 0)),
        tool_call_id=str(item["tool_call_id"]),
        tool_name=str(item.get("tool_name") or ""),
        parameters=parameters,
        error=None if parameters is not None else "the tool call's arguments were not valid JSON",
        arguments=orjson.dumps(parameters).decode() if parameters is not None else "",
    )


@dataclass(slots=True)
class _Rebuild:
    """The fold over the events; `state` is the answer once every event was seen."""

    state: ResumeState = field(default_factory=ResumeState)
    text: list[str] = field(default_factory=list)
    current_iteration: int = 0
    batch_results: dict[str, dict[str, Any]] = field(default_factory=dict)
    dawp_calls: dict[str, str] = field(default_factory=dict)

    def feed(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "usage":  # the three counts, and the details (reasoning, cached) if given
            for name, value in event.items():
                if name.endswith("_tokens") and isinstance(value, int):
                    self.state.usage[name] = self.state.usage.get(name, 0) + value
        scope = effective_loop_scope(event)
        if scope.get("kind") != "main":
            if scope.get("kind") == "dawp":
                self._dawp_tool(event, scope)
            return
        self.state.inputs.feed(event)
        match kind:
            case "token":
                self.text.append(str(event.get("content") or ""))
            case "iteration_start":
                self.current_iteration = int(event.get("iteration") or 0)
            case "tool_calls_ready":
                self._turn_completed(event)
            case "tool_result" | "tool_error":
                self._result(event)
            case "input_delivered":
                self._delivered(event)
        if kind not in _CHUNK_TYPES:
            # Any other event ends a turn (or a retry cuts it): its text belongs to no later turn.
            self.text = []

    def _turn_completed(self, event: Mapping[str, Any]) -> None:
        self._close_batch()
        calls = sorted((_ready_call(item) for item in event.get("tool_calls") or ()), key=_by_index)
        state = self.state
        state.messages.append(assistant_message("".join(self.text), calls))
        state.unanswered = False
        state.completed_turns += 1
        state.iteration = self.current_iteration or state.completed_turns
        state.open_batch = calls
        self.batch_results = {}

    def _delivered(self, event: Mapping[str, Any]) -> None:
        """Messages given to the model before its next turn: after the batch of the last
        turn, or after its text ``answer`` (a completed turn without tool calls)."""
        self._close_batch()
        state = self.state
        state.open_batch, self.batch_results = [], {}
        answer = event.get("answer")
        if isinstance(answer, str):
            state.messages.append({"role": "assistant", "content": answer})
            state.completed_turns += 1
            state.iteration = self.current_iteration or state.completed_turns
        for seq in event.get("input_seqs") or ():
            message = state.inputs.messages.get(int(seq), TRIMMED_MESSAGE)
            state.messages.append({"role": "user", "content": message})
        state.unanswered = True

    def _result(self, event: Mapping[str, Any]) -> None:
        call_id = event.get("tool_call_id")
        if not isinstance(call_id, str) or call_id in self.state.recorded_results:
            return
        fields = {k: v for k, v in event.items() if k not in _ENVELOPE}
        self.state.recorded_results[call_id] = fields
        self.state.tool_calls_count += 1
        if any(call.tool_call_id == call_id for call in self.state.open_batch):
            self.batch_results[call_id] = fields

    def _dawp_tool(self, event: Mapping[str, Any], scope: Mapping[str, Any]) -> None:
        call_id = event.get("tool_call_id")
        if event.get("type") == "tool_call" and isinstance(call_id, str):
            key = dawp_call_key(scope.get("step_id"), str(event.get("tool_name")), event.get("parameters"))
            self.dawp_calls[call_id] = key
        elif event.get("type") in ("tool_result", "tool_error") and call_id in self.dawp_calls:
            outcome = {"result": event.get("result"), "error": event.get("error")}
            self.state.dawp_results.setdefault(self.dawp_calls[call_id], outcome)

    def _close_batch(self) -> None:
        """Append the tool messages of a batch the agent went past (one per call)."""
        for call in self.state.open_batch:
            fields = self.batch_results.get(call.tool_call_id) or _lost(call)
            self.state.messages.append(tool_message(fields))

    def finish(self, workflow_output: str | None) -> ResumeState | None:
        state = self.state
        state.workflow_output = workflow_output
        state.pending_tool_calls = [c for c in state.open_batch if c.tool_call_id not in self.batch_results]
        if not state.pending_tool_calls:
            self._close_batch()
            state.open_batch = []
        # (a message given to the model before its first turn is worth keeping)
        kept = state.completed_turns or state.dawp_results or state.inputs.given
        if not kept and workflow_output is None:
            return None
        return state


_ENVELOPE = frozenset({"id", "seq", "attempt", "task_id", "timestamp", "agent_id", "loop_scope"})


def _by_index(call: ReadyToolCall) -> int:
    return call.index


def _lost(call: ReadyToolCall) -> dict[str, Any]:
    # Only reachable with a stream no agent of this project writes; it keeps the history
    # valid (every tool call needs a tool message) rather than failing the retry.
    return {"type": "tool_error", "tool_call_id": call.tool_call_id, "error": "the result was lost"}


def _workflow_output(events: Sequence[Mapping[str, Any]]) -> str | None:
    """The output of the last workflow run, if it is known to have finished.

    A run finished if its ``dawp_run_completed`` says so, or (without boundary events) if
    the main loop started after its last step. Its output is its last step's tokens.
    """
    run_id: str | None = None
    finished = False
    texts: dict[int, list[str]] = {}
    last_step: int | None = None
    for event in events:
        scope = effective_loop_scope(event)
        kind = event.get("type")
        if scope.get("kind") == "dawp":
            if scope.get("run_id") != run_id:
                run_id, finished, texts, last_step = scope.get("run_id"), False, {}, None
            if kind == "token":
                texts.setdefault(int(scope.get("step_index") or 0), []).append(str(event.get("content")))
            elif kind == "dawp_step_completed" and event.get("success"):
                last_step = int(event.get("step_index") or 0)
            elif kind == "dawp_run_completed":
                finished = bool(event.get("success"))
        elif kind in _MAIN_LOOP_TYPES and last_step is not None:
            finished = True
    if not finished or last_step is None:
        return None
    return "".join(texts.get(last_step, []))


def rebuild_resume_state(events: Iterable[Mapping[str, Any]]) -> ResumeState | None:
    """The state to resume from, given every stored event of the task so far.

    ``events`` are dicts as readers return them (all attempts, in stream order). Returns
    None when nothing is worth keeping (no completed model turn and no finished workflow),
    in which case the agent simply starts from the beginning.
    """
    ordered = list(events)
    fold = _Rebuild()
    for event in ordered:
        fold.feed(event)
    return fold.finish(_workflow_output(ordered))
