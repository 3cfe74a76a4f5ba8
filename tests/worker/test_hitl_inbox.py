"""Messages to a running agent and a tool's ``ctx.ask``, without a worker: where the
rebuild puts the messages given to the model, what ``ask`` replays, and an agent that
takes messages between turns and before its final answer (scripted model)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from agentstream.streams import QueuedMessage
from agentstream.worker.agents import HybridAgent, LLMAgent, rebuild_resume_state
from agentstream.worker.app.batch import run_tool_batch
from agentstream.worker.app.context import AskInterrupt, CallerInfo, ToolContext
from agentstream.worker.app.inbox import Inbox, InboxUnavailable, TaskInbox
from agentstream.worker.app.waits import WaitingForInput
from agentstream.worker.errors import ToolError
from agentstream.worker.llm import OpenAIClient, ReadyToolCall
from agentstream.worker.tools import ToolRegistry

CALLS = [{"index": 0, "tool_call_id": "c1", "tool_name": "hold", "parameters": {}}]


def test_messages_given_after_a_batch_follow_its_tool_messages_once() -> None:
    events = [
        {"type": "iteration_start", "iteration": 1},
        {"type": "tool_calls_ready", "tool_calls": CALLS},
        {"type": "input", "message": "hi", "seq": 4},
        {"type": "tool_result", "tool_call_id": "c1", "result": "ok"},
        {"type": "input_delivered", "input_seqs": [4]},
        {"type": "iteration_start", "iteration": 2},
        {"type": "token", "content": "cut"},
    ]
    state = rebuild_resume_state(events)
    assert state is not None and state.pending_tool_calls == [] and state.iteration == 1
    assert [m["role"] for m in state.messages] == ["assistant", "tool", "user"]
    assert state.messages[-1]["content"] == "hi" and state.unanswered
    assert state.inputs.given == {4} and state.inputs.messages == {4: "hi"}


def test_a_final_answer_the_messages_follow_counts_as_a_turn() -> None:
    events = [
        {"type": "input", "message": "first", "seq": 2},
        {"type": "input_delivered", "input_seqs": [2]},  # before the first turn
        {"type": "token", "content": "Turn 2"},
        {"type": "input", "message": "second", "seq": 5},
        {"type": "input_delivered", "input_seqs": [5], "answer": "Turn 2"},
    ]
    state = rebuild_resume_state(events)
    assert state is not None and state.completed_turns == 1 and state.unanswered
    assert state.messages == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Turn 2"},
        {"role": "user", "content": "second"},
    ]
    assert rebuild_resume_state(events[:2]) is not None  # a message given before any turn is kept
    assert rebuild_resume_state(events[:1]) is None


def test_a_later_turn_answers_the_messages() -> None:
    events = [
        {"type": "input", "message": "hi", "seq": 2},
        {"type": "input_delivered", "input_seqs": [2]},
        {"type": "tool_calls_ready", "tool_calls": CALLS},
    ]
    state = rebuild_resume_state(events)
    assert state is not None and not state.unanswered and len(state.pending_tool_calls) == 1


async def test_ask_replays_recorded_answers_by_position_then_stops_the_tool() -> None:
    caller = CallerInfo(task_id="t", replies={"c1": ["monday"]}, questions={"c1": 2})
    ctx = caller.context("book", "c1", lambda _: None)
    assert await ctx.ask("When?") == "monday"
    with pytest.raises(AskInterrupt):
        await ctx.ask("How many?")
    assert ctx.asked is not None and ctx.asked.prompt == "How many?" and not ctx.asked.announce

    fresh = CallerInfo(task_id="t").context("book", "c2", lambda _: None)
    with pytest.raises(AskInterrupt):
        await fresh.ask("When?")
    assert fresh.asked is not None and fresh.asked.announce
    for bad in ("", " ", "x" * 4001):
        with pytest.raises(ToolError):
            await ToolContext(tool_name="book", tool_call_id="c3").ask(bad)
    in_step = ToolContext(tool_name="book", tool_call_id="c4", loop_scope={"kind": "dawp"})
    with pytest.raises(ToolError, match="workflow step"):
        await in_step.ask("When?")


async def test_a_tool_that_swallows_the_interrupt_still_waits() -> None:
    registry = ToolRegistry()

    async def stubborn(ctx: ToolContext) -> str:
        try:
            await ctx.ask("Sure?")
        except BaseException:  # the point: a tool that swallows everything
            return "went on anyway"
        return "unreachable"

    async def plain() -> str:
        return "done"

    registry.register(stubborn)
    registry.register(plain)
    calls = [
        ReadyToolCall(
            index=i, tool_call_id=f"c{i}", tool_name=name, parameters={}, error=None, arguments="{}"
        )
        for i, name in enumerate(("stubborn", "plain"))
    ]
    waiting: list[dict[str, str]] = []
    batch = run_tool_batch(registry, ["stubborn", "plain"], calls, CallerInfo(), None, waiting)
    fields = [item async for item in batch]
    assert waiting == [{"tool_call_id": "c0", "kind": "question"}]
    assert {
        "type": "input_required",
        "tool_call_id": "c0",
        "prompt": "Sure?",
        "tool_name": "stubborn",
    } in fields
    assert [f["tool_call_id"] for f in fields if f["type"] == "tool_result"] == ["c1"]  # the other ran


class ScriptedInbox(Inbox):
    """Messages that arrive at given moments: before the n-th ``take`` or ``close``."""

    def __init__(self, arrivals: dict[int, list[str]]) -> None:
        self.arrivals = arrivals
        self.calls = 0
        self.closed = False
        self.seq = 100

    def _due(self) -> list[QueuedMessage]:
        self.calls += 1
        due = []
        for text in self.arrivals.pop(self.calls, []):
            self.seq += 1
            due.append(QueuedMessage(self.seq, text))
        return due

    async def take(self) -> list[QueuedMessage]:
        return self._due()

    async def close(self) -> list[QueuedMessage]:
        due = self._due()
        self.closed = not due
        return due


async def run_agent(agent: Any, text: str, inbox: Inbox) -> list[dict[str, Any]]:
    return [event async for event in agent.execute_task_streaming({"description": text}, {"inbox": inbox})]


async def test_a_message_that_comes_as_the_agent_answers_gets_one_more_turn(llm_client: OpenAIClient) -> None:
    inbox = ScriptedInbox({2: ["and then?"]})  # 1: before the turn, 2: as it finishes
    agent = HybridAgent(agent_id="h", llm_client=llm_client, tools=[], max_iterations=1)
    events = await run_agent(agent, "Hello", inbox)
    kinds = [e["type"] for e in events]
    delivered = events[kinds.index("input_delivered")]
    assert delivered["answer"] == "Turn 1: you said Hello." and delivered["input_seqs"] == [101]
    result = events[kinds.index("result")]
    # past the budget of one iteration: an accepted message is always answered
    assert result["output"] == "Turn 2: you said and then?." and result["success"] and inbox.closed
    assert kinds.count("iteration_start") == 2

    llm_inbox = ScriptedInbox({1: ["early"], 2: ["late"]})
    events = await run_agent(LLMAgent(agent_id="l", llm_client=llm_client), "Hi", llm_inbox)
    assert [e["input_seqs"] for e in events if e["type"] == "input_delivered"] == [[101], [102]]
    assert events[-1]["output"] == "Turn 3: you said late." and llm_inbox.closed


async def test_an_agent_without_an_inbox_and_a_tool_that_asks_in_process(llm_client: OpenAIClient) -> None:
    registry = ToolRegistry()

    async def confirm(ctx: ToolContext) -> str:
        return await ctx.ask("Go?")

    registry.register(confirm)
    agent = HybridAgent(agent_id="h", llm_client=llm_client, tools=["confirm"], registry=registry)
    seen: list[dict[str, Any]] = []
    with pytest.raises(WaitingForInput) as waiting:
        async for event in agent.execute_task_streaming({"description": "Now [call:confirm]"}):
            seen.append(event)
    assert waiting.value.pending[0]["kind"] == "question"
    assert seen[-1]["type"] == "input_required" and seen[-1]["prompt"] == "Go?"


async def test_redis_failing_defers_a_take_and_ends_the_attempt_at_close() -> None:
    class Unreachable:
        async def queued_count(self, task_id: str) -> int:
            raise RedisConnectionError("down")

        async def close_inbox(self, task_id: str, attempt: int, given: int) -> bool:
            raise RedisConnectionError("down")

    inbox = TaskInbox(Unreachable(), "t", 1)  # type: ignore[arg-type]
    assert await inbox.take() == []  # given before a later turn, or before the end
    with pytest.raises(InboxUnavailable):
        await inbox.close()  # unknown whether a message must be answered: retry the task
