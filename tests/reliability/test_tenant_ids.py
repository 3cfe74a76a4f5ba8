"""Issue 10, item 3: task ids and idempotency keys belong to their tenant.

Ids were global: bob submitting alice's id (in the body or as ``Idempotency-Key``) got
``409 already taken`` where a fresh id got 202, which told bob which ids exist and let him
squat the ids alice uses as idempotency keys. Now any id bob submits answers exactly what
a fresh id answers, alice's task is untouched, and every key of one task keeps one hash
tag (one Redis Cluster slot).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from redis.crc import key_slot

from agentstream.streams import StreamsSettings
from tests.api.helpers import completed, key_id, run_worker, tokens
from tests.api.server import api_settings, serve

JSON = {"Accept": "application/json"}


def shape(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    return response.status_code, response.json()


async def submit_as(client: httpx.AsyncClient, task_id: str, *, header: bool) -> httpx.Response:
    if header:
        return await client.post("/v1/tasks", json={"input": "bob's"}, headers={"Idempotency-Key": task_id})
    return await client.post("/v1/tasks", json={"input": "bob's", "task_id": task_id})


@pytest.mark.reliability
@pytest.mark.timeout(60)
@pytest.mark.parametrize("header", [False, True], ids=["body", "idempotency-key"])
async def test_a_tenant_submitting_another_tenants_id_gets_what_a_fresh_id_gets(
    settings: StreamsSettings, redis: Any, header: bool
) -> None:
    async with (
        serve(api_settings(settings)) as api,
        api.client() as alice,
        api.client({"Authorization": "Bearer key-bob"}) as bob,
    ):
        taken, fresh = f"order-{uuid.uuid4().hex[:8]}", f"order-{uuid.uuid4().hex[:8]}"
        assert (
            await alice.post("/v1/tasks", json={"input": "alice's secret", "task_id": taken})
        ).status_code == 202
        await run_worker(api.services.store, taken, [*tokens(2), completed()], tenant="alice")
        before = (await alice.get(f"/v1/tasks/{taken}/events", headers=JSON)).json()

        on_taken, on_fresh = (
            await submit_as(bob, taken, header=header),
            await submit_as(bob, fresh, header=header),
        )
        assert on_taken.status_code == on_fresh.status_code == 202
        assert on_taken.json() == {**on_fresh.json(), "task_id": taken,
                                   "events_url": f"/v1/tasks/{taken}/events"}  # fmt: skip
        # a repeat is idempotent for bob, as for anyone: his own task again
        assert shape(await submit_as(bob, taken, header=header)) == (200, on_taken.json())

        # alice's task is untouched; bob's is his own
        after = (await alice.get(f"/v1/tasks/{taken}/events", headers=JSON)).json()
        assert after == before and after["events"][0]["input"] == "alice's secret"
        bobs = (await bob.get(f"/v1/tasks/{taken}/events", headers=JSON)).json()
        assert [e["type"] for e in bobs["events"]] == ["queued"] and bobs["events"][0]["input"] == "bob's"
        assert bobs["events"][0]["task_id"] == taken  # clients see their id, never the key id
        views = [(await c.get(f"/v1/tasks/{taken}")).json() for c in (alice, bob)]
        assert [v["status"] for v in views] == ["succeeded", "queued"]
        assert all(v["task_id"] == taken and "alice" not in str(v) and "bob" not in str(v) for v in views)
        listed = (await bob.get("/v1/tasks")).json()["tasks"]
        assert sorted(t["task_id"] for t in listed) == sorted([taken, fresh])

        # bob's cancel of "his" id cancels his task, never alice's
        assert (await bob.post(f"/v1/tasks/{taken}/cancel")).status_code == 202
        assert (await api.services.store.meta(key_id(taken, "alice"))).cancel_requested is None  # type: ignore[union-attr]

        # every key of each task in one slot
        prefix = settings.prefix
        for tenant in ("alice", "bob"):
            keys = [k async for k in redis.scan_iter(match=f"{prefix}:{{{tenant}/{taken}}}:*")]
            assert len(keys) >= 2 and len({key_slot(k.encode()) for k in keys}) == 1, keys
