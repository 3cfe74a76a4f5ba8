"""The events endpoint: SSE framing, replay + live tail, resumption, filters, gaps, JSON
pages, disconnects and slow clients, against a real uvicorn server and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import httpx
import pytest

from agentstream.api.routes.events import with_sequence_number
from agentstream.streams import EventFilter, StreamsSettings, TaskStore
from tests.api.helpers import (
    Frame,
    completed,
    key_id,
    read_sse,
    result,
    run_worker,
    sse_frames,
    stalled_reader,
    tokens,
)
from tests.api.server import ALICE, Api, api_settings, serve, submit
from tests.harness import eventually
from tests.streams.helpers import lose_last

USAGE = {"type": "usage", "prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
DAWP = {"kind": "dawp", "run_id": "r1", "workflow_id": "w1", "step_id": "s1", "step_index": 0}


def url(task_id: str) -> str:
    return f"/v1/tasks/{task_id}/events"


async def stored(api: Api, task_id: str, mode: str = "core", **kw: Any) -> list[tuple[str, dict[str, Any]]]:
    """The stored events as the API serves them (with ``sequence_number``)."""
    flt = EventFilter.parse(mode, kw.get("types"), kw.get("scope"))
    return [
        (c, with_sequence_number(e)) async for c, e in api.services.reader.replay(key_id(task_id), filter=flt)
    ]


async def finished_task(client: httpx.AsyncClient, api: Api, events: list[dict[str, Any]]) -> str:
    task_id = await submit(client)
    await run_worker(api.services.store, task_id, events)
    return task_id


async def no_live_streams(api: Api) -> None:
    async def idle() -> bool:
        return api.services.metrics.sse_clients == 0 and api.services.hub.subscriptions == 0

    try:
        await eventually(idle)
    except AssertionError:
        raise AssertionError(
            f"clients={api.services.metrics.sse_clients} subs={api.services.hub.subscriptions}"
        ) from None


async def test_full_stream_is_framed_and_ends_after_completed(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await finished_task(alice, api, [*tokens(5), USAGE, result(), completed()])
    frames = await read_sse(alice, url(task_id))
    expected = await stored(api, task_id)  # default mode core: no usage
    assert [(f.id, f.event) for f in frames] == [(c, e["type"]) for c, e in expected]
    assert [f.json for f in frames] == [e for _, e in expected]
    assert frames[0].event == "queued" and frames[-1].event == "completed"
    assert "usage" not in {f.event for f in frames}
    assert frames[1].json == {
        **frames[1].json,
        "type": "token",
        "content": "w0 ",
        "seq": 2,
        "task_id": task_id,
    }


async def test_raw_frames_follow_the_protocol(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await finished_task(alice, api, [completed()])
    response = await alice.get(url(task_id))
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    (cursor, _), (last, _) = await stored(api, task_id)
    first, second, end = response.content.split(b"\n\n")
    assert first.startswith(f"id: {cursor}\nevent: queued\ndata: {{".encode())
    assert second.startswith(f"id: {last}\nevent: completed\ndata: ".encode())
    assert end == b""


async def test_live_tail_follows_a_running_worker(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    reading = asyncio.create_task(read_sse(alice, url(task_id), params={"mode": "all"}))
    await eventually(lambda: _true(api.services.metrics.sse_clients == 1))
    await run_worker(api.services.store, task_id, [*tokens(50), result(), completed()], wait_each=True)
    frames = await asyncio.wait_for(reading, 30)
    assert [f.id for f in frames] == [c for c, _ in await stored(api, task_id, "all")]
    assert len(frames) == 53
    await no_live_streams(api)


async def _true(value: bool) -> bool:
    return value


async def test_resume_by_last_event_id_or_after_and_the_header_wins(
    alice: httpx.AsyncClient, api: Api
) -> None:
    task_id = await finished_task(alice, api, [*tokens(20), result(), completed()])
    full = await read_sse(alice, url(task_id))
    cut, other = full[7].id, full[3].id
    assert cut and other
    by_header = await read_sse(alice, url(task_id), headers={"Last-Event-ID": cut})
    by_query = await read_sse(alice, url(task_id), params={"after": cut})
    both = await read_sse(alice, url(task_id), params={"after": other}, headers={"Last-Event-ID": cut})
    assert by_header == by_query == both == full[8:]
    from_zero = await read_sse(alice, url(task_id), params={"after": "0"})
    assert from_zero == full
    assert await read_sse(alice, url(task_id), params={"after": full[-1].id or ""}) == []


async def test_after_dollar_gets_only_new_events(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    store: TaskStore = api.services.store
    attempt = await store.open_attempt(key_id(task_id))
    async with store.writer(attempt) as writer:
        for event in tokens(5):
            await writer.write(event)
        reading = asyncio.create_task(read_sse(alice, url(task_id), params={"after": "$"}))
        await eventually(lambda: _true(api.services.hub.subscriptions == 1))
        for event in [*tokens(3, start=5), completed()]:
            await writer.write(event)
    frames = await asyncio.wait_for(reading, 30)
    assert [f.json.get("content") for f in frames] == ["w5 ", "w6 ", "w7 ", None]
    assert frames[-1].event == "completed"


@pytest.mark.parametrize(
    ("params", "expected_types"),
    [
        ({"mode": "output"}, ["result", "completed"]),
        ({"mode": "chunk"}, ["token", "token", "completed"]),
        ({"types": "token,result"}, ["token", "token", "completed"]),  # types narrow the mode
        ({"mode": "all", "types": "token,result"}, ["token", "token", "result", "completed"]),
        ({"mode": "all", "types": "usage"}, ["usage", "completed"]),
        ({"scope": "dawp"}, ["dawp_step_started", "thought", "completed"]),
        ({"scope": "main", "mode": "chunk_output"}, ["token", "token", "result", "completed"]),
        ({"mode": "all"}, ["queued", "token", "dawp_step_started", "thought", "token", "usage",
                           "shiny_new", "result", "completed"]),
    ],
)  # fmt: skip
async def test_filters_by_mode_types_and_scope(
    alice: httpx.AsyncClient, api: Api, params: dict[str, str], expected_types: list[str]
) -> None:
    events = [
        *tokens(1),
        {"type": "dawp_step_started", "run_id": "r1", "step_id": "s1", "step_index": 0, "loop_scope": DAWP},
        {"type": "thought", "content": "hmm", "iteration": 1, "loop_scope": DAWP},
        *tokens(1, start=1),
        USAGE,
        {"type": "shiny_new", "detail": 1},
        result(),
        completed(),
    ]
    task_id = await finished_task(alice, api, events)
    frames = await read_sse(alice, url(task_id), params=params)
    assert [f.event for f in frames] == expected_types
    page = await alice.get(url(task_id), params=params, headers={"Accept": "application/json"})
    assert [e["type"] for e in page.json()["events"]] == expected_types


async def test_a_trimmed_cursor_gets_a_gap_frame_first(
    alice: httpx.AsyncClient, api: Api, settings: StreamsSettings, redis: Any
) -> None:
    task_id = await submit(alice)
    (first_cursor, _), *_ = await stored(api, task_id)
    small = StreamsSettings(redis_url=settings.redis_url, prefix=settings.prefix, maxlen=50)
    await run_worker(TaskStore(redis, small), task_id, [*tokens(1_500), completed()])
    frames = await read_sse(alice, url(task_id), params={"after": first_cursor})
    gap, *rest = frames
    held = [(c, e) for c, e in await stored(api, task_id) if e["type"] != "gap"]
    assert gap.event == "gap" and gap.id is None
    assert gap.json["first_cursor"] == held[0][0]
    assert [f.id for f in rest] == [c for c, _ in held]
    assert rest[-1].event == "completed"
    # the same from the start: a stream that lost its head says so too
    assert (await read_sse(alice, url(task_id)))[0].event == "gap"


async def test_json_pages_reconstruct_the_stream(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await finished_task(alice, api, [*tokens(30), USAGE, result(), completed()])
    json_headers = {"Accept": "application/json"}
    events: list[dict[str, Any]] = []
    after, pages, done = "0", 0, False
    while not done:
        response = await alice.get(url(task_id), params={"after": after, "limit": 7}, headers=json_headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        page = response.json()
        events += page["events"]
        after, done = page["next_after"], page["done"]
        pages += 1
        assert pages < 20
    assert events == [e for _, e in await stored(api, task_id)]
    assert pages == 5  # 34 core events, 7 per page
    tail = (await alice.get(url(task_id), params={"after": after}, headers=json_headers)).json()
    assert tail == {"events": [], "next_after": after, "done": True}
    # a filtered page skips what it scanned: next_after is the last entry read
    output = (await alice.get(url(task_id), params={"mode": "output"}, headers=json_headers)).json()
    assert [e["type"] for e in output["events"]] == ["result", "completed"] and output["done"]


async def test_json_page_of_a_running_task(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    json_headers = {"Accept": "application/json"}
    first = (await alice.get(url(task_id), headers=json_headers)).json()
    assert [e["type"] for e in first["events"]] == ["queued"] and not first["done"]
    empty = (await alice.get(url(task_id), params={"after": "$"}, headers=json_headers)).json()
    assert empty == {"events": [], "next_after": first["next_after"], "done": False}


async def test_random_disconnects_resume_to_exactly_the_one_go_stream(
    alice: httpx.AsyncClient, api: Api
) -> None:
    """A client that drops the connection at random points and resumes from its last id
    (by header or by query) rebuilds the stream a one-go reader sees, while the worker
    is still writing."""
    task_id = await submit(alice)
    rng = random.Random(20261121)
    events = [*tokens(300), USAGE, *tokens(100, start=300), result(), completed()]

    async def produce() -> None:
        attempt = await api.services.store.open_attempt(key_id(task_id))
        async with api.services.store.writer(attempt) as writer:
            for i, event in enumerate(events):
                await writer.append(event)
                if i % 5 == 0:
                    await asyncio.sleep(0.003)

    one_go = asyncio.create_task(read_sse(alice, url(task_id), params={"mode": "all"}))
    worker = asyncio.create_task(produce())
    pieces: list[Frame] = []
    last: str | None = None
    connections = 0
    while not pieces or pieces[-1].event != "completed":
        take = rng.randint(1, 40)
        params = {"mode": "all"}
        headers: dict[str, str] = {}
        if last is not None and rng.random() < 0.5:
            headers["Last-Event-ID"] = last
            if rng.random() < 0.5:
                params["after"] = "0"  # the header must win
        elif last is not None:
            params["after"] = last
        async with alice.stream("GET", url(task_id), params=params, headers=headers) as response:
            assert response.status_code == 200
            frames = sse_frames(response)
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    if frame.comment is not None:
                        continue
                    pieces.append(frame)
                    last = frame.id
                    take -= 1
                    if take == 0 or frame.event == "completed":
                        break  # drop the connection mid-stream
        connections += 1
        assert connections < 500
    await worker
    full = await asyncio.wait_for(one_go, 30)
    assert [(f.id, f.event, f.data) for f in pieces] == [(f.id, f.event, f.data) for f in full]
    assert [f.id for f in full] == [c for c, _ in await stored(api, task_id, "all")]
    assert len(full) == len(events) + 1 and connections > 10
    await no_live_streams(api)


async def test_a_disconnect_stops_the_server_side_tail(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    async with alice.stream("GET", url(task_id)) as response:
        frames = sse_frames(response)
        async with contextlib.aclosing(frames):
            first = await anext(frames)
        assert first.event == "queued"
        await eventually(lambda: _true(api.services.hub.subscriptions == 1))
    await no_live_streams(api)
    metrics = (await alice.get("/metrics")).text
    assert "agentstream_sse_clients 0" in metrics


async def test_pings_keep_a_quiet_stream_alive(settings: StreamsSettings, redis: Any) -> None:
    async with serve(api_settings(settings, ping_interval_s=0.1)) as api, api.client() as client:
        task_id = await submit(client)
        comments: list[str] = []
        async with client.stream("GET", url(task_id)) as response:
            frames = sse_frames(response)
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    if frame.comment is not None:
                        comments.append(frame.comment)
                        if len(comments) == 3:
                            break
        assert comments == ["ping", "ping", "ping"]


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"after": "yesterday"}, {}),
        ({}, {"Last-Event-ID": "12-ab"}),
        ({"after": "99999999999999999999999-0"}, {}),
        ({"mode": "loud"}, {}),
        ({"scope": "everywhere"}, {}),
        ({"limit": "0"}, {"Accept": "application/json"}),
        ({"limit": "1001"}, {"Accept": "application/json"}),
        ({"group": "g"}, {}),
        ({"group": "bad group", "consumer": "c"}, {}),
    ],
)
async def test_bad_query_values_are_400(
    alice: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str]
) -> None:
    task_id = await submit(alice)
    response = await alice.get(url(task_id), params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"


async def test_a_client_that_never_reads_is_cut_off(settings: StreamsSettings, redis: Any) -> None:
    """A reader that stops reading fills its socket, then its bounded buffer; after
    ``sse_slow_client_s`` the server gives up on it instead of buffering forever."""
    config = api_settings(settings, sse_buffer=4, sse_slow_client_s=0.3)
    async with serve(config) as api, api.client() as client:
        task_id = await submit(client)
        async with stalled_reader(api.url, url(task_id), ALICE["Authorization"]):
            await eventually(lambda: _true(api.services.metrics.sse_clients == 1))
            big = [{"type": "token", "content": "z" * 10_000} for _ in range(2_000)]  # 20 MB
            await run_worker(api.services.store, task_id, [*big, completed()])

            async def cut_off() -> bool:
                return api.services.metrics.slow_client_disconnects == 1

            await eventually(cut_off, timeout_s=20)
            await no_live_streams(api)
            metrics = (await client.get("/metrics")).text
            assert "agentstream_sse_slow_client_disconnects_total 1" in metrics


async def test_a_reader_ahead_of_a_rewound_stream_gets_a_reset_frame(alice: Any, api: Any) -> None:
    """Redis with ``appendfsync everysec`` may lose its last second of writes on a crash; a
    client that already saw them must be told, not shown other events under those seqs."""
    task_id = await submit(alice)
    store = api.services.store
    attempt = await store.open_attempt(key_id(task_id))
    async with store.writer(attempt) as writer:
        for i in range(5):
            await writer.append({"type": "token", "content": f"t{i}"})
    seen = [item async for item in store_replay(api, task_id)]
    await lose_last(api.services.redis, api.settings.streams, key_id(task_id), 2)
    second = await store.open_attempt(key_id(task_id))
    async with store.writer(second) as writer:
        await writer.append({"type": "retry", "reason": "redis restarted"})
        await writer.append(
            {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0}
        )
    async with alice.stream(
        "GET", f"/v1/tasks/{task_id}/events", headers={"Last-Event-ID": seen[-1][0]}
    ) as response:
        body = (await response.aread()).decode()
    frames = [f for f in body.split("\n\n") if f.strip() and not f.startswith(":")]
    assert "event: reset" in frames[0]
    assert f"id: {seen[-3][0]}" in frames[0]  # where the stream goes on from
    assert '"last_seq":4' in frames[0]
    assert "event: retry" in frames[1] and "event: completed" in frames[2]


async def store_replay(api: Any, task_id: str) -> Any:
    async for item in api.services.reader.replay(key_id(task_id)):
        yield item
