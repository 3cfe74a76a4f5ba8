"""``POST /v1/tasks/{id}/input`` without a worker: bodies, refusals with their reason,
which question a message answers, and that only an API key may answer."""

from __future__ import annotations

import httpx

from tests.api.server import Api, submit

PENDING = [{"tool_call_id": "c1", "kind": "approval"}, {"tool_call_id": "c2", "kind": "question"}]


async def park(api: Api, task_id: str) -> None:
    """Make the queued task wait on ``PENDING``, as an attempt that asked would."""
    store = api.services.store
    attempt = await store.open_attempt(f"alice/{task_id}")
    async with store.writer(attempt) as writer:
        await writer.append(
            {"type": "approval_required", "tool_call_id": "c1", "tool_name": "rm", "parameters": {}}
        )
        await writer.append({"type": "input_required", "tool_call_id": "c2", "prompt": "which?"})
        await writer.flush()
    assert await store.set_waiting(attempt, PENDING, "2030-01-01T00:00:00+00:00")


async def test_bodies_and_refusals(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice, "hello")
    url = f"/v1/tasks/{task_id}/input"
    for body in ({}, {"message": "x", "approvals": [{"tool_call_id": "c1", "approved": True}]}, {"other": 1}):
        assert (await alice.post(url, json=body)).status_code in (400, 422), body
    queued = await alice.post(url, json={"approvals": [{"tool_call_id": "c1", "approved": True}]})
    assert queued.status_code == 409 and "not waiting for input (its status is queued)" in queued.text
    assert (await alice.post("/v1/tasks/nope/input", json={"message": "x"})).status_code == 404

    await park(api, task_id)
    mixed = await alice.post(url, json={"approvals": [{"tool_call_id": "c2", "approved": True}]})
    assert mixed.status_code == 409 and "'c2' is a question" in mixed.text
    wrong = await alice.post(url, json={"message": "x", "tool_call_id": "c1"})
    assert wrong.status_code == 409 and "waits for an approval" in wrong.text
    answered = await alice.post(url, json={"message": "blue"})  # the oldest question: c2
    assert answered.status_code == 200 and answered.json()["pending"] == 1
    assert answered.json()["status"] == "waiting"
    again = await alice.post(url, json={"message": "red"})
    assert again.status_code == 409 and "no question is pending" in again.text
    meta = await api.services.store.meta(f"alice/{task_id}")
    assert meta is not None and meta.pending_input == PENDING[:1]


async def test_only_the_owner_with_a_key_answers(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, api: Api
) -> None:
    task_id = await submit(alice, "hello")
    await park(api, task_id)
    body = {"approvals": [{"tool_call_id": "c1", "approved": True}]}
    assert (await bob.post(f"/v1/tasks/{task_id}/input", json=body)).status_code == 404
    async with httpx.AsyncClient(base_url=api.url, timeout=10.0) as viewer:
        assert (await viewer.post("/ui/session", json={"api_key": "key-alice"})).status_code in (200, 204)
        refused = await viewer.post(f"/v1/tasks/{task_id}/input", json=body)
    assert refused.status_code in (401, 403)
    meta = await api.services.store.meta(f"alice/{task_id}")
    assert meta is not None and meta.status == "waiting" and len(meta.pending_input) == 2
