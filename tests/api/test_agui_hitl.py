"""AG-UI interrupts: a run whose task waits for a person ends with the interrupt outcome,
and the next run answers it with ``resume`` and continues the same task. Driven by the
stock ``@ag-ui/client`` ``HttpAgent`` (tests/node/agui_hitl.mjs) against the API and a real
worker process; the route's rules over plain HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agui_node import RUN_TIMEOUT_S, run_script
from tests.api.helpers import read_sse, sse_frames
from tests.api.server import BOB, Api
from tests.hitl import ASK, DELETE, wait_status
from tests.processes import WorkerProcess

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


async def http_agent(api: Api, prompt: str, **env: str) -> dict[str, Any]:
    """Run ``tests/node/agui_hitl.mjs``: one HttpAgent, runs until one ends without an
    interrupt."""
    return await run_script("agui_hitl.mjs", prompt, api_url=api.url, timeout_s=RUN_TIMEOUT_S * 2, **env)


def tool_messages(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in result["messages"] if m["role"] == "tool"]


async def test_an_approval_ends_the_run_as_an_interrupt_and_resume_continues_the_task(
    hitl_stack: tuple[Api, WorkerProcess], node_modules: Path
) -> None:
    api, worker = hitl_stack
    result = await http_agent(api, DELETE)
    first, second = result["runs"]
    assert first["outcome"] == "interrupt" and first["events"][-1] == "RUN_FINISHED", first
    (interrupt,) = first["interrupts"]
    task_id, call_id = interrupt["id"].split(":", 1)
    assert interrupt["reason"] == "tool_call" and interrupt["toolCallId"] == call_id
    assert interrupt["responseSchema"]["required"] == ["approved"]
    assert interrupt["metadata"]["agentstream"] == {
        "tool_name": "delete_file",
        "parameters": {"path": "/tmp/x"},
    }
    assert "TOOL_CALL_START" in first["events"] and "TOOL_CALL_RESULT" not in first["events"]
    # the continuation: the client's own run id, the result of the original call, success
    assert second["outcome"] == "success" and second["runId"] != task_id, second
    assert second["events"][0] == "RUN_STARTED" and second["events"][-1] == "RUN_FINISHED"
    assert "TOOL_CALL_START" not in second["events"] and "TOOL_CALL_RESULT" in second["events"]
    (tool,) = tool_messages(result)
    assert tool["toolCallId"] == call_id and tool["content"] == "deleted /tmp/x"
    assert "deleted /tmp/x" in str(second["result"])
    async with api.client() as client:
        await wait_status(client, worker, task_id, "succeeded")
        events = await read_sse(client, f"/v1/tasks/{task_id}/events", params={"mode": "all"})
    kinds = [f.json["type"] for f in events]
    assert kinds.count("input") == 1 and kinds.count("tool_result") == 1, kinds


async def test_a_question_is_answered_by_resume_and_abandoning_it_cancels(
    hitl_stack: tuple[Api, WorkerProcess], node_modules: Path
) -> None:
    api, _ = hitl_stack
    answered = await http_agent(api, ASK, AGUI_REPLY="blue")
    abandoned = await http_agent(api, ASK, AGUI_CANCEL="1")
    (interrupt,) = answered["runs"][0]["interrupts"]
    assert interrupt["reason"] == "input_required" and interrupt["message"] == "Which colour?"
    assert answered["runs"][1]["outcome"] == "success"
    assert [m["content"] for m in tool_messages(answered)] == ["blue"]
    assert [run["outcome"] for run in abandoned["runs"]] == ["interrupt", "cancelled"]


async def test_a_frontend_names_the_tools_that_need_approval(
    hitl_stack: tuple[Api, WorkerProcess], node_modules: Path
) -> None:
    api, _ = hitl_stack
    result = await http_agent(api, "What is 17 * 23?", AGUI_APPROVE="calculator")
    first, second = result["runs"]
    assert first["outcome"] == "interrupt" and first["interrupts"][0]["metadata"]["agentstream"][
        "tool_name"
    ] == ("calculator")
    assert second["outcome"] == "success" and "391" in str(second["result"])


async def post_run(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    async with client.stream("POST", "/v1/ag-ui", json=body) as response:
        assert response.status_code == 200, await response.aread()
        return [f.json async for f in sse_frames(response) if f.comment is None]


def run_input(thread: str, run: str, text: str | None = None, resume: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "threadId": thread, "runId": run, "state": {}, "tools": [], "context": [],
        "forwardedProps": {"agent": "hybrid"},
        "messages": [{"id": "u1", "role": "user", "content": text or "hi"}],
    }  # fmt: skip
    if resume is not None:
        body["resume"] = resume
    return body


async def test_resume_over_http_denies_replays_safely_and_refuses_what_is_not_an_answer(
    hitl_stack: tuple[Api, WorkerProcess],
) -> None:
    api, worker = hitl_stack
    async with api.client() as client:
        first = await post_run(client, run_input("th-deny", "run-deny", DELETE))
        finished = first[-1]
        assert finished["type"] == "RUN_FINISHED" and finished["outcome"]["type"] == "interrupt"
        interrupt = finished["outcome"]["interrupts"][0]
        # a reader reconnecting to the waiting run gets the same interrupt again
        again = await read_sse(client, "/v1/tasks/run-deny/events", params={"format": "ag-ui"})
        assert again[-1].json["outcome"]["interrupts"] == [interrupt]

        entry = {"interruptId": interrupt["id"], "status": "resolved", "payload": {"approved": False}}
        refused = await client.post(
            "/v1/ag-ui", json=run_input("th-deny", "run-2", resume=[{**entry, "payload": "yes"}])
        )
        assert refused.status_code == 422 and "approved" in refused.text
        wrong_thread = await client.post("/v1/ag-ui", json=run_input("th-other", "run-2", resume=[entry]))
        assert wrong_thread.status_code == 422 and "thread" in wrong_thread.text
        foreign = await client.post("/v1/ag-ui", json=run_input("th-deny", "run-2", resume=[
            {**entry, "interruptId": "not-ours"}]))  # fmt: skip
        assert foreign.status_code == 422
        async with api.client(BOB) as bob:
            other = await bob.post("/v1/ag-ui", json=run_input("th-deny", "run-2", resume=[entry]))
        assert other.status_code == 404

        second = await post_run(client, run_input("th-deny", "run-2", resume=[entry]))
        replayed = await post_run(client, run_input("th-deny", "run-3", resume=[entry]))
        await wait_status(client, worker, "run-deny", "succeeded")
        events = [f.json for f in await read_sse(client, "/v1/tasks/run-deny/events", params={"mode": "all"})]
    assert second[0]["type"] == "RUN_STARTED" and second[0]["runId"] == "run-2"
    result = next(e for e in second if e["type"] == "TOOL_CALL_RESULT")
    assert result["toolCallId"] == interrupt["toolCallId"] and "denied by the user" in result["content"]
    assert second[-1]["type"] == "RUN_FINISHED" and second[-1]["runId"] == "run-2"
    # the replayed resume recorded nothing new and streams the same continuation
    assert [e["type"] for e in events].count("input") == 1
    assert [e["type"] for e in replayed] == [e["type"] for e in second]
