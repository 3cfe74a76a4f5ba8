"""Liveness, readiness and metrics."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
from agentstream.streams import StreamsSettings

from tests.api.helpers import completed, read_sse, run_worker, tokens
from tests.api.server import Api, api_settings, serve, submit
from tests.redis_server import free_port


async def test_healthz_and_readyz(alice: httpx.AsyncClient) -> None:
    assert (await alice.get("/healthz")).json() == {"status": "ok"}
    ready = await alice.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"redis": "ok", "queue": "ok"}}


async def test_without_redis_readyz_is_503_and_routes_answer_503(settings: StreamsSettings) -> None:
    dead = StreamsSettings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", prefix=settings.prefix, connect_timeout_s=0.5
    )
    async with serve(api_settings(dead, probe_timeout_s=1.0)) as api, api.client() as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable" and body["checks"]["redis"] != "ok"
        for response in (
            await client.get("/v1/tasks/t1"),
            await client.post("/v1/tasks", json={"input": "x"}),
        ):
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "unavailable"


async def test_metrics_count_submits_deliveries_and_live_streams(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    await run_worker(api.services.store, task_id, [*tokens(4), completed()])
    frames = await read_sse(alice, f"/v1/tasks/{task_id}/events")
    response = await alice.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in response.text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["agentstream_tasks_submitted_total"] == 1
    assert values["agentstream_events_delivered_total"] == len(frames) == 6
    assert values["agentstream_sse_clients"] == 0
    assert values["agentstream_hub_subscriptions"] == 0
    assert "# TYPE agentstream_events_delivered_total counter" in response.text
    assert "# TYPE agentstream_sse_clients gauge" in response.text


async def test_too_many_live_streams_is_503(settings: StreamsSettings, redis: Any) -> None:
    async with serve(api_settings(settings, max_sse_clients=1)) as api, api.client() as client:
        task_id = await submit(client)
        async with client.stream("GET", f"/v1/tasks/{task_id}/events") as first:
            assert first.status_code == 200
            lines = first.aiter_lines()
            async with contextlib.aclosing(lines):  # closing it closes the response
                assert (await anext(lines)).startswith("id: ")
                second = await client.get(f"/v1/tasks/{task_id}/events")
                assert second.status_code == 503 and second.json()["error"]["code"] == "unavailable"
                assert api.services.metrics.sse_clients == 1
