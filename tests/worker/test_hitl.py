"""Human in the loop with a real worker process (``agentstream worker --app``): a tool
call that needs approval parks the task (status ``waiting``, no worker slot held), input
over HTTP resumes it on a worker; denials, questions, deadlines and cancel while waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentstream import AgentStreamClient
from tests.api.helpers import sse_frames
from tests.api.server import Api
from tests.hitl import ASK, DELETE, events, submit, wait_status
from tests.processes import WorkerProcess


async def test_an_approval_waits_without_a_worker_and_resumes_once(api: Api, worker: WorkerProcess) -> None:
    async with api.client() as client:
        task_id = await submit(client, DELETE)
        reader = asyncio.create_task(events(client, task_id))  # stays connected through the wait
        await wait_status(client, worker, task_id, "waiting")
        meta = await api.services.store.meta(f"alice/{task_id}")
        assert meta is not None and [p["kind"] for p in meta.pending_input] == ["approval"]
        call_id = meta.pending_input[0]["tool_call_id"]

        # the one slot of the worker is free: another task runs to the end meanwhile
        other = await submit(client, "Hello")
        assert (await wait_status(client, worker, other, "succeeded"))["status"] == "succeeded"
        assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "waiting"

        wrong = await client.post(
            f"/v1/tasks/{task_id}/input", json={"approvals": [{"tool_call_id": "nope", "approved": True}]}
        )
        assert wrong.status_code == 409 and "no pending approval or question 'nope'" in wrong.text
        message = await client.post(f"/v1/tasks/{task_id}/input", json={"message": "yes"})
        assert message.status_code == 409 and "no question is pending" in message.text
        async with api.client(headers={"Authorization": "Bearer key-bob"}) as other_tenant:
            bob = await other_tenant.post(
                f"/v1/tasks/{task_id}/input",
                json={"approvals": [{"tool_call_id": call_id, "approved": True}]},
            )
        assert bob.status_code == 404

        body = {"approvals": [{"tool_call_id": call_id, "approved": True}]}
        headers = {"Idempotency-Key": "approve-1"}
        first = await client.post(f"/v1/tasks/{task_id}/input", json=body, headers=headers)
        again = await client.post(f"/v1/tasks/{task_id}/input", json=body, headers=headers)
        assert first.status_code == again.status_code == 200, first.text
        assert first.json()["pending"] == 0 and again.json()["seq"] == first.json()["seq"]

        seen = await asyncio.wait_for(reader, 60)
        late = await client.post(f"/v1/tasks/{task_id}/input", json=body)
        assert late.status_code == 409 and "not waiting" in late.text

    kinds = [e["type"] for e in seen]
    assert kinds[0] == "queued" and kinds[-1] == "completed" and seen[-1]["status"] == "succeeded", (
        worker.log()
    )
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert kinds.count("input") == 1 and kinds.count("approval_required") == 1
    wait = kinds.index("approval_required")
    assert kinds.index("tool_calls_ready") < wait < kinds.index("input") < kinds.index("retry")
    results = [e for e in seen if e["type"] == "tool_result"]
    assert len(results) == 1 and results[0]["result"] == "deleted /tmp/x"  # run once, after the input
    assert kinds.index("input") < kinds.index("tool_result")
    assert seen[wait]["parameters"] == {"path": "/tmp/x"} and seen[wait]["tool_name"] == "delete_file"
    assert "deleted /tmp/x" in next(e for e in seen if e["type"] == "result")["output"]


async def test_a_denied_call_reaches_the_model_and_a_question_gets_its_answer(
    api: Api, worker: WorkerProcess
) -> None:
    async with api.client() as client:
        denied = await submit(client, DELETE)
        asked = await submit(client, ASK, agent="hybrid")
        await wait_status(client, worker, denied, "waiting")
        await wait_status(client, worker, asked, "waiting")
        meta = await api.services.store.meta(f"alice/{denied}")
        assert meta is not None
        call_id = meta.pending_input[0]["tool_call_id"]
        refusal = {"approvals": [{"tool_call_id": call_id, "approved": False, "reason": "too risky"}]}
        assert (await client.post(f"/v1/tasks/{denied}/input", json=refusal)).status_code == 200

        sdk = AgentStreamClient(api.url, api_key="key-alice")
        async with sdk:
            answered = await sdk.respond(asked, message="blue")
        assert answered["status"] in ("queued", "running", "succeeded") and answered["pending"] == 0
        denied_events = await events(client, denied)
        asked_events = await events(client, asked)

    failure = next(e for e in denied_events if e["type"] == "tool_error")
    assert failure["error"] == "denied by the user: too risky"
    assert not any(e["type"] == "tool_result" and e.get("success") for e in denied_events)
    assert (
        "denied by the user: too risky" in next(e for e in denied_events if e["type"] == "result")["output"]
    )
    question = next(e for e in asked_events if e["type"] == "input_required")
    assert question["prompt"] == "Which colour?"
    assert next(e for e in asked_events if e["type"] == "input")["message"] == "blue"
    assert next(e for e in asked_events if e["type"] == "tool_result")["result"] == "blue"
    assert asked_events[-1]["status"] == "succeeded", worker.log()


async def test_a_wait_past_its_deadline_ends_and_cancel_works_while_waiting(
    api: Api, worker: WorkerProcess
) -> None:
    async with api.client() as client:
        late = await submit(client, DELETE, input_timeout_s=1)
        cancelled = await submit(client, DELETE)
        await wait_status(client, worker, cancelled, "waiting")
        assert (await client.post(f"/v1/tasks/{cancelled}/cancel")).json()["status"] == "cancelled"
        ended = await wait_status(client, worker, late, "failed")
        late_events = await events(client, late)
        cancel_events = await events(client, cancelled)
        refused = await client.post(f"/v1/tasks/{late}/input", json={"message": "too late"})
    assert ended["error"]["error_type"] == "InputTimeout"
    assert [e["type"] for e in late_events][-3:] == ["approval_required", "error", "completed"]
    assert [e["seq"] for e in late_events] == list(range(1, len(late_events) + 1))
    assert [e["type"] for e in cancel_events][-2:] == ["cancelled", "completed"]
    assert cancel_events[-1]["status"] == "cancelled"
    assert refused.status_code == 409


async def test_calls_of_one_turn_wait_together_and_a_partial_answer_keeps_waiting(
    api: Api, worker: WorkerProcess
) -> None:
    async with api.client() as client:
        # current_time needs approval in this task only (the request's approve_tools)
        text = "Two things [call:delete_file:path=/a][call:current_time]"
        task_id = await submit(client, text, approve_tools=["current_time"])
        await wait_status(client, worker, task_id, "waiting")
        meta = await api.services.store.meta(f"alice/{task_id}")
        assert meta is not None and len(meta.pending_input) == 2
        first, second = (item["tool_call_id"] for item in meta.pending_input)

        one = {"approvals": [{"tool_call_id": first, "approved": False}]}
        partial = await client.post(f"/v1/tasks/{task_id}/input", json=one)
        assert partial.status_code == 200 and partial.json() == {
            **partial.json(),
            "pending": 1,
            "status": "waiting",
        }
        again = await client.post(f"/v1/tasks/{task_id}/input", json=one)
        assert again.status_code == 409 and "no pending approval" in again.text
        assert (await client.get(f"/v1/tasks/{task_id}")).json()["status"] == "waiting"

        rest = {"approvals": [{"tool_call_id": second, "approved": True}]}
        assert (await client.post(f"/v1/tasks/{task_id}/input", json=rest)).json()["pending"] == 0
        seen = await events(client, task_id)

    kinds = [e["type"] for e in seen]
    assert kinds.count("approval_required") == 2 and kinds.count("input") == 2 and kinds.count("retry") == 1
    outcomes = {e["tool_call_id"]: e for e in seen if e["type"] in ("tool_result", "tool_error")}
    assert outcomes[first]["error"] == "denied by the user"
    assert outcomes[second]["type"] == "tool_result" and outcomes[second]["success"] is True
    assert seen[-1]["status"] == "succeeded", worker.log()


async def test_a_worker_killed_after_the_input_loses_nothing_and_runs_the_tool_once(
    api: Api, start_worker: Callable[[str], WorkerProcess]
) -> None:
    first = start_worker("first")
    async with api.client() as client:
        # [slow:300] [tokens:12]: the answer after the tool streams for 3.6 s, so the kill
        # lands mid-answer even if this test is held up a few seconds after the first token
        task_id = await submit(client, f"{DELETE} [slow:300] [tokens:12]")
        await wait_status(client, first, task_id, "waiting")
        meta = await api.services.store.meta(f"alice/{task_id}")
        assert meta is not None
        body = {"approvals": [{"tool_call_id": meta.pending_input[0]["tool_call_id"], "approved": True}]}
        assert (await client.post(f"/v1/tasks/{task_id}/input", json=body)).status_code == 200
        async with asyncio.timeout(45):  # the resumed attempt ran the tool and is answering
            while True:
                if await _answering(api, task_id):
                    break
                await asyncio.sleep(0.02)
        first.kill()
        start_worker("second")
        seen = await events(client, task_id)
    kinds = [e["type"] for e in seen]
    assert kinds.count("completed") == 1 and seen[-1]["status"] == "succeeded", kinds
    assert kinds.count("tool_result") == 1 and kinds.count("retry") == 2  # after the input, after the kill
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))


async def _answering(api: Api, task_id: str) -> bool:
    """Whether a token was stored after the task's ``tool_result`` (polled: a worker's)."""
    kinds = [event["type"] async for _, event in api.services.reader.replay(f"alice/{task_id}")]
    return "tool_result" in kinds and "token" in kinds[kinds.index("tool_result") :]


async def test_an_answer_sent_the_moment_the_wait_is_seen_is_taken_while_the_turn_runs(
    api: Api, worker: WorkerProcess, tmp_path: Path
) -> None:
    """The approval is announced, then the turn's other call runs (here until a file
    appears): an answer sent meanwhile is taken (the task is not parked yet), and the
    attempt hands the task on instead of parking it."""
    gate = tmp_path / "gate"
    async with api.client() as client:
        task_id = await submit(client, f"Both [call:delete_file:path=/tmp/y][call:wait_for_file:path={gate}]")
        seen: list[dict[str, Any]] = []
        url = f"/v1/tasks/{task_id}/events"
        async with asyncio.timeout(90), client.stream("GET", url, params={"mode": "all"}) as response:
            async for frame in sse_frames(response):
                if frame.data is None:
                    continue  # a ping
                seen.append(frame.json)
                if frame.json["type"] == "approval_required":
                    body = {"approvals": [{"tool_call_id": frame.json["tool_call_id"], "approved": True}]}
                    taken = await client.post(f"/v1/tasks/{task_id}/input", json=body)
                    assert taken.status_code == 200, taken.text
                    assert taken.json()["pending"] == 0 and taken.json()["status"] == "running"
                    gate.touch()  # only now may the turn's other call end
    kinds = [e["type"] for e in seen]
    assert kinds[-1] == "completed" and seen[-1]["status"] == "succeeded", worker.log()
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert kinds.count("approval_required") == kinds.count("input") == 1
    results = {e["tool_name"]: e["result"] for e in seen if e["type"] == "tool_result"}
    assert results == {"delete_file": "deleted /tmp/y", "wait_for_file": "there"}  # each run once
    assert kinds.index("approval_required") < kinds.index("input") < kinds.index("retry")
