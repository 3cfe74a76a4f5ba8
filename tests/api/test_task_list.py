"""``GET /v1/tasks``: a tenant's recent tasks, newest first, with their current status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentstream.streams import StreamsSettings
from tests.api.helpers import completed, key_id, run_worker, tokens
from tests.api.server import Api, api_settings, serve, submit


async def listed(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/tasks", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body


async def test_each_tenant_sees_its_own_tasks_newest_first_with_current_status(
    api: Api, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    first = await submit(alice, "What is 17 * 23?", agent="hybrid")
    theirs = await submit(bob, "bob's secret")
    second = await submit(alice, "x" * 500)
    await run_worker(api.services.store, first, [*tokens(2), completed()])
    running = await submit(alice, "still going")
    await api.services.store.open_attempt(key_id(running))

    body = await listed(alice)
    assert [t["task_id"] for t in body["tasks"]] == [running, second, first]
    assert body["next_before"] is None
    by_id = {t["task_id"]: t for t in body["tasks"]}
    assert by_id[first] | {"created_at": None, "started_at": None, "ended_at": None} == {
        "task_id": first, "status": "succeeded", "agent": "hybrid", "attempt": 1, "done": True,
        "created_at": None, "started_at": None, "ended_at": None, "input": "What is 17 * 23?",
        "events_url": f"/v1/tasks/{first}/events",
    }  # fmt: skip
    assert by_id[first]["ended_at"] and by_id[first]["created_at"]
    assert by_id[second]["status"] == "queued" and by_id[second]["input"] == "x" * 200  # a preview
    assert by_id[running]["status"] == "running" and not by_id[running]["done"]

    assert [t["task_id"] for t in (await listed(bob))["tasks"]] == [theirs]


async def test_pages_follow_next_before(api: Api, alice: httpx.AsyncClient, bob: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        ids.append(await submit(alice, f"task {i}"))
        await submit(bob, f"noise {i}")
    newest_first = ids[::-1]
    page = await listed(alice, limit=2)
    seen = [t["task_id"] for t in page["tasks"]]
    while page["next_before"] is not None:
        page = await listed(alice, limit=2, before=page["next_before"])
        seen += [t["task_id"] for t in page["tasks"]]
    assert seen == newest_first


async def test_the_feed_scan_is_bounded(settings: StreamsSettings, redis: Any) -> None:
    async with serve(api_settings(settings, task_list_scan=3)) as api, api.client() as alice:
        ids = [await submit(alice, f"task {i}") for i in range(5)]
        page = await listed(alice, limit=50)
        assert [t["task_id"] for t in page["tasks"]] == ids[:1:-1]  # 3 entries scanned
        rest = await listed(alice, limit=50, before=page["next_before"])
        assert [t["task_id"] for t in rest["tasks"]] == ids[1::-1]


async def test_expired_tasks_are_left_out(api: Api, alice: httpx.AsyncClient) -> None:
    kept, gone = await submit(alice, "kept"), await submit(alice, "gone")
    keys = api.settings.streams.keys
    await api.services.redis.delete(keys.meta(key_id(gone)), keys.events(key_id(gone)))
    assert [t["task_id"] for t in (await listed(alice))["tasks"]] == [kept]


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "201"}, {"before": "nope"}])
async def test_bad_queries_are_400(alice: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await alice.get("/v1/tasks", params=params)
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_request"


async def test_listing_needs_a_key(api: Api) -> None:
    async with api.client({}) as client:
        assert (await client.get("/v1/tasks")).status_code == 401
