"""Submitting, reading and cancelling tasks over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from agentstream.streams import StreamsSettings, TaskStore
from agentstream.worker.payload import JOB_NAME, MAX_INPUT_CHARS
from tests.api.helpers import completed, key_id, result, run_worker, tokens
from tests.api.server import Api, api_settings, serve, submit


async def test_submit_creates_the_task_and_enqueues_its_job(alice: httpx.AsyncClient, api: Api) -> None:
    response = await alice.post(
        "/v1/tasks", json={"input": "what is 2+2?", "agent": "hybrid", "tools": ["calculator"]}
    )
    assert response.status_code == 202
    body = response.json()
    task_id = body["task_id"]
    assert task_id.startswith("tsk_") and len(task_id) == 36
    assert body == {"task_id": task_id, "status": "queued", "events_url": f"/v1/tasks/{task_id}/events"}
    svc = api.services
    meta = await svc.store.meta(key_id(task_id))
    assert meta is not None and meta.owner == "alice" and meta.agent == "hybrid"
    assert meta.request["tools"] == ["calculator"] and meta.request["input"] == "what is 2+2?"
    queued = [e async for _, e in svc.reader.replay(key_id(task_id))]
    assert [e["type"] for e in queued] == ["queued"]
    # the arq job: named JOB_NAME, its one argument the key id, its job id the key id
    pool = svc.queue.pool
    scoped = key_id(task_id)
    assert scoped == f"alice/{task_id}"
    assert await pool.zscore(api.settings.resolved_queue_name, scoped) is not None
    jobs = await pool.queued_jobs(queue_name=api.settings.resolved_queue_name)
    assert [(j.function, j.args, j.job_id) for j in jobs] == [(JOB_NAME, (scoped,), scoped)]


async def test_a_repeated_task_id_returns_the_existing_task(alice: httpx.AsyncClient, api: Api) -> None:
    first = await alice.post("/v1/tasks", json={"input": "one", "task_id": "my-task-1"})
    again = await alice.post("/v1/tasks", json={"input": "two", "task_id": "my-task-1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json() == again.json()
    assert first.json()["task_id"] == "my-task-1"
    replayed = [e async for _, e in api.services.reader.replay(key_id("my-task-1"))]
    assert [e["input"] for e in replayed] == ["one"]
    jobs = await api.services.queue.pool.queued_jobs(queue_name=api.settings.resolved_queue_name)
    assert len(jobs) == 1


async def test_idempotency_key_header_is_the_task_id(alice: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await alice.post("/v1/tasks", json={"input": "x"}, headers=headers)
    again = await alice.post("/v1/tasks", json={"input": "x"}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["task_id"] == again.json()["task_id"] == "order-42"
    bad = await alice.post("/v1/tasks", json={"input": "x"}, headers={"Idempotency-Key": "no spaces!"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
    clash = await alice.post(
        "/v1/tasks", json={"input": "x", "task_id": "a"}, headers={"Idempotency-Key": "b"}
    )
    assert clash.status_code == 400


async def test_task_ids_belong_to_their_tenant(
    api: Api, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    first = await alice.post("/v1/tasks", json={"input": "secret plan", "task_id": "shared-id"})
    response = await bob.post("/v1/tasks", json={"input": "mine", "task_id": "shared-id"})
    assert (first.status_code, response.status_code) == (202, 202)
    assert response.json() == first.json()  # the same answer a fresh id gets: bob's own task
    again = await bob.post("/v1/tasks", json={"input": "other"}, headers={"Idempotency-Key": "shared-id"})
    assert again.status_code == 200 and "secret" not in again.text
    for client, text in ((alice, "secret plan"), (bob, "mine")):
        events = (
            await client.get("/v1/tasks/shared-id/events", headers={"Accept": "application/json"})
        ).json()
        assert [e["input"] for e in events["events"]] == [text]
        assert events["events"][0]["task_id"] == "shared-id"


async def test_input_above_the_limit_is_413(alice: httpx.AsyncClient) -> None:
    response = await alice.post("/v1/tasks", json={"input": "x" * (MAX_INPUT_CHARS + 1)})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    ok = await alice.post("/v1/tasks", json={"input": "x" * MAX_INPUT_CHARS})
    assert ok.status_code == 202


async def test_a_body_above_the_byte_limit_is_refused_before_parsing(
    settings: StreamsSettings, redis: Any
) -> None:
    async with serve(api_settings(settings, max_body_bytes=4096)) as api, api.client() as client:
        big = orjson.dumps({"input": "y" * 5000})
        declared = await client.post("/v1/tasks", content=big, headers={"content-type": "application/json"})
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "payload_too_large"

        async def chunks() -> Any:
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]

        chunked = await client.post(
            "/v1/tasks", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        assert chunked.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"input": ""},
        {"input": "x", "agent": "wiz ard"},
        {"input": "x", "unknown_field": 1},
        {"input": "x", "max_iterations": 0},
        {"input": "x", "task_id": "bad id"},
        {"input": "x", "task_id": "a" * 65},
        {"input": 5},
    ],
)
async def test_an_invalid_body_is_422(alice: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await alice.post("/v1/tasks", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_body"
    assert response.json()["error"]["message"]


async def test_malformed_json_is_422(alice: httpx.AsyncClient) -> None:
    response = await alice.post(
        "/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_body"


async def test_submits_beyond_the_rate_limit_are_429(settings: StreamsSettings, redis: Any) -> None:
    limited = serve(api_settings(settings, rate_limit_per_min=3))
    async with limited as api, api.client() as alice, api.client({"Authorization": "Bearer key-bob"}) as bob:
        codes = [(await alice.post("/v1/tasks", json={"input": "x"})).status_code for _ in range(4)]
        assert codes == [202, 202, 202, 429]
        refused = await alice.post("/v1/tasks", json={"input": "x"})
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        # per tenant: bob still has his budget
        assert (await bob.post("/v1/tasks", json={"input": "x"})).status_code == 202
        metrics = (await alice.get("/metrics")).text
        assert "agentstream_rate_limited_total 2" in metrics


async def test_get_task_reports_status_times_and_result(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice, "hi")
    queued = (await alice.get(f"/v1/tasks/{task_id}")).json()
    assert queued["status"] == "queued" and queued["attempt"] == 0 and not queued["done"]
    assert queued["created_at"] and queued["started_at"] is None and queued["result"] is None
    await run_worker(api.services.store, task_id, [*tokens(3), result("four"), completed()])
    done = (await alice.get(f"/v1/tasks/{task_id}")).json()
    assert done["status"] == "succeeded" and done["done"] and done["attempt"] == 1
    assert done["started_at"] and done["ended_at"]
    assert done["result"]["output"] == "four" and done["result"]["type"] == "result"
    assert done["error"] is None
    assert done["events_url"] == f"/v1/tasks/{task_id}/events"


async def test_get_task_reports_the_error_of_a_failed_task(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    failure = {"type": "error", "error": "model down", "error_type": "ModelError", "retryable": False}
    await run_worker(api.services.store, task_id, [failure, completed("failed")])
    body = (await alice.get(f"/v1/tasks/{task_id}")).json()
    assert body["status"] == "failed"
    assert body["error"]["error"] == "model down" and body["result"] is None


async def test_cancel_is_accepted_and_idempotent(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    first = await alice.post(f"/v1/tasks/{task_id}/cancel")
    second = await alice.post(f"/v1/tasks/{task_id}/cancel")
    assert first.status_code == second.status_code == 202
    assert first.json() == {"task_id": task_id, "status": "cancelled", "cancel_requested": True}
    meta = await api.services.store.meta(key_id(task_id))
    assert meta is not None and meta.cancel_requested
    assert (await alice.get(f"/v1/tasks/{task_id}")).json()["cancel_requested"] is True


async def test_cancel_of_a_running_task_never_aborts_its_arq_job(alice: httpx.AsyncClient, api: Api) -> None:
    """arq drops an aborted job that is between attempts without running it, and the stream
    would then never get its ``completed``: the worker's own watcher does the cancelling."""
    task_id = await submit(alice)
    store: TaskStore = api.services.store
    await store.open_attempt(key_id(task_id))  # running, as a worker would have it
    response = await alice.post(f"/v1/tasks/{task_id}/cancel")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    assert await api.services.queue.pool.zscore("arq:abort", task_id) is None
    assert await store.cancel_requested(key_id(task_id))


async def test_cancel_of_a_finished_task_changes_nothing(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    await run_worker(api.services.store, task_id, [completed()])
    response = await alice.post(f"/v1/tasks/{task_id}/cancel")
    assert response.status_code == 202
    assert response.json() == {"task_id": task_id, "status": "succeeded", "cancel_requested": False}


async def test_unknown_task_is_404_in_the_error_shape(alice: httpx.AsyncClient) -> None:
    for path in ("/v1/tasks/nope", "/v1/tasks/bad%20id", "/v1/tasks/" + "x" * 65):
        response = await alice.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert (await alice.post("/v1/tasks/nope/cancel")).status_code == 404


async def test_openapi_declares_every_endpoint_with_its_models(alice: httpx.AsyncClient) -> None:
    schema = (await alice.get("/openapi.json")).json()
    paths = schema["paths"]
    expected = {
        "/v1/tasks": ["post"],
        "/v1/tasks/{task_id}": ["get"],
        "/v1/tasks/{task_id}/cancel": ["post"],
        "/v1/tasks/{task_id}/events": ["get"],
        "/v1/tasks/{task_id}/groups/{group}/ack": ["post"],
        "/v1/tasks/{task_id}/groups": ["get"],
        "/healthz": ["get"],
        "/readyz": ["get"],
        "/metrics": ["get"],
    }
    for path, methods in expected.items():
        assert set(methods) <= set(paths[path]), path
    submit_op = paths["/v1/tasks"]["post"]
    assert {"200", "202", "401", "413", "422", "429"} <= set(submit_op["responses"])
    assert "409" not in submit_op["responses"]  # ids are per tenant: nothing to conflict with
    ref = submit_op["responses"]["202"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/TaskAccepted")
    assert submit_op["responses"]["413"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    events = paths["/v1/tasks/{task_id}/events"]["get"]
    assert {"text/event-stream", "application/json"} <= set(events["responses"]["200"]["content"])
    assert {p["name"] for p in events["parameters"]} >= {
        "after", "mode", "types", "scope", "limit", "group", "consumer", "Last-Event-ID",
    }  # fmt: skip
    components = schema["components"]["schemas"]
    assert {"SubmitTask", "TaskView", "EventsPage", "GroupsResponse", "ErrorResponse"} <= set(components)
    assert "bearer" in str(schema["components"]["securitySchemes"]).lower()
    assert "HTTPValidationError" not in components  # every error is an ErrorResponse
