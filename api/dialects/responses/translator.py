"""A task's stored events as OpenAI Responses streaming events: pure and synchronous.

``feed`` each stored event in stream order; it returns the Responses events it maps to,
numbered ``seq * SEQ_SPAN + k`` (``k`` from 0), so a ``sequence_number`` names one stored
event and a place in its group: resuming after any of them is exact, whichever process
serves it, and the numbers of what retention kept do not depend on what it dropped.

**Mapping** (docs/protocol.md has the table):

- the first event (``queued``) is ``response.created`` (status ``queued``); the agent's
  ``status``/``started`` (or its first output) ``response.in_progress``;
- ``token``\\ s are a ``message`` item (``output_item.added``, ``content_part.added`` with
  an ``output_text`` part, ``output_text.delta``…; closed by the first event of another
  type with ``output_text.done``, ``content_part.done``, ``output_item.done``);
- ``thinking_token``\\ s are a ``reasoning`` item the same way (a ``reasoning_text`` part,
  ``reasoning_text.delta``/``.done``);
- server-side tool calls are ``function_call`` items (``function_call_arguments.delta``
  from the model's argument deltas, ``.done`` and ``output_item.done`` with status
  ``completed`` when the model's turn ends), and each ``tool_result``/``tool_error`` a
  ``function_call_output`` item with the same ``call_id`` (output: the result, JSON
  unless a string, or the error text), added and done at once;
- ``retry`` closes what is open as ``incomplete`` and leaves it out of the final object;
- ``completed`` closes everything, then ``response.completed`` (succeeded),
  ``response.failed`` (failed, with the last ``error``) or ``response.incomplete``
  (cancelled: status ``cancelled``; or a ``result`` stopped by ``length`` or
  ``content_filter``). The SDK's event union has no ``response.cancelled``.

Other events (ReAct thoughts, steps, usage, custom events) have no Responses event; usage
is summed into the object's ``usage``.

**Waiting for a person** splits a task into responses, as OpenAI's approval round trip
does. A response ends when its task parks: ``approval_required`` adds an
``mcp_approval_request`` item (id ``mcpr_<tool call id>``, the tool's name and arguments,
``server_label`` ``agentstream``); a question (``ask_user``) is its ``function_call`` item
left without output; and :meth:`ResponsesTranslator.park` ends the response
``completed`` with them, numbered after the last event's group. The client answers with a
new response (``previous_response_id``, ``mcp_approval_response`` /
``function_call_output`` items): the continuation ``<task id>.<seq of the answer>`` is the
same task's events after that seq (``after_seq``), translated by a translator that has
seen, silently, what came before it (so a call's output does not announce the call again).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from agentstream.api.dialects.responses.objects import ResponseState, epoch_s
from agentstream.api.dialects.tool_calls import TurnCalls, json_text, ready_calls

__all__ = ["APPROVAL_PREFIX", "SEQ_SPAN", "ResponsesTranslator"]

#: an approval request's item id is this prefix and the tool call id
APPROVAL_PREFIX = "mcpr_"
#: the ``server_label`` of approval requests (the tools run on the worker, not an MCP server)
SERVER_LABEL = "agentstream"

#: Responses events per stored event at most: ``sequence_number = seq * SEQ_SPAN + k``
SEQ_SPAN = 1000

Event = dict[str, Any]

_TERMINAL = {"completed": "response.completed", "failed": "response.failed"}
_CUT = ("error", "cancelled")
#: chunk type -> (item type, its content part, the part's text field, event prefix)
_PARTS: dict[str, tuple[str, Event, str, str]] = {
    "token": (
        "message",
        {"type": "output_text", "text": "", "annotations": []},
        "text",
        "response.output_text",
    ),
    "refusal": ("message", {"type": "refusal", "refusal": ""}, "refusal", "response.refusal"),
    "thinking_token": (
        "reasoning",
        {"type": "reasoning_text", "text": ""},
        "text",
        "response.reasoning_text",
    ),
}
_STOPPED = {"length": "max_output_tokens", "content_filter": "content_filter"}


class ResponsesTranslator:
    """Turns one task's stored events into Responses events (see the module doc)."""

    def __init__(self, state: ResponseState, after_seq: int = 0) -> None:
        self.state = state
        #: the response covers the task's events after this seq (a continuation); those
        #: before it are only looked at for the calls they announced
        self.after_seq = after_seq
        self.created = False
        self.finished = False
        #: calls that wait for a person in this response and were not answered yet
        self.waits: set[str] = set()
        self._earlier: set[str] = set()
        #: the seq of the last event fed and how many Responses events it became
        self._last: tuple[int, int] = (after_seq, 0)
        self._out: list[Event] = []
        #: the chunk kind (``token``, ``refusal``, ``thinking_token``) and output index of
        #: the open text item: any event of another type closes it
        self._part: tuple[str, int] | None = None
        self._calls = TurnCalls()
        #: function_call items by call id, and the calls that have their output
        self._call_items: dict[str, int] = {}
        self._answered: set[str] = set()
        self._result: Mapping[str, Any] = {}
        self._error: Mapping[str, Any] | None = None

    def feed(self, event: Mapping[str, Any]) -> list[Event]:
        """The numbered Responses events of ``event`` (none after the end, nor for a
        marker without a seq: ``gap``, ``reset``)."""
        seq = event.get("seq")
        if self.finished or not isinstance(seq, int):
            return []
        if seq <= self.after_seq:
            self._remember_calls(event)
            return []
        if event.get("type") == "input" and self.waits:
            return self.park()  # the answer came: this response ended when the task parked
        out: list[Event] = []
        self._out = out
        if not self.created:
            self.created = True
            if self.after_seq:
                self.state.created_at = epoch_s(event.get("timestamp")) or self.state.created_at
            self._lifecycle("response.created")
        self._translate(event)
        if len(out) > SEQ_SPAN:
            raise ValueError(f"event {seq} maps to {len(out)} Responses events; at most {SEQ_SPAN} fit")
        for k, item in enumerate(out):
            item["sequence_number"] = seq * SEQ_SPAN + k
        self._last = (seq, len(out))
        return out

    def park(self) -> list[Event]:
        """End the response because its task waits for the calls in :attr:`waits`:
        ``response.completed`` with the approval requests and unanswered calls in its
        output. Numbered after the last event's group, so every reader numbers it alike.
        Nothing when nothing waits or the response already ended."""
        if self.finished or not self.waits:
            return []
        out: list[Event] = []
        self._out = out
        self._close_all("completed")
        self.state.status = "completed"
        self.finished = True
        self._lifecycle("response.completed")
        seq, used = self._last
        for k, item in enumerate(out):
            item["sequence_number"] = seq * SEQ_SPAN + used + k
        return out

    def _remember_calls(self, event: Mapping[str, Any]) -> None:
        """An event before the response's start: note the calls it announced."""
        call_id = event.get("tool_call_id")
        if isinstance(call_id, str) and call_id:
            self._earlier.add(call_id)
        for call in event.get("tool_calls") or []:
            if isinstance(call, Mapping) and isinstance(call.get("tool_call_id"), str):
                self._earlier.add(call["tool_call_id"])

    def _translate(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "retry":
            self._close_all("incomplete", superseded=True)
            return
        if self._part is not None and self._part[0] != kind:
            # text cut short by a failure or a cancellation is incomplete; a refusal is whole
            cut = kind in _CUT and self._part[0] != "refusal"
            self._close_part("incomplete" if cut else "completed")
        match kind:
            case "status" | "started":
                self._in_progress()
            case "token" | "refusal" | "thinking_token":
                self._chunk(event, seq=int(event["seq"]))
            case "tool_call_delta":
                self._tool_call_delta(event, seq=int(event["seq"]))
            case "tool_calls_ready":
                self._tool_calls_ready(event, seq=int(event["seq"]))
            case "tool_call" | "action":
                self._announce(event, seq=int(event["seq"]))
            case "tool_result" | "tool_error":
                self._tool_output(event, seq=int(event["seq"]))
            case "usage":
                self.state.add_usage(event)
            case "approval_required":
                self._approval_request(event)
            case "input_required":
                self.waits.add(str(event.get("tool_call_id") or ""))
            case "result":
                self._result = event
            case "error":
                self._error = event
            case "completed":
                self._completed(event)

    # ------------------------------------------------------------------ items

    def _emit(self, kind: str, **fields: Any) -> None:
        self._out.append({"type": kind, **copy.deepcopy(fields)})

    def _lifecycle(self, kind: str) -> None:
        self._emit(kind, response=self.state.snapshot())

    def _in_progress(self) -> None:
        if self.state.status == "queued":
            self.state.status = "in_progress"
            self._lifecycle("response.in_progress")

    def _add(self, item: Event) -> int:
        self._in_progress()
        index = len(self.state.output)
        self.state.output.append(item)
        self._emit("response.output_item.added", output_index=index, item=item)
        return index

    def _done(self, index: int, status: str) -> None:
        item = self.state.output[index]
        item["status"] = status
        self._emit("response.output_item.done", output_index=index, item=item)

    # ------------------------------------------------------------------ text and reasoning

    def _chunk(self, event: Mapping[str, Any], seq: int) -> None:
        content = event.get("content")
        if not isinstance(content, str) or not content:
            return
        kind = str(event["type"])
        item_type, part, field, events = _PARTS[kind]
        if self._part is None:
            self._part = kind, self._open_part(item_type, dict(part), seq)
        index = self._part[1]
        item = self.state.output[index]
        item["content"][0][field] += content
        extra: dict[str, Any] = {"logprobs": []} if kind == "token" else {}
        self._emit(
            f"{events}.delta", item_id=item["id"], output_index=index, content_index=0, delta=content, **extra
        )

    def _open_part(self, item_type: str, part: Event, seq: int) -> int:
        rid = self.state.id
        if item_type == "message":
            item: Event = {"id": f"msg_{rid}_{seq}", "type": "message", "role": "assistant", "content": []}
        else:
            item = {"id": f"rs_{rid}_{seq}", "type": "reasoning", "summary": [], "content": []}
        item["status"] = "in_progress"
        index = self._add(item)
        item["content"].append(part)
        self._emit(
            "response.content_part.added", item_id=item["id"], output_index=index, content_index=0, part=part
        )
        return index

    def _close_part(self, status: str) -> None:
        if self._part is None:
            return
        kind, index = self._part
        self._part = None
        item = self.state.output[index]
        part = item["content"][0]
        _, _, field, events = _PARTS[kind]
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        extra: dict[str, Any] = {"logprobs": []} if kind == "token" else {}
        self._emit(f"{events}.done", **{field: part[field]}, **extra, **where)
        self._emit("response.content_part.done", part=part, **where)
        self._done(index, status)

    # ------------------------------------------------------------------ tool calls

    def _open_call(self, call_id: str, name: str, seq: int) -> int:
        item = {"id": f"fc_{self.state.id}_{seq}", "type": "function_call", "call_id": call_id, "name": name,
                "arguments": "", "status": "in_progress"}  # fmt: skip
        index = self._add(item)
        self._call_items[call_id] = index
        return index

    def _arguments(self, index: int, delta: str) -> None:
        if delta:
            item = self.state.output[index]
            item["arguments"] += delta
            self._emit(
                "response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=delta
            )

    def _end_call(self, index: int, status: str = "completed") -> None:
        item = self.state.output[index]
        if item["status"] != "in_progress":
            return
        args = item["arguments"]
        self._emit(
            "response.function_call_arguments.done", item_id=item["id"], output_index=index, arguments=args
        )
        self._done(index, status)

    def _tool_call_delta(self, event: Mapping[str, Any], seq: int) -> None:
        call, _ = self._calls.absorb(event)
        if call.call_id is None or call.name is None:
            return
        if not call.started:
            call.started = True
            self._open_call(call.call_id, call.name, seq)
        index = self._call_items[call.call_id]
        self._arguments(index, call.arguments[len(self.state.output[index]["arguments"]) :])

    def _tool_calls_ready(self, event: Mapping[str, Any], seq: int) -> None:
        for ready in ready_calls(event):
            call = self._calls.pop(ready.index)
            if call is not None and call.started and call.call_id in self._call_items:
                self._end_call(self._call_items[call.call_id])
            elif ready.call_id and ready.call_id not in self._call_items:
                args = call.arguments if call is not None and call.arguments else None
                self._whole_call(ready.call_id, ready.name, args, ready.parameters, seq)
        for index in self._started_calls():  # streamed but not reported ready: end them too
            self._end_call(index)

    def _started_calls(self) -> list[int]:
        """Forget the turn's streamed calls; the output indices of those announced."""
        calls = self._calls.clear()
        return [self._call_items[c.call_id] for c in calls if c.started and c.call_id in self._call_items]

    def _whole_call(self, call_id: str, name: str, args: str | None, parameters: Any, seq: int) -> None:
        """A call that never streamed, announced in one go."""
        index = self._open_call(call_id, name, seq)
        if args is None:
            args = json_text(parameters) if parameters is not None else ""
        self._arguments(index, args)
        self._end_call(index)

    def _announce(self, event: Mapping[str, Any], seq: int) -> None:
        """``tool_call``/``action``: only news for a call that was never streamed."""
        call_id = event.get("tool_call_id")
        if (
            isinstance(call_id, str)
            and call_id
            and call_id not in self._call_items
            and call_id not in self._earlier
        ):
            self._whole_call(call_id, str(event.get("tool_name") or ""), None, event.get("parameters"), seq)

    def _approval_request(self, event: Mapping[str, Any]) -> None:
        """A call that waits for approval: an ``mcp_approval_request`` item (the SDK's
        class has no ``status``: added and done as it is)."""
        call_id = str(event.get("tool_call_id") or "")
        self.waits.add(call_id)
        arguments = json_text(event.get("parameters") or {})
        item = {"id": f"{APPROVAL_PREFIX}{call_id}", "type": "mcp_approval_request",
                "name": str(event.get("tool_name") or ""), "arguments": arguments,
                "server_label": SERVER_LABEL}  # fmt: skip
        index = self._add(item)
        self._emit("response.output_item.done", output_index=index, item=item)

    def _tool_output(self, event: Mapping[str, Any], seq: int) -> None:
        call_id = str(event.get("tool_call_id") or "")
        if call_id in self._answered:
            return  # a failed call's ``tool_result`` and its ``tool_error``: one output
        self._answered.add(call_id)
        self.waits.discard(call_id)
        name = str(event.get("tool_name") or "")
        if call_id not in self._call_items and call_id not in self._earlier:
            self._whole_call(call_id, name, None, None, seq)
        failed = event.get("type") == "tool_error" or event.get("success") is False
        value = event.get("error") if failed and event.get("error") is not None else event.get("result")
        item = {"id": f"fco_{self.state.id}_{seq}", "type": "function_call_output", "call_id": call_id,
                "name": name, "output": json_text(value), "status": "completed"}  # fmt: skip
        self._done(self._add(item), "completed")

    # ------------------------------------------------------------------ the end

    def _close_all(self, status: str, *, superseded: bool = False) -> None:
        open_items = [self._part[1]] if self._part is not None else []
        self._close_part(status)
        calls = self._started_calls()
        for index in calls:
            self._end_call(index, status)
        if superseded:
            self.state.superseded.update(open_items + calls)
            for index in calls:  # the next attempt may stream the same call again
                self._call_items.pop(self.state.output[index]["call_id"], None)

    def _completed(self, event: Mapping[str, Any]) -> None:
        """The end: a model stop (``length``, ``content_filter``) is ``incomplete`` and a
        refusal ``completed`` (its text is the answer's ``refusal`` part), as OpenAI has
        them, although the task counts both as failed; otherwise the task's outcome."""
        state = self.state
        outcome = event.get("status") or ("succeeded" if event.get("success") else "failed")
        stop = str(self._result.get("stop_reason"))
        if outcome == "cancelled":
            state.status = "cancelled"
        elif stop in _STOPPED:
            state.status = "incomplete"
            state.incomplete_details = {"reason": _STOPPED[stop]}
        elif outcome == "succeeded" or stop == "refusal":
            state.status = "completed"
        else:
            state.status = "failed"
            output = self._result.get("output")
            state.fail(self._error, output if isinstance(output, str) else f"the task {outcome}")
        self._close_all("completed" if state.status == "completed" else "incomplete")
        state.completed_at = epoch_s(event.get("timestamp"))
        self.finished = True
        self._lifecycle(_TERMINAL.get(state.status, "response.incomplete"))
