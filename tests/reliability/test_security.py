"""Scenario 8: security. Every ``/v1`` route without a key (401) or with another tenant's
key (404, the same answer as for a task that does not exist, so ids leak nothing); task
ids built to break out of a Redis key or a path; and the ``http_get`` tool against
loopback and private addresses: refused, without a connection, unless allow-listed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentstream.streams import StreamsSettings
from agentstream.worker.tools import ToolSettings, default_registry
from tests.api.server import ALICE, BOB, api_settings, serve

TRICKS = ["..%2F..%2Fetc", "%2e%2e", "a%00b", "a%0D%0Ab", "%7Bx%7D", "x}:events", "{x}", "a:b:c",
          "*", "a" * 65, "a" * 5000, "%C3%A9", "%F0%9F%98%80", "tsk_%252F"]  # fmt: skip


def routes(task_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/v1/tasks/{task_id}"
    return [
        ("GET", base, None),
        ("POST", f"{base}/cancel", None),
        ("GET", f"{base}/events", None),
        ("GET", f"{base}/groups", None),
        ("POST", f"{base}/groups/g1/ack", {"ids": ["1-0"]}),
    ]


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_every_route_needs_a_key_and_hides_other_tenants_tasks(
    settings: StreamsSettings, redis: Any
) -> None:
    async with (
        serve(api_settings(settings)) as api,
        api.client(ALICE) as alice,
        api.client(BOB) as bob,
        api.client(None) as anon,
    ):
        created = await alice.post("/v1/tasks", json={"input": "secret", "agent": "llm"})
        task_id = created.json()["task_id"]
        params = {"after": "$"}
        checked = 0
        for method, path, body in [*routes(task_id), ("POST", "/v1/tasks", {"input": "x", "agent": "llm"}),
                                       ("GET", "/v1/tasks", None)]:  # fmt: skip
            for headers in (
                {},
                {"Authorization": "Bearer nope"},
                {"Authorization": "Basic a2V5LWFsaWNl"},
            ):
                response = await anon.request(method, path, json=body, params=params, headers=headers)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert "secret" not in response.text and task_id not in response.text
                checked += 1
        for method, path, body in routes(task_id):
            other = await bob.request(method, path, json=body, params=params)
            missing = await bob.request(method, path.replace(task_id, "tsk_doesnotexist"), json=body,
                                            params=params)  # fmt: skip
            assert other.status_code == missing.status_code == 404, (method, path, other.text)
            assert other.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
            assert other.text.replace(task_id, "X") == missing.text.replace("tsk_doesnotexist", "X")
            checked += 1
        # bob's task list does not show alice's task; alice's id is bob's to use (ids are per
        # tenant): his own new task, nothing of alice's
        listed = await bob.get("/v1/tasks")
        assert task_id not in listed.text
        clash = await bob.post("/v1/tasks", json={"input": "x", "agent": "llm", "task_id": task_id})
        assert clash.status_code == 202 and "secret" not in clash.text and "alice" not in clash.text
        assert (await alice.get(f"/v1/tasks/{task_id}")).json()["status"] == "queued"
        for trick in TRICKS:
            for method, path, body in routes(trick):
                response = await alice.request(method, path, json=body, params=params)
                assert response.status_code in (404, 405), (
                    method,
                    path,
                    response.status_code,
                    response.text,
                )
                checked += 1
            submitted = await alice.post("/v1/tasks", json={"input": "x", "agent": "llm", "task_id": trick})
            assert submitted.status_code in (400, 422), (trick, submitted.text)
            checked += 1
    print(f"\nscenario 8: {checked} auth/tenant/id-trick requests answered 401/404/4xx without leaking")


class CountingServer:
    """A loopback HTTP server that counts connections: a refused fetch must not connect."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.reliability
@pytest.mark.timeout(60)
async def test_http_get_refuses_loopback_and_private_addresses_unless_allow_listed() -> None:
    counter = CountingServer()
    async with counter as port:
        loopback = [f"http://127.0.0.1:{port}/", f"http://localhost:{port}/", f"http://127.1:{port}/",
                    f"http://2130706433:{port}/", f"http://0x7f000001:{port}/", f"http://[::ffff:127.0.0.1]:{port}/",
                    f"http://0.0.0.0:{port}/", f"http://127.0.0.1.:{port}/", f"http://LOCALHOST:{port}/"]  # fmt: skip
        private = ["http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.1.1/", "http://169.254.169.254/",
                   "http://100.64.0.1/", "http://[fd00::1]/", "http://[fe80::1]/", "http://224.0.0.1/"]  # fmt: skip
        wildcard = default_registry(ToolSettings(http_get_allow=("*",), http_get_timeout_s=2))
        named = default_registry(ToolSettings(http_get_allow=("example.com",), http_get_timeout_s=2))
        refused = 0
        for url in [*loopback, *private, "file:///etc/passwd", f"gopher://127.0.0.1:{port}/"]:
            for registry in (wildcard, named):
                outcome = await registry.call("http_get", {"url": url})
                assert outcome.success is False, (url, outcome)
                assert outcome.error and ("not allowed" in outcome.error or "non-public" in outcome.error
                                          or "only http" in outcome.error or "resolve" in outcome.error), outcome.error  # fmt: skip
                refused += 1
        assert counter.connections == 0, "a refused fetch reached the loopback server"
        allowed = default_registry(ToolSettings(http_get_allow=("127.0.0.1",), http_get_timeout_s=10))
        outcome = await allowed.call("http_get", {"url": f"http://127.0.0.1:{port}/"})
        assert outcome.success, outcome
        assert counter.connections == 1
    print(
        f"\nscenario 8: http_get refused {refused} loopback/private/scheme fetches without connecting; "
        "an explicitly listed 127.0.0.1 is reached"
    )
