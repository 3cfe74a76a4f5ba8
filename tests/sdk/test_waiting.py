"""``streaming_run`` through a wait for a person, against the real API and worker: the
waiting call arrives as a ``HumanMessage`` in every mode, it is answered on the message,
and the same iteration goes on to the end with every event once."""

from __future__ import annotations

import contextlib
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentstream.sdk import (
    AgentStreamClient,
    AgentStreamError,
    HumanMessage,
    Message,
    PendingApproval,
    PendingQuestion,
    TaskFailed,
    TaskWaiting,
    TopicType,
)
from tests.hitl import ASK, DELETE, HITL_APP
from tests.sdk.conftest import FAST

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


@pytest.fixture(scope="module")
async def hitl_stack(redis_url: str) -> AsyncIterator[tuple[str, str]]:
    """API and worker in this loop serving ``tests/hitl_app.py``."""
    from agentstream.cli.stack import running_stack
    from agentstream.worker.scripted_llm import ScriptedLLMServer

    async with contextlib.AsyncExitStack() as resources:
        llm = await resources.enter_async_context(ScriptedLLMServer())
        yield await resources.enter_async_context(
            running_stack(
                redis_url,
                model_base_url=llm.base_url,
                prefix=f"t{uuid.uuid4().hex[:8]}",
                app=HITL_APP,
            )
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await resources.aclose()


async def run_answering(
    client: AgentStreamClient, prompt: str, decide: Any, **options: Any
) -> list[Message[Any]]:
    """Every message of one ``streaming_run``, answering each wait with ``decide(msg)``."""
    seen: list[Message[Any]] = []
    async for msg in client.streaming_run(prompt, **options):
        seen.append(msg)
        if isinstance(msg, HumanMessage):
            await decide(msg)
    return seen


@pytest.mark.parametrize("mode", ["core", "chunk", "output"])
async def test_an_approval_arrives_typed_in_every_mode_and_the_stream_goes_on(
    hitl_stack: tuple[str, str], mode: str
) -> None:
    url, key = hitl_stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        seen = await run_answering(
            client, "What is 17 * 23?", lambda msg: msg.approve(), approve_tools=["calculator"],
            streaming_mode=mode,
        )  # fmt: skip
    waits = [m for m in seen if isinstance(m, HumanMessage)]
    assert len(waits) == 1 and waits[0].topic == TopicType.HUMAN_CONFIRM and waits[0].category == "human"
    pending = waits[0].payload
    assert isinstance(pending, PendingApproval) and pending.tool_name == "calculator"
    assert pending.tool_call_id and "17" in str(pending.parameters)
    response = seen[-1]
    assert response.topic == TopicType.TASK_RESPONSE and response.payload.success, response
    assert "391" in str(response.payload.answer)
    ids = [m.id for m in seen]
    assert len(ids) == len(set(ids)), "an event came twice"
    seqs = [m.seq for m in seen if m.seq is not None]
    assert seqs == sorted(seqs)
    if mode == "core":
        kinds = [m.type for m in seen]
        assert kinds.index("approval_required") < kinds.index("input") < kinds.index("retry")
        assert any(m.topic == TopicType.HUMAN_RESPONSE for m in seen)
        results = [m for m in seen if m.topic == TopicType.TOOL_RESULT]
        assert len(results) == 1 and results[0].payload.action_result[0].success


async def test_a_denial_and_an_answer_reach_the_agent(hitl_stack: tuple[str, str]) -> None:
    url, key = hitl_stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        denied = await run_answering(client, DELETE, lambda msg: msg.deny("too risky"))
        answered = await run_answering(client, ASK, lambda msg: msg.answer("blue"))
    failure = next(m for m in denied if m.topic == TopicType.TOOL_RESULT)
    assert failure.payload.action_result[0].error == "denied by the user: too risky"
    assert denied[-1].payload.success
    question = next(m for m in answered if isinstance(m, HumanMessage))
    assert isinstance(question.payload, PendingQuestion) and question.payload.prompt == "Which colour?"
    with pytest.raises(TypeError):
        await question.approve()
    result = next(m for m in answered if m.topic == TopicType.TOOL_RESULT)
    assert result.payload.action_result[0].content == "blue"
    assert answered[-1].payload.success


async def test_raw_events_and_a_late_answer_are_refused_clearly(hitl_stack: tuple[str, str]) -> None:
    url, key = hitl_stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        events: list[dict[str, Any]] = []
        async for event in client.streaming_run(
            "What is 17 * 23?", raw=True, approve_tools=["calculator"], streaming_mode="chunk"
        ):
            events.append(event)
            if event["type"] == "approval_required":
                # answered the moment it is seen: the attempt may not have parked the task yet
                decision = {"tool_call_id": event["tool_call_id"], "approved": True}
                await client.respond(event["task_id"], approvals=[decision])
        with pytest.raises(AgentStreamError) as late:
            await client.respond(events[0]["task_id"], approvals=[decision])
    assert events[-1]["type"] == "completed" and events[-1]["status"] == "succeeded"
    assert late.value.status == 409


async def test_the_remote_agent_s_event_stream_waits_and_goes_on(hitl_stack: tuple[str, str]) -> None:
    url, key = hitl_stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        agent = client.agent("hybrid")
        events: list[dict[str, Any]] = []
        async for event in agent.execute_task_streaming(
            {"description": "What is 17 * 23?"}, {"approve_tools": ["calculator"], "sender_id": "u1"}
        ):
            events.append(event)
            if event["type"] == "approval_required":
                with pytest.raises(TypeError):
                    await agent.answer(event, "no")
                assert (await agent.approve(event))["pending"] == 0
        with pytest.raises(ValueError):
            await agent.approve(events[0])
    kinds = [e["type"] for e in events]
    assert kinds[0] == "queued" and kinds[-1] == "completed" and events[-1]["status"] == "succeeded"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert kinds.index("approval_required") < kinds.index("input") < kinds.index("tool_result")


async def test_the_remote_agent_s_token_stream_asks_on_wait_or_raises(hitl_stack: tuple[str, str]) -> None:
    url, key = hitl_stack
    asked: list[HumanMessage] = []

    async def on_wait(msg: HumanMessage) -> None:
        asked.append(msg)
        await msg.answer("blue")

    async with AgentStreamClient(url, key, backoff=FAST) as client:
        agent = client.agent("hybrid")
        tokens = [t async for t in agent.process_message_streaming(ASK, sender_id="u2", on_wait=on_wait)]
        with pytest.raises(TaskWaiting) as waiting:
            async for _ in agent.process_message_streaming(DELETE, sender_id="u3"):
                pass
        assert isinstance(waiting.value.waiting.payload, PendingApproval)
        await waiting.value.waiting.deny("not now")
        rest = [e async for e in client.events(waiting.value.task_id, after=waiting.value.cursor)]
        with pytest.raises(TaskFailed):
            async for _ in agent.process_message_streaming("[fail:400] boom", sender_id="u4"):
                pass
    assert [m.payload.prompt for m in asked] == ["Which colour?"]  # type: ignore[union-attr]
    assert "".join(tokens)
    assert rest[0]["type"] == "input" and rest[-1]["status"] == "succeeded"
    assert next(e for e in rest if e["type"] == "tool_error")["error"] == "denied by the user: not now"
