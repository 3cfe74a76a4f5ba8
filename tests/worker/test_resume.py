"""Resuming a task from its recorded events: the pure rebuild (tables and properties) and
end to end, where a run is cut off and a second agent finishes it without re-running tools."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentstream.worker.agents import HybridAgent, LLMAgent, ResumeState, ToolAgent, rebuild_resume_state
from agentstream.worker.llm import OpenAIClient
from agentstream.worker.tools import ToolRegistry

Event = dict[str, Any]

# --------------------------------------------------------------------------- synthetic streams


class Stream:
    """Builds events as a reader returns them: seq, attempt, timestamp, type, fields."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.attempt = 1
        self._seq = itertools.count(1)

    def add(self, kind: str, **fields: Any) -> Stream:
        seq = next(self._seq)
        self.events.append(
            {"id": f"{seq}-0", "seq": seq, "attempt": self.attempt, "type": kind,
             "timestamp": "2026-01-01T00:00:00.000000+00:00", "agent_id": "a1", **fields}
        )  # fmt: skip
        return self

    def retry(self) -> Stream:
        self.attempt += 1
        return self.add("retry", reason="worker lost")

    def tokens(self, text: str, kind: str = "token") -> Stream:
        for word in text.split(" "):
            self.add(kind, content=word + " ")
        return self

    def ready(self, *calls: tuple[str, str]) -> Stream:
        items = [
            {"index": i, "tool_call_id": cid, "tool_name": "calculator", "parameters": {"expression": expr}}
            for i, (cid, expr) in enumerate(calls)
        ]
        return self.add("tool_calls_ready", tool_calls=items)

    def result(self, cid: str, value: Any) -> Stream:
        return self.add("tool_result", tool_name="calculator", tool_call_id=cid, result=value, success=True)


def started() -> Stream:
    return Stream().add("queued", agent="hybrid", input="q").add("started", agent="hybrid")


CALLS = (("c1", "17 * 23"), ("c2", "2 ** 10"))


def tool_turn(stream: Stream, iteration: int = 1, text: str = "") -> Stream:
    stream.add("iteration_start", iteration=iteration, max_iterations=8, remaining=8 - iteration)
    if text:
        stream.tokens(text)
    stream.add("usage", prompt_tokens=5, completion_tokens=3, total_tokens=8)
    return stream.ready(*CALLS).add("thought", content=text, iteration=iteration)


# --------------------------------------------------------------------------- tables


def test_nothing_usable_before_a_completed_turn() -> None:
    assert rebuild_resume_state([]) is None
    assert rebuild_resume_state(started().add("status", status="started").events) is None
    mid_tokens = (
        started().add("iteration_start", iteration=1, max_iterations=8, remaining=7).tokens("The ans")
    )
    assert rebuild_resume_state(mid_tokens.events) is None


def test_crash_after_tool_calls_ready_leaves_every_call_pending() -> None:
    state = rebuild_resume_state(tool_turn(started(), text="Let me calculate").events)

    assert state is not None
    assert [c.tool_call_id for c in state.pending_tool_calls] == ["c1", "c2"]
    assert state.pending_tool_calls[0].parameters == {"expression": "17 * 23"}
    assert state.recorded_results == {}
    assert (state.iteration, state.completed_turns, state.tool_calls_count) == (1, 1, 0)
    (assistant,) = state.messages
    assert assistant["role"] == "assistant" and assistant["content"] == "Let me calculate "
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert json.loads(assistant["tool_calls"][1]["function"]["arguments"]) == {"expression": "2 ** 10"}
    assert state.usage == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_after_some_results_only_the_rest_is_pending() -> None:
    stream = tool_turn(started())
    stream.add("action", tool_name="calculator", tool_call_id="c1", parameters={}, iteration=1)
    stream.add("tool_call", tool_name="calculator", tool_call_id="c1", parameters={})
    state = rebuild_resume_state(stream.result("c1", 391).events)

    assert state is not None
    assert [c.tool_call_id for c in state.pending_tool_calls] == ["c2"]
    assert [c.tool_call_id for c in state.open_batch] == ["c1", "c2"]
    assert state.recorded_results["c1"]["result"] == 391
    assert state.tool_calls_count == 1
    assert [m["role"] for m in state.messages] == ["assistant"]  # the open batch's tool messages wait


def test_after_all_results_mid_next_turn_the_half_turn_is_dropped() -> None:
    stream = tool_turn(started()).result("c2", 1024).result("c1", 391)
    stream.add("observation", content="...", iteration=1, has_error=False)
    stream.add("iteration_start", iteration=2, max_iterations=8, remaining=6).tokens("The answers are")
    state = rebuild_resume_state(stream.events)

    assert state is not None
    assert state.pending_tool_calls == [] and state.open_batch == []
    assert [m["role"] for m in state.messages] == ["assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in state.messages[1:]] == ["c1", "c2"]  # call order
    assert json.loads(state.messages[1]["content"]) == {"result": 391}
    assert (state.iteration, state.completed_turns, state.tool_calls_count) == (1, 1, 2)
    assert all("answers" not in str(m.get("content")) for m in state.messages)


def test_attempts_are_folded_in_order() -> None:
    stream = tool_turn(started()).result("c1", 391).retry().add("started", agent="hybrid")
    stream.add("tool_call", tool_name="calculator", tool_call_id="c2", parameters={})
    stream.add("tool_error", tool_name="calculator", tool_call_id="c2", error="boom")
    stream.add("iteration_start", iteration=2, max_iterations=8, remaining=6).tokens("half")
    stream.retry()
    state = rebuild_resume_state(stream.events)

    assert state is not None
    assert state.pending_tool_calls == []
    assert json.loads(state.messages[2]["content"]) == {"error": "boom"}
    assert state.tool_calls_count == 2 and state.iteration == 1


def test_a_later_tool_turn_keeps_earlier_ones_and_tool_agent_turns_count() -> None:
    stream = Stream().add("started", agent="tool").ready(("c1", "1 + 1")).result("c1", 2)
    stream.tokens("The answer").ready(("c9", "3 + 4"))  # a second batch, no iteration events
    state = rebuild_resume_state(stream.events)

    assert state is not None
    assert (state.completed_turns, state.iteration) == (2, 2)
    assert [m["role"] for m in state.messages] == ["assistant", "tool", "assistant"]
    assert state.messages[2]["content"] == "The answer "
    assert [c.tool_call_id for c in state.pending_tool_calls] == ["c9"]


def test_unusable_recorded_calls_come_back_as_calls_with_an_error() -> None:
    stream = started().add(
        "tool_calls_ready",
        tool_calls=[{"index": 0, "tool_call_id": "bad", "tool_name": "calculator", "parameters": None}],
    )
    state = rebuild_resume_state(stream.events)

    assert state is not None
    (call,) = state.pending_tool_calls
    assert call.parameters is None and call.error is not None
    assert state.messages[0]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_workflow_events_stay_out_of_the_conversation_but_keep_its_output() -> None:
    scope = {"kind": "dawp", "run_id": "r1", "workflow_id": "w"}
    stream = started()
    for index in (0, 1):
        step = {**scope, "step_id": f"s{index}", "step_index": index}
        stream.add("dawp_step_started", run_id="r1", step_id=f"s{index}", step_index=index, loop_scope=step)
        stream.add("token", content=f"out{index}", loop_scope=step)
        stream.add("tool_calls_ready", tool_calls=[], loop_scope=step)  # never a main turn
        stream.add(
            "dawp_step_completed",
            run_id="r1",
            step_id=f"s{index}",
            step_index=index,
            success=True,
            loop_scope=step,
        )
    only_workflow = rebuild_resume_state(stream.events)
    assert only_workflow is None  # without boundary events the run is not known to be over yet

    stream.add("iteration_start", iteration=1, max_iterations=8, remaining=7).tokens("half")
    state = rebuild_resume_state(stream.events)
    assert state is not None
    assert state.workflow_output == "out1" and state.messages == [] and state.completed_turns == 0

    closed = started()
    closed.events = [*stream.events[:-2]]
    closed.add("dawp_run_completed", run_id="r1", success=True, step_summaries=[], loop_scope=scope)
    assert (rebuild_resume_state(closed.events) or ResumeState()).workflow_output == "out1"


# --------------------------------------------------------------------------- properties


@st.composite
def recorded_runs(draw: st.DrawFn) -> tuple[list[Event], int]:
    """A whole Hybrid-like run (tool iterations, then an answer) and a cut position."""
    batches = draw(st.lists(st.integers(min_value=1, max_value=3), max_size=4))
    stream = started()
    ids = itertools.count()
    for iteration, size in enumerate(batches, start=1):
        stream.add("iteration_start", iteration=iteration, max_iterations=8, remaining=8 - iteration)
        stream.tokens(f"think{iteration} more")
        calls = [(f"id{next(ids)}", f"{iteration} + {n}") for n in range(size)]
        stream.ready(*calls).add("thought", content="", iteration=iteration)
        for cid, _ in draw(st.permutations(calls)):
            stream.result(cid, 1)
        stream.add("observation", content="", iteration=iteration, has_error=False)
    final = len(batches) + 1
    stream.add("iteration_start", iteration=final, max_iterations=8, remaining=8 - final)
    stream.tokens(f"think{final} answer")
    cut = draw(st.integers(min_value=0, max_value=len(stream.events)))
    return stream.events, cut


def tool_messages(messages: list[Event]) -> Iterator[str]:
    return (m["tool_call_id"] for m in messages if m["role"] == "tool")


@settings(max_examples=300, deadline=None)
@given(recorded_runs())
def test_rebuild_invariants_hold_wherever_a_run_is_cut(run: tuple[list[Event], int]) -> None:
    events, cut = run
    prefix = events[:cut]
    state = rebuild_resume_state(prefix)
    turns = [e for e in prefix if e["type"] == "tool_calls_ready"]
    recorded = {e["tool_call_id"] for e in prefix if e["type"] == "tool_result"}
    if not turns:
        assert state is None
        return
    assert state is not None
    assert state.completed_turns == len(turns)
    assert state.iteration == len(turns)
    assert set(state.recorded_results) == recorded and state.tool_calls_count == len(recorded)
    last_batch = [c["tool_call_id"] for c in turns[-1]["tool_calls"]]
    pending = [c.tool_call_id for c in state.pending_tool_calls]
    assert pending == [cid for cid in last_batch if cid not in recorded]
    asked = [c["id"] for m in state.messages if m["role"] == "assistant" for c in m["tool_calls"]]
    answered = list(tool_messages(state.messages))
    expected = asked if not pending else [cid for cid in asked if cid not in last_batch]
    assert answered == expected  # one tool message per call, in call order, none for an open batch
    # a turn is in the conversation only once complete: no tokens of the half turn after it
    texts = " ".join(str(m.get("content")) for m in state.messages if m["role"] == "assistant")
    assert f"think{len(turns) + 1}" not in texts


# --------------------------------------------------------------------------- end to end


def counting_registry(slow: str | None = None) -> tuple[ToolRegistry, Counter[str]]:
    """A calculator that counts the calls it finished; ``slow`` expressions take a while."""
    runs: Counter[str] = Counter()
    registry = ToolRegistry()

    async def calculator(expression: str) -> int:
        """Evaluate + and * and ** of two numbers."""
        if expression == slow:
            await asyncio.sleep(0.5)
        runs[expression] += 1
        left, op, right = expression.split(" ")
        a, b = int(left), int(right)
        return a * b if op == "*" else a**b if op == "**" else a + b

    registry.register(calculator)
    return registry, runs


PROMPT = "What is 17 * 23 and 2 ** 10?"


async def test_a_cut_off_run_resumes_without_running_a_tool_twice(llm_client: OpenAIClient) -> None:
    registry, runs = counting_registry(slow="2 ** 10")
    first = HybridAgent(agent_id="a1", llm_client=llm_client, tools=["calculator"], registry=registry)
    stream = first.execute_task_streaming({"description": PROMPT}, {})
    recorded: list[Event] = []
    async with contextlib.aclosing(stream):
        async for event in stream:
            recorded.append(event)
            if event["type"] == "tool_result":
                break  # the worker dies here: the slow call is cancelled unrecorded
    assert runs == Counter({"17 * 23": 1})
    await asyncio.sleep(0.6)  # stopping the stream cancelled the slow call: it never finishes
    assert runs == Counter({"17 * 23": 1})
    recorded.append({"type": "retry", "attempt": 2, "reason": "worker lost"})

    state = rebuild_resume_state(recorded)
    assert state is not None and [c.parameters for c in state.pending_tool_calls] == [
        {"expression": "2 ** 10"}
    ]
    second = HybridAgent(agent_id="a1", llm_client=llm_client, tools=["calculator"], registry=registry)
    resumed = [e async for e in second.execute_task_streaming({"description": PROMPT}, {"resume": state})]

    assert runs == Counter({"17 * 23": 1, "2 ** 10": 1})
    ids = {e["tool_call_id"] for e in recorded + resumed if e["type"] == "tool_result"}
    assert len(ids) == 2
    assert [e["type"] for e in resumed][:5] == [
        "started",
        "action",
        "tool_call",
        "tool_result",
        "observation",
    ]
    assert [e["iteration"] for e in resumed if e["type"] == "iteration_start"] == [2]
    assert resumed[-2]["output"] == "The answers are 391 and 1024."
    assert (resumed[-2]["tool_calls_count"], resumed[-2]["iterations"]) == (2, 2)
    assert resumed[-1]["type"] == "completed" and resumed[-1]["success"] is True


async def test_every_cut_of_a_recorded_run_resumes_to_the_same_answer(llm_client: OpenAIClient) -> None:
    registry, _ = counting_registry()
    agent = HybridAgent(agent_id="a1", llm_client=llm_client, tools=["calculator"], registry=registry)
    full = [e async for e in agent.execute_task_streaming({"description": PROMPT}, {})]
    ends = next(i for i, e in enumerate(full) if e["type"] == "result")

    for cut in range(ends):
        prefix = [*full[:cut], {"type": "retry", "attempt": 2, "reason": "cut"}]
        state = rebuild_resume_state(prefix)
        registry, runs = counting_registry()
        resumed_agent = HybridAgent(
            agent_id="a1", llm_client=llm_client, tools=["calculator"], registry=registry
        )
        resumed = [
            e async for e in resumed_agent.execute_task_streaming({"description": PROMPT}, {"resume": state})
        ]

        recorded = {e["tool_call_id"] for e in prefix if e["type"] == "tool_result"}
        ran = {e["tool_call_id"] for e in resumed if e["type"] == "tool_result"}
        assert not recorded & ran, cut
        assert len(recorded | ran) == 2, cut
        assert sum(runs.values()) == len(ran), cut
        assert resumed[-2]["output"] == "The answers are 391 and 1024.", cut
        assert resumed[-2]["tool_calls_count"] == 2, cut


async def test_tool_agent_resumes_pending_calls_then_answers(llm_client: OpenAIClient) -> None:
    registry, runs = counting_registry()
    agent = ToolAgent(agent_id="a1", llm_client=llm_client, tools=["calculator"], registry=registry)
    full = [e async for e in agent.execute_task_streaming({"description": PROMPT}, {})]
    first_result = next(i for i, e in enumerate(full) if e["type"] == "tool_result")
    state = rebuild_resume_state(full[: first_result + 1])
    assert state is not None and len(state.pending_tool_calls) == 1

    runs.clear()
    resumed = [e async for e in agent.execute_task_streaming({"description": PROMPT}, {"resume": state})]
    assert sum(runs.values()) == 1
    assert [e["type"] for e in resumed][:3] == ["started", "tool_call", "tool_result"]
    assert resumed[-1]["output"] == "The answers are 391 and 1024."
    assert resumed[-1]["tool_calls_count"] == 2


async def test_llm_agent_on_resume_runs_its_turn_again(llm_client: OpenAIClient) -> None:
    agent = LLMAgent(agent_id="a1", llm_client=llm_client)
    state = rebuild_resume_state(tool_turn(started()).events)  # whatever was recorded
    events = [e async for e in agent.execute_task_streaming({"description": "Hi"}, {"resume": state})]

    assert events[-1]["output"] == "Turn 1: you said Hi."
    assert events[-1]["usage"]["total_tokens"] == events[-2]["total_tokens"]
