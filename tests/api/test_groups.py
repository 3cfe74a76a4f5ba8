"""Consumer groups over HTTP: load-balanced SSE delivery, resumption that acks, dead
consumers whose entries come back, the ack endpoint and group stats."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from agentstream.streams import StreamsSettings, TaskStore
from tests.api.helpers import Frame, completed, key_id, read_sse, run_worker, sse_frames, tokens
from tests.api.server import Api, api_settings, serve, submit
from tests.harness import eventually


def url(task_id: str) -> str:
    return f"/v1/tasks/{task_id}/events"


def group_params(consumer: str, group: str = "g1") -> dict[str, str]:
    return {"group": group, "consumer": consumer, "mode": "all"}


async def all_ids(api: Api, task_id: str) -> list[str]:
    return [c async for c, _ in api.services.reader.replay(key_id(task_id))]


async def read_some(
    client: httpx.AsyncClient, task_id: str, consumer: str, n: int, headers: dict[str, str] | None = None
) -> list[Frame]:
    """Read ``n`` frames as ``consumer`` of g1, then drop the connection without acking."""
    got: list[Frame] = []
    async with client.stream("GET", url(task_id), params=group_params(consumer), headers=headers) as response:
        assert response.status_code == 200
        frames = sse_frames(response)
        async with contextlib.aclosing(frames):
            async for frame in frames:
                if frame.comment is None:
                    got.append(frame)
                if len(got) == n:
                    break
    return got


async def consume_and_ack(client: httpx.AsyncClient, task_id: str, consumer: str) -> list[Frame]:
    """A well-behaved consumer: ack every frame as it arrives, until the stream ends."""
    got: list[Frame] = []
    async with client.stream("GET", url(task_id), params=group_params(consumer)) as response:
        assert response.status_code == 200
        async for frame in sse_frames(response):
            if frame.comment is not None:
                continue
            got.append(frame)
            if frame.event == "drained":
                continue  # the stream's own end marker: no entry, nothing to ack
            ack = await client.post(f"/v1/tasks/{task_id}/groups/g1/ack", json={"ids": [frame.id]})
            assert ack.json() == {"acked": 1}
    return got


async def test_two_consumers_share_the_stream_disjointly(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    first = asyncio.create_task(consume_and_ack(alice, task_id, "c1"))
    second = asyncio.create_task(consume_and_ack(alice, task_id, "c2"))

    async def both_reading() -> bool:
        groups = (await alice.get(f"/v1/tasks/{task_id}/groups")).json()["groups"]
        return bool(groups) and groups[0]["consumers"] == 2

    # both in the group before the writes: a consumer that joined late would find the
    # other had taken everything
    await eventually(both_reading, timeout_s=20)
    store: TaskStore = api.services.store
    attempt = await store.open_attempt(key_id(task_id))
    async with store.writer(attempt) as writer:
        for event in tokens(40):
            await writer.write(event)
            await asyncio.sleep(0.005)
        await writer.write(completed())
    c1, c2 = await asyncio.wait_for(asyncio.gather(first, second), 40)
    # one consumer receives ``completed``; the other's stream ends with ``drained``
    assert sorted([c1[-1].event, c2[-1].event]) == ["completed", "drained"]
    c1, c2 = [f for f in c1 if f.event != "drained"], [f for f in c2 if f.event != "drained"]
    ids1, ids2 = {f.id for f in c1}, {f.id for f in c2}
    assert not ids1 & ids2
    assert ids1 | ids2 == set(await all_ids(api, task_id))
    assert c1 and c2, "both consumers should have been given work"
    groups = (await alice.get(f"/v1/tasks/{task_id}/groups")).json()["groups"]
    assert groups == [
        {"name": "g1", "consumers": 2, "pending": 0, "lag": 0, "last_delivered": max(ids1 | ids2, key=_key),
         "consumer_pending": {"c1": 0, "c2": 0}},
    ]  # fmt: skip


def _key(cursor: str | None) -> tuple[int, int]:
    assert cursor is not None
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq)


async def test_a_second_group_sees_everything_again(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    await run_worker(api.services.store, task_id, [*tokens(5), completed()])
    g1 = await read_sse(alice, url(task_id), params=group_params("a", "g1"))
    g2 = await read_sse(alice, url(task_id), params=group_params("a", "g2"))
    assert [f.id for f in g1] == [f.id for f in g2] == await all_ids(api, task_id)


async def test_reconnect_with_last_event_id_acks_up_to_it_and_redelivers_the_rest(
    alice: httpx.AsyncClient, api: Api
) -> None:
    task_id = await submit(alice)
    store: TaskStore = api.services.store
    attempt = await store.open_attempt(key_id(task_id))
    async with store.writer(attempt) as writer:
        for event in tokens(10):
            await writer.write(event)
        seen = await read_some(alice, task_id, "c1", 5)  # then c1 "dies" without acking
        groups = (await alice.get(f"/v1/tasks/{task_id}/groups")).json()["groups"]
        assert groups[0]["consumer_pending"] == {"c1": 11}  # everything was handed to c1
        resumed = asyncio.create_task(
            read_sse(
                alice, url(task_id), params=group_params("c1"), headers={"Last-Event-ID": seen[2].id or ""}
            )
        )
        await asyncio.sleep(0.2)
        await writer.write(completed())
    frames = await asyncio.wait_for(resumed, 30)
    ids = await all_ids(api, task_id)
    assert [f.id for f in frames] == ids[3:]
    assert frames[-1].event == "completed"
    groups = (await alice.get(f"/v1/tasks/{task_id}/groups")).json()["groups"]
    assert groups[0]["consumer_pending"]["c1"] == len(ids) - 3  # the rest waits for acks


async def test_entries_of_a_dead_consumer_are_claimed_by_another(
    settings: StreamsSettings, redis: Any
) -> None:
    async with serve(api_settings(settings, group_min_idle_ms=200)) as api, api.client() as client:
        task_id = await submit(client)
        await run_worker(api.services.store, task_id, tokens(10))
        dead = await read_some(client, task_id, "c1", 2)
        assert len(dead) == 2
        await asyncio.sleep(0.3)  # c1's entries are now idle beyond min_idle_ms
        taker = asyncio.create_task(consume_and_ack(client, task_id, "c2"))
        await asyncio.sleep(0.3)
        attempt = await api.services.store.open_attempt(key_id(task_id))
        async with api.services.store.writer(attempt) as writer:
            await writer.write(completed())
        frames = await asyncio.wait_for(taker, 30)
        assert [f.id for f in frames] == await all_ids(api, task_id)
        groups = (await client.get(f"/v1/tasks/{task_id}/groups")).json()["groups"]
        assert groups[0]["pending"] == 0 and groups[0]["lag"] == 0


async def test_ack_endpoint_counts_what_was_pending(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    await run_worker(api.services.store, task_id, tokens(4))
    frames = await read_some(alice, task_id, "c1", 5)
    ids = [f.id for f in frames]
    ack_url = f"/v1/tasks/{task_id}/groups/g1/ack"
    assert (await alice.post(ack_url, json={"ids": ids[:3]})).json() == {"acked": 3}
    assert (await alice.post(ack_url, json={"ids": ids[:4]})).json() == {"acked": 1}
    assert (await alice.post(f"/v1/tasks/{task_id}/groups/other/ack", json={"ids": ids})).json() == {
        "acked": 0
    }
    bad_id = await alice.post(ack_url, json={"ids": ["not-a-cursor"]})
    assert bad_id.status_code == 400 and bad_id.json()["error"]["code"] == "bad_request"
    bad_group = await alice.post(f"/v1/tasks/{task_id}/groups/bad%20group/ack", json={"ids": ids})
    assert bad_group.status_code == 400
    for body in ({"ids": []}, {}, {"ids": "x"}, {"ids": ids, "more": 1}):
        response = await alice.post(ack_url, json=body)
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_body"
    stats = (await alice.get(f"/v1/tasks/{task_id}/groups")).json()["groups"][0]
    assert stats["pending"] == 1 and stats["consumer_pending"] == {"c1": 1}
    assert stats["last_delivered"] == ids[-1] and stats["lag"] == 0


async def test_groups_of_a_task_without_groups(alice: httpx.AsyncClient) -> None:
    task_id = await submit(alice)
    assert (await alice.get(f"/v1/tasks/{task_id}/groups")).json() == {"groups": []}


async def test_json_pages_through_a_group(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    await run_worker(api.services.store, task_id, [*tokens(8), completed()])
    ids = await all_ids(api, task_id)
    headers = {"Accept": "application/json"}
    params = {**group_params("j1"), "limit": "4"}
    first = (await alice.get(url(task_id), params=params, headers=headers)).json()
    assert [e["id"] for e in first["events"]] == ids[:4] and not first["done"]
    again = (await alice.get(url(task_id), params=params, headers=headers)).json()
    assert again == first  # not acked: delivered again
    nxt = (
        await alice.get(url(task_id), params={**params, "after": first["next_after"]}, headers=headers)
    ).json()
    assert [e["id"] for e in nxt["events"]] == ids[4:8]
    last = (
        await alice.get(url(task_id), params={**params, "after": nxt["next_after"]}, headers=headers)
    ).json()
    assert [e["id"] for e in last["events"]] == ids[8:] and last["done"]
    assert last["events"][-1]["type"] == "completed"
