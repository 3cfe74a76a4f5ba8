"""Issue 10, item 5: consumer groups over HTTP.

Dead letters were stored but no route showed them; the read that dead-lettered answered an
empty page with events still waiting; any GET (the viewer's read-only cookie included)
created groups without limit; ``GET /groups`` made round trips per group; ``ack_through``
stopped at 10,000 pending entries.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentstream.streams import GroupConsumer, StreamsSettings
from tests.api.helpers import completed, key_id, run_worker, tokens
from tests.api.server import api_settings, serve, submit

JSON = {"Accept": "application/json"}


def group_page(client: httpx.AsyncClient, task_id: str, consumer: str = "c1", **params: str) -> Any:
    return client.get(f"/v1/tasks/{task_id}/events", params={"group": "g", "consumer": consumer, **params},
                      headers=JSON)  # fmt: skip


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_a_poison_event_is_listed_requeued_and_the_read_goes_on(
    settings: StreamsSettings, redis: Any
) -> None:
    async with serve(api_settings(settings, group_max_deliveries=2, group_min_idle_ms=1)) as api, \
            api.client() as alice:  # fmt: skip
        task_id = await submit(alice)
        await run_worker(api.services.store, task_id, [*tokens(5), completed()])
        first = (await group_page(alice, task_id, limit="1")).json()["events"]
        assert [e["type"] for e in first] == ["queued"]  # delivered, never acked: it is the poison
        # the next read re-delivers it (a consumer's own pending entries come first) ...
        second = (await group_page(alice, task_id, limit="1")).json()["events"]
        assert [e["id"] for e in second] == [first[0]["id"]]
        # ... and the read that dead-letters it (3rd delivery > 2) returns the next
        # deliverable events, not an empty page
        page = (await group_page(alice, task_id, limit="3")).json()
        assert [e["type"] for e in page["events"]] == ["token"] * 3, page
        dead = (await alice.get(f"/v1/tasks/{task_id}/groups/g/dead-letters")).json()["dead_letters"]
        assert len(dead) == 1 and dead[0]["cursor"] == first[0]["id"] and dead[0]["event"]["type"] == "queued"
        assert dead[0]["reason"].startswith("delivered") and dead[0]["deliveries"] == 3
        bad = await alice.post(f"/v1/tasks/{task_id}/groups/g/dead-letters/1-0/requeue")
        assert bad.status_code == 409 and bad.json()["error"]["code"] == "conflict"
        requeued = await alice.post(f"/v1/tasks/{task_id}/groups/g/dead-letters/{dead[0]['id']}/requeue")
        assert requeued.status_code == 200 and requeued.json() == {"cursor": first[0]["id"], "group": "g"}
        assert (await alice.get(f"/v1/tasks/{task_id}/groups/g/dead-letters")).json()["dead_letters"] == []
        # another consumer of the group claims it again, with a fresh delivery count
        again = (await group_page(alice, task_id, consumer="c2", limit="10")).json()["events"]
        assert first[0]["id"] in [e["id"] for e in again]


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_groups_need_the_key_are_capped_and_listed_in_two_round_trips(
    settings: StreamsSettings, redis: Any
) -> None:
    async with serve(api_settings(settings, max_groups_per_task=3)) as api, api.client() as alice:
        task_id = await submit(alice)
        await run_worker(api.services.store, task_id, [*tokens(2), completed()])
        login = await alice.post("/ui/session", json={"api_key": "key-alice"})
        assert login.status_code == 200, login.text
        async with api.client(None, cookies=dict(login.cookies)) as viewer:
            assert (await viewer.get(f"/v1/tasks/{task_id}/events", headers=JSON)).status_code == 200
            refused = await viewer.get(f"/v1/tasks/{task_id}/events", params={"group": "v", "consumer": "c"},
                                       headers=JSON)  # fmt: skip
            assert refused.status_code == 403 and "API key" in refused.json()["error"]["message"]
        for name in ("g1", "g2", "g3"):
            response = await alice.get(f"/v1/tasks/{task_id}/events", params={"group": name, "consumer": "c"},
                                       headers=JSON)  # fmt: skip
            assert response.status_code == 200
        over = await alice.get(
            f"/v1/tasks/{task_id}/events", params={"group": "g4", "consumer": "c"}, headers=JSON
        )
        assert over.status_code == 409 and "3 consumer groups" in over.json()["error"]["message"]
        again = await alice.get(
            f"/v1/tasks/{task_id}/events", params={"group": "g1", "consumer": "c2"}, headers=JSON
        )
        assert again.status_code == 200  # an existing group is always fine

        # GET /groups: the same number of round trips for 1 group as for 3
        sent: list[int] = []
        connection_class = api.services.redis.connection_pool.connection_class
        original = connection_class.send_packed_command

        async def counting(self: Any, command: Any, check_health: bool = True) -> None:
            sent.append(1)
            await original(self, command, check_health)

        connection_class.send_packed_command = counting  # type: ignore[method-assign]
        try:
            three = (await alice.get(f"/v1/tasks/{task_id}/groups")).json()["groups"]
            trips_for_three = len(sent)
            other = await submit(alice)
            await GroupConsumer(api.services.redis, settings, key_id(other), "only", "c").ensure_group()
            sent.clear()
            one = (await alice.get(f"/v1/tasks/{other}/groups")).json()["groups"]
            trips_for_one = len(sent)
        finally:
            connection_class.send_packed_command = original  # type: ignore[method-assign]
        assert (len(three), len(one)) == (3, 1)
        assert trips_for_three == trips_for_one, (trips_for_three, trips_for_one)


@pytest.mark.reliability
@pytest.mark.timeout(120)
async def test_ack_through_acks_every_pending_entry(
    settings: StreamsSettings, redis: Any, store: Any
) -> None:
    task_id = key_id("many", "t")
    await store.create_task(task_id, owner="t", agent="llm", input="x")
    await run_worker(store, task_id, tokens(12_500))
    async with GroupConsumer(redis, settings, task_id, "g", "c", count=1000) as consumer:
        delivered = []
        while len(delivered) < 12_501:
            delivered += await consumer.read(count=1000, block_ms=0)
        assert await consumer.ack_through(delivered[-1][0]) == 12_501
    pending = await redis.xpending(settings.keys.events(task_id), "g")
    assert pending["pending"] == 0
