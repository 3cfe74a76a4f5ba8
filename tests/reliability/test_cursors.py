"""Issue 10, item 2: the largest cursor, and any cursor past the end of a stream.

``18446744073709551615-18446744073709551615`` passes the cursor parser, and Redis refuses
it as the exclusive start of a range: the JSON page answered 500 and SSE an empty 200
(which makes a browser's EventSource reconnect forever). A cursor past the end must read
like a cursor at the end: never a 5xx, never an empty 200.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentstream.streams import StreamsSettings
from tests.api.helpers import completed, key_id, run_worker, sse_frames, tokens
from tests.api.server import api_settings, serve, submit

LARGEST = "18446744073709551615-18446744073709551615"
PAST = ["99999999999999-0", "99999999999999", LARGEST]


async def sse(client: httpx.AsyncClient, url: str, **kwargs: Any) -> tuple[int, list[Any]]:
    """Status and frames of an SSE request whose response ends (a finished task)."""
    async with client.stream("GET", url, **kwargs) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, []
        return 200, [f async for f in sse_frames(response) if f.comment is None]


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_a_cursor_past_the_end_of_a_finished_stream_reads_as_its_end(
    settings: StreamsSettings, redis: Any
) -> None:
    async with serve(api_settings(settings)) as api, api.client() as alice:
        task_id = await submit(alice)
        await run_worker(api.services.store, task_id, [*tokens(3), completed()])
        url = f"/v1/tasks/{task_id}/events"
        for cursor in PAST:
            page = await alice.get(url, params={"after": cursor}, headers={"Accept": "application/json"})
            assert page.status_code == 200, (cursor, page.text)
            assert page.json()["events"] == [] and page.json()["done"] is True
            for kwargs in ({"params": {"after": cursor}}, {"headers": {"Last-Event-ID": cursor}}):
                status, frames = await sse(alice, url, **kwargs)
                # 204: nothing more will come, and EventSource stops reconnecting on it
                assert (status, frames) == (204, []), (cursor, kwargs)


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_a_cursor_past_the_end_of_a_running_stream_resets_to_its_end_and_follows(
    settings: StreamsSettings, redis: Any
) -> None:
    async with serve(api_settings(settings)) as api, api.client() as alice:
        task_id = await submit(alice)
        store = api.services.store
        attempt = await store.open_attempt(key_id(task_id))
        url = f"/v1/tasks/{task_id}/events"
        async with store.writer(attempt) as writer:
            await writer.write({"type": "token", "content": "before"})
            for cursor in PAST:
                page = await alice.get(url, params={"after": cursor}, headers={"Accept": "application/json"})
                assert page.status_code == 200, (cursor, page.text)
                assert [e["type"] for e in page.json()["events"]] == ["reset"]
                assert page.json()["events"][0]["last_seq"] == 2  # queued, the token
            streams = [
                alice.stream("GET", url, params={"after": LARGEST}),
                alice.stream("GET", url, headers={"Last-Event-ID": LARGEST}),
            ]
            seen: list[list[str]] = []
            for stream in streams:
                async with stream as response:
                    assert response.status_code == 200
                    frames = sse_frames(response)
                    first = await anext(frames)
                    assert first.event == "reset" and first.json["last_seq"] == 2
                    seen.append([first.event or ""])
            assert seen == [["reset"], ["reset"]]
            await writer.append(completed())
        # and once it ended, the same cursors read as its end
        status, _ = await sse(alice, url, params={"after": LARGEST})
        assert status == 204
