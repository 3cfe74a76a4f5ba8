"""Bearer keys, tenants and the open dev mode."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentstream.api import ApiSettings, check_bind
from agentstream.api.auth import ApiKeys, is_loopback
from agentstream.streams import StreamsSettings, UsageError
from tests.api.helpers import completed, key_id, read_sse, run_worker, tokens
from tests.api.server import BOB, Api, api_settings, serve, submit

ROUTES = [
    ("POST", "/v1/tasks", {"input": "x"}),
    ("GET", "/v1/tasks/{id}", None),
    ("POST", "/v1/tasks/{id}/cancel", None),
    ("GET", "/v1/tasks/{id}/events", None),
    ("GET", "/v1/tasks/{id}/groups", None),
    ("POST", "/v1/tasks/{id}/groups/g1/ack", {"ids": ["1-0"]}),
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic a2V5LWFsaWNl"},
        {"Authorization": "Bearer"},
    ],
)
async def test_every_route_needs_a_valid_key(
    api: Api, alice: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    task_id = await submit(alice)
    async with api.client(headers) as client:
        for method, path, body in ROUTES:
            response = await client.request(method, path.format(id=task_id), json=body)
            assert response.status_code == 401, (method, path)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"


async def test_probes_and_the_schema_need_no_key(api: Api) -> None:
    async with api.client({}) as client:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path


async def test_another_tenant_gets_404_on_every_route_of_a_task(
    api: Api, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    task_id = await submit(alice, "alice's secret")
    await run_worker(api.services.store, task_id, [*tokens(3), completed()])
    await read_sse(alice, f"/v1/tasks/{task_id}/events", params={"group": "g1", "consumer": "c"})
    missing = "no-such-task"
    for method, path, body in ROUTES[1:]:
        for target in (task_id, missing):
            for accept in ("text/event-stream", "application/json"):
                response = await bob.request(
                    method, path.format(id=target), json=body, headers={"Accept": accept}
                )
                assert response.status_code == 404, (method, path)
                assert response.json() == {"error": {"code": "not_found", "message": f"no task {target!r}"}}
    grouped = await bob.get(f"/v1/tasks/{task_id}/events", params={"group": "g1", "consumer": "c"})
    assert grouped.status_code == 404
    meta = await api.services.store.meta(key_id(task_id))
    assert meta is not None and meta.cancel_requested is None  # bob's cancel did nothing
    assert (await alice.get(f"/v1/tasks/{task_id}")).status_code == 200


async def test_open_mode_serves_everyone_as_tenant_default(settings: StreamsSettings, redis: Any) -> None:
    async with serve(api_settings(settings, api_keys=())) as api, api.client({}) as client:
        task_id = await submit(client)
        meta = await api.services.store.meta(key_id(task_id, "default"))
        assert meta is not None and meta.owner == "default"
        async with api.client(BOB) as anyone:
            assert (await anyone.get(f"/v1/tasks/{task_id}")).status_code == 200


def test_check_bind_refuses_open_mode_beyond_loopback() -> None:
    open_mode = ApiSettings(api_keys=())
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2", "[::1]"):
        check_bind(host, open_mode)
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com", ""):
        with pytest.raises(UsageError, match="AGENTSTREAM_API_KEYS"):
            check_bind(host, open_mode)
    check_bind("0.0.0.0", ApiSettings(api_keys=(("t", "k"),)))


def test_keys_map_to_tenants() -> None:
    keys = ApiKeys((("alice", "k1"), ("bob", "k2"), ("carol", "k1-longer")))
    assert keys.tenant_of("k1") == "alice"
    assert keys.tenant_of("k2") == "bob"
    assert keys.tenant_of("k1-longer") == "carol"
    assert keys.tenant_of("k") is None and keys.tenant_of("") is None
    assert keys.authenticate(" k2 ") == "bob"
    assert ApiKeys(()).authenticate(None) == "default"
    assert "k1" not in repr(ApiSettings(api_keys=(("alice", "k1"),)))
    assert is_loopback("127.0.0.1") and not is_loopback("10.0.0.1")
