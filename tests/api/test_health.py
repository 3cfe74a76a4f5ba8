"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from agentstream.api.metrics import DeliveryWatch, Metrics
from agentstream.streams import StreamsSettings
from tests.api.helpers import Frame, completed, read_sse, run_worker, sse_frames, tokens
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
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    values = {s.name: s.value for family in families.values() for s in family.samples if not s.labels}
    assert values["agentstream_tasks_submitted_total"] == 1
    assert values["agentstream_events_delivered_total"] == len(frames) == 6
    assert values["agentstream_sse_clients"] == 0
    assert values["agentstream_hub_subscriptions"] == 0
    assert families["agentstream_events_delivered"].type == "counter"
    assert families["agentstream_sse_clients"].type == "gauge"
    # the history was replayed, not delivered live: no latency sample
    assert families["agentstream_sse_delivery_seconds"].type == "histogram"
    assert values["agentstream_sse_delivery_seconds_count"] == 0
    assert values["agentstream_sse_first_event_seconds_count"] == 0
    assert values["process_resident_memory_bytes"] > 0


async def test_live_deliveries_are_timed_from_append_and_from_submit(
    alice: httpx.AsyncClient, api: Api
) -> None:
    task_id = await submit(alice)
    frames: list[Frame] = []
    writer: asyncio.Task[None] | None = None
    async with alice.stream("GET", f"/v1/tasks/{task_id}/events") as response:
        async for frame in sse_frames(response):
            frames.append(frame)
            if frame.event == "queued":  # connected: now the worker starts
                writer = asyncio.create_task(
                    run_worker(api.services.store, task_id, [*tokens(3), completed()])
                )
    assert writer is not None
    await writer
    scrape = (await alice.get("/metrics")).text
    values = {
        s.name: s.value for f in text_string_to_metric_families(scrape) for s in f.samples if not s.labels
    }
    assert [f.event for f in frames] == ["queued", "token", "token", "token", "completed"]
    assert values["agentstream_sse_delivery_seconds_count"] == 4  # queued was history
    assert values["agentstream_sse_first_event_seconds_count"] == 1
    # generous bounds: a busy machine, but far from the seconds a bug would show
    assert 0 <= values["agentstream_sse_delivery_seconds_sum"] < 4 * 5.0
    assert 0 <= values["agentstream_sse_first_event_seconds_sum"] < 30.0


def test_a_late_reader_adds_no_first_event_sample() -> None:
    metrics = Metrics()
    watch = DeliveryWatch(since_ms=2_000)
    queued, started = b"id: 1000-0\nevent: queued\ndata: {}\n\n", b"id: 1500-0\nevent: status\ndata: {}\n\n"
    metrics.delivered(
        [queued, started, b"id: 2500-0\nevent: token\ndata: {}\n\n", b"event: gap\ndata: {}\n\n"], watch
    )
    assert metrics.events_delivered == 4
    values = {s.name: s.value for f in metrics.registry.collect() for s in f.samples if not s.labels}
    assert values["agentstream_sse_first_event_seconds_count"] == 0  # the worker began before
    assert values["agentstream_sse_delivery_seconds_count"] == 1  # the token appended after it connected


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
