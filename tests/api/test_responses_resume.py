"""OpenAI Responses-style resumption: every event carries ``sequence_number`` (its seq), and
``starting_after=<n>`` resumes after the event whose ``sequence_number`` is ``n``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from agentstream.streams import StreamsSettings, TaskStore
from tests.api.helpers import completed, key_id, read_sse, result, run_worker, tokens
from tests.api.server import Api, submit
from tests.harness import eventually

USAGE = {"type": "usage", "prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
JSON = {"Accept": "application/json"}


def url(task_id: str) -> str:
    return f"/v1/tasks/{task_id}/events"


async def finished_task(client: httpx.AsyncClient, api: Api, events: list[dict[str, Any]]) -> str:
    task_id = await submit(client)
    await run_worker(api.services.store, task_id, events)
    return task_id


async def json_events(client: httpx.AsyncClient, task_id: str, **params: str) -> list[dict[str, Any]]:
    """Every event through JSON pages, following ``next_after``."""
    events: list[dict[str, Any]] = []
    for _ in range(50):
        page = (await client.get(url(task_id), params={"limit": "7", **params}, headers=JSON)).json()
        events += page["events"]
        if page["done"]:
            return events
        params = {**{k: v for k, v in params.items() if k != "starting_after"}, "after": page["next_after"]}
    raise AssertionError("no end of pages")


async def test_every_event_carries_its_sequence_number(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await finished_task(alice, api, [*tokens(10), USAGE, result(), completed()])
    frames = await read_sse(alice, url(task_id), params={"mode": "all"})
    assert [f.json["sequence_number"] for f in frames] == list(range(1, 15))
    assert all(f.json["sequence_number"] == f.json["seq"] for f in frames)
    pages = await json_events(alice, task_id, mode="all")
    assert [e["sequence_number"] for e in pages] == [e["seq"] for e in pages] == list(range(1, 15))
    # a filtered reader keeps the stream's numbers
    output = await read_sse(alice, url(task_id), params={"mode": "output"})
    assert [f.json["sequence_number"] for f in output] == [13, 14]
    # and so does consumer-group delivery
    group = (await alice.get(url(task_id), params={"group": "g", "consumer": "c"}, headers=JSON)).json()
    assert [e["sequence_number"] for e in group["events"]] == [*range(1, 12), 14]  # core: no usage, no result


async def test_starting_after_n_is_the_stream_minus_its_first_n_events(
    alice: httpx.AsyncClient, api: Api
) -> None:
    task_id = await finished_task(alice, api, [*tokens(30), USAGE, result(), completed()])
    full = await read_sse(alice, url(task_id), params={"mode": "all"})
    assert len(full) == 34
    for n in (0, 1, 2, 7, 17, 31, 32, 33):
        resumed = await read_sse(alice, url(task_id), params={"mode": "all", "starting_after": str(n)})
        assert resumed == full[n:], n
        assert await json_events(alice, task_id, mode="all", starting_after=str(n)) == [
            f.json for f in full[n:]
        ]
    assert await read_sse(alice, url(task_id), params={"starting_after": "34"}) == []
    assert await read_sse(alice, url(task_id), params={"starting_after": "1000"}) == []
    page = (await alice.get(url(task_id), params={"starting_after": "1000"}, headers=JSON)).json()
    assert page["events"] == [] and page["done"]
    # with a filter, the numbers still count the stream's events
    chunks = await read_sse(alice, url(task_id), params={"mode": "chunk_output", "starting_after": "29"})
    assert [f.json["sequence_number"] for f in chunks] == [30, 31, 33, 34]


async def test_last_event_id_beats_starting_after_which_beats_after(
    alice: httpx.AsyncClient, api: Api
) -> None:
    task_id = await finished_task(alice, api, [*tokens(20), result(), completed()])
    full = await read_sse(alice, url(task_id))
    cursor_5, cursor_12 = full[4].id, full[11].id
    assert cursor_5 and cursor_12
    by_header = await read_sse(
        alice,
        url(task_id),
        params={"starting_after": "3", "after": cursor_12},
        headers={"Last-Event-ID": cursor_5},
    )
    assert by_header == full[5:]
    by_seq = await read_sse(alice, url(task_id), params={"starting_after": "3", "after": cursor_12})
    assert by_seq == full[3:]
    by_after = await read_sse(alice, url(task_id), params={"after": cursor_12})
    assert by_after == full[12:]
    page = (
        await alice.get(url(task_id), params={"starting_after": "3", "after": cursor_12}, headers=JSON)
    ).json()
    assert page["events"] == [f.json for f in full[3:]]


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "", "1e3"])
async def test_a_bad_starting_after_is_400(alice: httpx.AsyncClient, value: str) -> None:
    task_id = await submit(alice)
    for headers in ({}, JSON):
        response = await alice.get(url(task_id), params={"starting_after": value}, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "bad_request"


async def test_starting_after_beyond_a_running_streams_end_waits_for_later_events(
    alice: httpx.AsyncClient, api: Api
) -> None:
    task_id = await submit(alice)  # seq 1: queued
    store: TaskStore = api.services.store
    attempt = await store.open_attempt(key_id(task_id))
    async with store.writer(attempt) as writer:
        for event in tokens(3):  # seqs 2-4
            await writer.write(event)
        reading = asyncio.create_task(read_sse(alice, url(task_id), params={"starting_after": "6"}))
        await eventually(lambda: _true(api.services.hub.subscriptions == 1), timeout_s=20)  # it waits
        for event in [*tokens(4, start=3), completed()]:  # seqs 5-9
            await writer.write(event)
    frames = await asyncio.wait_for(reading, 10)
    assert [f.json["sequence_number"] for f in frames] == [7, 8, 9]


async def test_starting_after_trimmed_history_gets_a_gap_first(
    alice: httpx.AsyncClient, api: Api, settings: StreamsSettings, redis: Any
) -> None:
    task_id = await finished_task(alice, api, [*tokens(200), completed()])
    full = await read_sse(alice, url(task_id))
    await redis.xtrim(settings.keys.events(key_id(task_id)), maxlen=50, approximate=False)
    first_seq = 202 - 50 + 1
    lost = await read_sse(alice, url(task_id), params={"starting_after": "10"})
    gap, *rest = lost
    assert gap.event == "gap" and gap.id is None
    assert gap.json["first_seq"] == first_seq and gap.json["first_cursor"] == full[first_seq - 1].id
    assert rest == full[first_seq - 1 :]
    # nothing the reader asked for was lost: no gap
    assert (
        await read_sse(alice, url(task_id), params={"starting_after": str(first_seq - 1)})
        == full[first_seq - 1 :]
    )
    assert await read_sse(alice, url(task_id), params={"starting_after": str(first_seq)}) == full[first_seq:]
    page = (await alice.get(url(task_id), params={"starting_after": "10"}, headers=JSON)).json()
    assert page["events"][0]["type"] == "gap" and page["events"][1]["sequence_number"] == first_seq


async def _true(value: bool) -> bool:
    return value
