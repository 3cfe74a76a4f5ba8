"""Human in the loop: tool calls that wait for a person's approval or answer.

A call of a tool declared ``requires_approval`` (or named in the task's ``approve_tools``)
is not run when the model makes it: the agent records ``approval_required`` and the
attempt ends (:class:`WaitingForInput`), releasing the worker. The built-in ``ask_user``
tool (``App(ask_user=True)``) records ``input_required`` the same way. The answer comes
as an ``input`` event (``POST /v1/tasks/{id}/input``); the next attempt rebuilds what the
events say (:class:`InputBook`) and :func:`plan_calls` then runs the approved calls,
answers the denied ones with a failed outcome, and gives a question its answer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentstream.worker.app.batch import Fields, outcome_events
from agentstream.worker.llm import ReadyToolCall
from agentstream.worker.tools import Tool, ToolRegistry, tool

__all__ = [
    "ASK_USER",
    "InputBook",
    "WaitPlan",
    "WaitingForInput",
    "ask_user_tool",
    "plan_batch",
    "plan_calls",
    "refuse_waits",
]

#: the name of the built-in question tool
ASK_USER = "ask_user"
#: the wait event of each kind of pending input
WAIT_EVENTS = {"approval": "approval_required", "question": "input_required"}


class WaitingForInput(Exception):
    """Raised by an agent once its wait events are out: the attempt ends ``waiting``.

    ``pending`` lists what the task waits for: ``{"tool_call_id", "kind"}`` items.
    """

    def __init__(self, pending: list[dict[str, str]]) -> None:
        super().__init__(f"waiting for input on {len(pending)} call(s)")
        self.pending = pending


@dataclass(slots=True)
class InputBook:
    """What the recorded events say about input: the calls announced as waiting, the
    answers given so far by tool call id (``{"approved", "reason"}`` or ``{"message"}``;
    ``replies`` keeps every message answering a call, in order, for ``ctx.ask``, and
    ``questions`` counts the questions a call announced), and the messages sent while
    the task ran (by the seq of their ``input`` event) with those given to the model."""

    announced: set[str] = field(default_factory=set)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, list[str]] = field(default_factory=dict)
    questions: dict[str, int] = field(default_factory=dict)
    messages: dict[int, str] = field(default_factory=dict)
    given: set[int] = field(default_factory=set)

    def feed(self, event: Mapping[str, Any]) -> None:
        """Take one event of the task's stream into account (others are ignored)."""
        kind = event.get("type")
        if kind in ("approval_required", "input_required"):
            call_id = str(event.get("tool_call_id"))
            self.announced.add(call_id)
            if kind == "input_required":
                self.questions[call_id] = self.questions.get(call_id, 0) + 1
        elif kind == "input":
            for item in event.get("approvals") or ():
                self.answers.setdefault(str(item.get("tool_call_id")), dict(item))
            if event.get("tool_call_id") and "message" in event:
                call_id = str(event["tool_call_id"])
                self.answers.setdefault(call_id, {"message": event["message"]})
                self.replies.setdefault(call_id, []).append(str(event["message"]))
            elif "message" in event and isinstance(event.get("seq"), int):
                self.messages[event["seq"]] = str(event["message"])
        elif kind == "input_delivered":
            self.given.update(int(seq) for seq in event.get("input_seqs") or ())


@dataclass(slots=True)
class WaitPlan:
    """What to do with a batch of calls: run some, record events for the others (wait
    announcements and the outcomes the answers decide), and wait for ``waiting``."""

    run: list[ReadyToolCall] = field(default_factory=list)
    events: list[Fields] = field(default_factory=list)
    waiting: list[dict[str, str]] = field(default_factory=list)


def _wait_kind(call: ReadyToolCall, asks: bool, needs_approval: Callable[[str], bool]) -> str | None:
    if call.parameters is None:
        return None  # broken arguments: the batch reports the error, nothing to approve
    if asks and call.tool_name == ASK_USER:
        return "question"
    return "approval" if needs_approval(call.tool_name) else None


def _decided(call: ReadyToolCall, answer: Mapping[str, Any]) -> list[Fields] | None:
    """The outcome an answer decides, or None when the call is approved (it runs)."""
    if "message" in answer:
        return outcome_events(call, result=answer["message"])
    if answer.get("approved"):
        return None
    reason = answer.get("reason")
    return outcome_events(call, error=f"denied by the user: {reason}" if reason else "denied by the user")


def plan_calls(
    calls: Sequence[ReadyToolCall], *, asks: bool, needs_approval: Callable[[str], bool], book: InputBook
) -> WaitPlan:
    """Split ``calls`` into those to run now, the decided ones and the waiting ones."""
    plan = WaitPlan()
    for call in calls:
        kind = _wait_kind(call, asks, needs_approval)
        answer = book.answers.get(call.tool_call_id)
        if kind is None or (answer is not None and _decided(call, answer) is None):
            plan.run.append(call)
        elif answer is not None:
            plan.events.extend(_decided(call, answer) or ())
        else:
            plan.waiting.append({"tool_call_id": call.tool_call_id, "kind": kind})
            if call.tool_call_id not in book.announced:
                plan.events.append(_announcement(call, kind))
    return plan


def refuse_waits(
    calls: Sequence[ReadyToolCall], *, asks: bool, needs_approval: Callable[[str], bool]
) -> WaitPlan:
    """For calls made where nothing can wait (workflow steps): a call that would wait is
    refused with a failed outcome instead of running unapproved."""
    plan = WaitPlan()
    for call in calls:
        kind = _wait_kind(call, asks, needs_approval)
        if kind is None:
            plan.run.append(call)
        else:
            what = "needs a person's approval" if kind == "approval" else "asks the user"
            plan.events.extend(
                outcome_events(call, error=f"{call.tool_name!r} {what}: not possible in a workflow step")
            )
    return plan


def plan_batch(
    calls: Sequence[ReadyToolCall],
    registry: ToolRegistry,
    allowed: Sequence[str],
    approve_tools: Collection[str],
    book: InputBook | None,
    *,
    in_step: bool,
) -> WaitPlan:
    """An agent's plan for a batch: which calls run now and which wait for a person (the
    tools ``approve_tools`` names or declared ``requires_approval``, and ``ask_user``
    when ``allowed``); in a workflow step (``in_step``) those are refused instead."""

    def needs_approval(name: str) -> bool:
        return name in approve_tools or (name in registry and registry.get(name).requires_approval)

    asks = ASK_USER in allowed
    if in_step:
        return refuse_waits(calls, asks=asks, needs_approval=needs_approval)
    return plan_calls(calls, asks=asks, needs_approval=needs_approval, book=book or InputBook())


def _announcement(call: ReadyToolCall, kind: str) -> Fields:
    base = {"type": WAIT_EVENTS[kind], "tool_call_id": call.tool_call_id}
    if kind == "question":
        return {**base, "prompt": str((call.parameters or {}).get("prompt", ""))}
    return {**base, "tool_name": call.tool_name, "parameters": dict(call.parameters or {})}


def _ask_user(prompt: str) -> str:
    """Ask the user a question and wait for the answer: use it when you need information
    or a choice only the user can give. The task pauses until the user replies."""
    raise RuntimeError("ask_user is answered by the user; the agent never runs it")


def ask_user_tool() -> Tool:
    """The built-in ``ask_user`` tool (its calls are intercepted, never run)."""
    return tool(_ask_user, name=ASK_USER)
