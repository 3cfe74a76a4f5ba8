"""Issue 10, item 4 (caps): the group-stream cap is atomic, and one tenant cannot take
every live-stream slot.

The cap on consumer-group streams was checked in the route and counted in the response,
with awaits between: concurrent requests all passed the check (33 of 32 were seen). A
burst of 16 concurrent group streams against a cap of 4 must get exactly 4.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import pytest

from agentstream.streams import StreamsSettings
from tests.api.server import BOB, api_settings, serve, submit


async def open_stream(client: httpx.AsyncClient, url: str, params: dict[str, str],
                      stack: contextlib.AsyncExitStack) -> int:  # fmt: skip
    """Open an SSE response and keep it open (until ``stack`` closes); its status."""
    response = await stack.enter_async_context(client.stream("GET", url, params=params))
    return response.status_code


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_a_burst_of_group_streams_never_passes_the_cap(settings: StreamsSettings, redis: Any) -> None:
    async with serve(api_settings(settings, max_group_streams=4)) as api, api.client() as alice:
        task_id = await submit(alice)
        url = f"/v1/tasks/{task_id}/events"
        async with contextlib.AsyncExitStack() as stack:
            statuses = await asyncio.gather(*(open_stream(alice, url, {"group": "g", "consumer": f"c{i}"}, stack)
                                              for i in range(16)))  # fmt: skip
            assert sorted(statuses) == [200] * 4 + [503] * 12
            assert api.services.metrics.group_streams == 4
        async with asyncio.timeout(20):  # every slot comes back once the responses end
            while api.services.metrics.sse_clients:  # noqa: ASYNC110
                await asyncio.sleep(0.02)


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_one_tenant_cannot_take_every_slot(settings: StreamsSettings, redis: Any) -> None:
    async with serve(api_settings(settings, max_sse_clients_per_tenant=3)) as api, api.client() as alice, \
            api.client(BOB) as bob:  # fmt: skip
        mine, theirs = await submit(alice), await submit(bob)
        async with contextlib.AsyncExitStack() as stack:
            held = [await open_stream(alice, f"/v1/tasks/{mine}/events", {}, stack) for _ in range(3)]
            assert held == [200, 200, 200]
            refused = await alice.get(f"/v1/tasks/{mine}/events")
            assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
            assert refused.json()["error"]["code"] == "rate_limited"
            assert await open_stream(bob, f"/v1/tasks/{theirs}/events", {}, stack) == 200
