"""The SDK against the real API: an arq worker and the scripted model behind it, on the
suite's Redis (the ``stack`` fixture)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agentstream.events import Completed, Queued, Token, ToolResult, UnknownEvent
from agentstream.sdk import AgentStreamClient, AgentStreamError
from tests.sdk.conftest import FAST

# arq's Worker.close() calls redis-py's deprecated close() when the real stack stops.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


async def test_end_to_end_against_the_real_api(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        task = await client.submit("What is 17 * 23?", agent="hybrid")
        events = [e async for e in client.events(task["task_id"], mode="all")]
        replayed = [e async for e in client.events(task["task_id"], mode="all", after="0")]
        paged = [e async for e in client.replay(task["task_id"], mode="all", page_size=5)]
        status = await client.get(task["task_id"])
    assert events[0]["type"] == "queued" and events[-1]["type"] == "completed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["id"] for e in replayed] == [e["id"] for e in events] == [e["id"] for e in paged]
    assert "391" in "".join(e.get("content", "") for e in events if e["type"] == "token")
    assert status["status"] in {"succeeded", "completed"}


async def test_real_api_resumes_from_the_last_cursor(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        task = await client.submit("[slow:20] What is 17 * 23?", agent="hybrid", idempotency_key="resume-1")
        first: list[dict[str, Any]] = []
        async for event in client.events(task["task_id"], mode="all"):
            first.append(event)
            if len(first) == 4:
                break  # the consumer goes away mid-stream
        rest = [e async for e in client.events(task["task_id"], mode="all", after=first[-1]["id"])]
    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    assert rest[-1]["type"] == "completed"


async def test_real_api_errors_are_typed(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        with pytest.raises(AgentStreamError) as missing:
            await client.get("no_such_task")
        with pytest.raises(AgentStreamError) as bad_mode:
            [e async for e in client.events("no_such_task", mode="loud")]
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert "no_such_task" in missing.value.message
    assert bad_mode.value.status in {400, 404}  # unknown task or unknown mode: both refused, no retry
    async with AgentStreamClient(url, "wrong-key", backoff=FAST) as client:
        with pytest.raises(AgentStreamError) as unauthorised:
            await client.get("no_such_task")
    assert (unauthorised.value.status, unauthorised.value.code) == (401, "unauthorized")


async def test_real_api_group_delivery_and_ack(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        task = await client.submit("What is 17 * 23?", agent="hybrid")
        delivered = [e async for e in client.group_events(task["task_id"], "audit", "c1", mode="all")]
        acked = await client.ack(task["task_id"], "audit", [e["id"] for e in delivered])
        groups = await client.groups(task["task_id"])
    assert delivered[0]["seq"] == 1 and delivered[-1]["type"] == "completed"
    assert 0 <= acked <= len(delivered)
    assert "audit" in json.dumps(groups)


async def test_two_sdk_group_consumers_both_end_cleanly(stack: tuple[str, str]) -> None:
    """The consumer that does not receive ``completed`` ends on the server's ``drained``
    frame, instead of reconnecting until it gives up."""
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        task = await client.submit("What is 17 * 23?", agent="hybrid")
        task_id = task["task_id"]

        async def consume(name: str) -> list[dict[str, Any]]:
            got = []
            async for event in client.group_events(task_id, "split", name, mode="all"):
                got.append(event)
                await client.ack(task_id, "split", [event["id"]])
            return got

        first, second = await asyncio.wait_for(asyncio.gather(consume("a"), consume("b")), 60)
    ids = [e["id"] for e in first + second]
    assert len(ids) == len(set(ids))
    assert [e["type"] for e in first + second].count("completed") == 1


async def test_typed_events_from_a_real_run(stack: tuple[str, str]) -> None:
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        task = await client.submit("What is 17 * 23?", agent="hybrid")
        typed = [e async for e in client.events(task["task_id"], mode="all", typed=True)]
        plain = [e async for e in client.events(task["task_id"], mode="all")]
    assert isinstance(typed[0], Queued) and isinstance(typed[-1], Completed)
    assert not any(isinstance(e, UnknownEvent) for e in typed)
    result = next(e for e in typed if isinstance(e, ToolResult))
    assert (result.tool_name, result.result, result.success) == ("calculator", 391, True)
    assert "391" in "".join(e.content for e in typed if isinstance(e, Token))
    assert [e.id for e in typed] == [e["id"] for e in plain]


async def test_submit_with_a_workflow_runs_its_steps_first(stack: tuple[str, str]) -> None:
    url, key = stack
    workflow = "# Plan first\n\n1. List what the task needs.\n2. Say how to check the answer.\n"
    async with AgentStreamClient(url, key, backoff=FAST) as client:
        task = await client.submit("What is 17 * 23?", agent="hybrid", workflow=workflow)
        events = [e async for e in client.events(task["task_id"], mode="all")]
        dawp = [e async for e in client.events(task["task_id"], mode="all", scope="dawp")]
    kinds = [e["type"] for e in events]
    last_step = len(kinds) - 1 - kinds[::-1].index("dawp_step_completed")
    assert kinds.index("dawp_step_started") < last_step < kinds.index("tool_call")
    assert "dawp_run_started" not in kinds  # boundary events are off unless asked, as in the seed
    steps = [e["step_id"] for e in events if e["type"] == "dawp_step_completed"]
    assert len(steps) == 2
    assert all(e["loop_scope"]["kind"] == "dawp" for e in dawp if e["type"] not in ("completed", "error"))
    assert events[-1]["status"] == "succeeded"


async def test_resuming_after_completed_ends_at_once(stack: tuple[str, str]) -> None:
    """The server answers 204 to a cursor at a finished stream's end: nothing more will
    come, so the iterator ends without a reconnect (a lost connection right after
    ``completed`` is resumed exactly there)."""
    url, key = stack
    async with AgentStreamClient(url, key, backoff=FAST, max_reconnects=0) as client:
        task = await client.submit("hi", agent="llm")
        events = [e async for e in client.events(task["task_id"], mode="all")]
        assert events[-1]["type"] == "completed"
        async with asyncio.timeout(10):
            assert [e async for e in client.events(task["task_id"], after=events[-1]["id"])] == []
