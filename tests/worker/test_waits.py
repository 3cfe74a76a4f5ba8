"""Which calls wait, run or are decided, from the recorded events (pure)."""

from __future__ import annotations

from typing import Any

from agentstream.worker.agents import rebuild_resume_state
from agentstream.worker.app.waits import InputBook, plan_calls, refuse_waits
from agentstream.worker.llm import ReadyToolCall


def call(call_id: str, name: str, **parameters: Any) -> ReadyToolCall:
    return ReadyToolCall(
        index=0, tool_call_id=call_id, tool_name=name, parameters=parameters, error=None, arguments=""
    )


def needs(name: str) -> bool:
    return name == "rm"


def test_a_new_batch_announces_its_waits_and_runs_the_rest() -> None:
    plan = plan_calls([call("a", "rm", path="/x"), call("b", "add"), call("c", "ask_user", prompt="Why?")],
                      asks=True, needs_approval=needs, book=InputBook())  # fmt: skip
    assert [c.tool_call_id for c in plan.run] == ["b"]
    assert plan.events == [
        {"type": "approval_required", "tool_call_id": "a", "tool_name": "rm", "parameters": {"path": "/x"}},
        {"type": "input_required", "tool_call_id": "c", "prompt": "Why?"},
    ]
    assert plan.waiting == [
        {"tool_call_id": "a", "kind": "approval"},
        {"tool_call_id": "c", "kind": "question"},
    ]


def test_recorded_answers_decide_and_announced_waits_are_not_repeated() -> None:
    events = [
        {"type": "iteration_start", "iteration": 1},
        {"type": "tool_calls_ready", "tool_calls": [
            {"index": 0, "tool_call_id": "a", "tool_name": "rm", "parameters": {}},
            {"index": 1, "tool_call_id": "b", "tool_name": "rm", "parameters": {}},
            {"index": 2, "tool_call_id": "c", "tool_name": "ask_user", "parameters": {"prompt": "?"}},
            {"index": 3, "tool_call_id": "d", "tool_name": "rm", "parameters": {}},
        ]},
        *({"type": "approval_required", "tool_call_id": i} for i in "abd"),
        {"type": "input_required", "tool_call_id": "c", "prompt": "?"},
        {"type": "input", "approvals": [{"tool_call_id": "a", "approved": True},
                                        {"tool_call_id": "b", "approved": False, "reason": "no"}]},
        {"type": "input", "message": "blue", "tool_call_id": "c"},
    ]  # fmt: skip
    state = rebuild_resume_state(events)
    assert state is not None and [c.tool_call_id for c in state.pending_tool_calls] == ["a", "b", "c", "d"]
    plan = plan_calls(state.pending_tool_calls, asks=True, needs_approval=needs, book=state.inputs)
    assert [c.tool_call_id for c in plan.run] == ["a"]
    assert plan.events == [
        {"type": "tool_result", "tool_name": "rm", "tool_call_id": "b", "result": None, "success": False,
         "error": "denied by the user: no"},
        {"type": "tool_error", "tool_name": "rm", "tool_call_id": "b", "error": "denied by the user: no"},
        {"type": "tool_result", "tool_name": "ask_user", "tool_call_id": "c", "result": "blue", "success": True},
    ]  # fmt: skip
    assert plan.waiting == [{"tool_call_id": "d", "kind": "approval"}]  # still waiting, not announced again


def test_a_workflow_step_refuses_what_would_wait() -> None:
    plan = refuse_waits([call("a", "rm"), call("b", "add")], asks=False, needs_approval=needs)
    assert [c.tool_call_id for c in plan.run] == ["b"] and not plan.waiting
    assert plan.events[-1]["error"] == "'rm' needs a person's approval: not possible in a workflow step"
