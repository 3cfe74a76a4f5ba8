"""Scenario 7: fuzzing. Schemathesis generates requests from the API's own
``/openapi.json`` and sends them to a real API process over loopback: no 5xx, and every
response matches the status codes, content types and schemas the document declares.
Then hand-made malformed input: bad and huge headers, broken bodies, unicode ids; each
must get a clean 4xx in the one error shape."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.processes import ApiProcess, child_env

KEY = {"Authorization": "Bearer key-t"}
EXAMPLES = int(os.environ.get("AGENTSTREAM_FUZZ_EXAMPLES", 40))
#: ST202 expects every schema-valid request to be accepted, but a body ``task_id`` and an
#: ``Idempotency-Key`` that differ are each valid and together a documented 400, a rule
#: OpenAPI cannot state (RELIABILITY.md, finding F4).
EXCLUDED = [schemathesis.checks.positive_data_acceptance]


@pytest.fixture
def api(redis_url: str, tmp_path: Path) -> Iterator[ApiProcess]:
    prefix = f"fz{uuid.uuid4().hex[:8]}"
    env = child_env(redis_url, prefix, AGENTSTREAM_API_KEYS="t:key-t,u:key-u", AGENTSTREAM_RATE_LIMIT="0",
                    AGENTSTREAM_SSE_MAX_DURATION_S="2")  # fmt: skip
    proc = ApiProcess(env, tmp_path / "api.log")
    try:
        asyncio.run(proc.ready())
        yield proc
    finally:
        proc.stop()


@pytest.mark.reliability
@pytest.mark.timeout(240)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(api: ApiProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def check(case: schemathesis.Case) -> None:
            try:
                case.call_and_validate(base_url=api.url, headers=KEY, timeout=10, excluded_checks=EXCLUDED)
            except Exception as exc:  # collect per operation, report them all
                failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:400]}")
                raise

        with contextlib.suppress(Exception):  # recorded in ``failures``
            check()
    print(f"\nscenario 7: schemathesis {schemathesis.SCHEMATHESIS_VERSION}, {operations} operations x "
          f"{EXAMPLES} examples, {len(failures)} failing")  # fmt: skip
    assert not failures, "\n\n".join(failures[:8])


def ten_megabytes(client: httpx.Client, api: ApiProcess) -> httpx.Response:
    """A 10 MB body: refused from its Content-Length before it is read. Sent over a raw
    socket, since the server answers and closes while an HTTP client would still upload
    (a reset then hides the 413)."""
    body_size = 10_000_000
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer key-t\r\n"
            b'Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{"input": "' % body_size
        )
        raw = b""
        while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return httpx.Response(status, content=body, headers={"content-type": "application/json"})


@pytest.mark.reliability
@pytest.mark.timeout(60)
def test_malformed_requests_get_clean_4xx(api: ApiProcess) -> None:
    # no keep-alive: a 500 makes uvicorn drop the connection, which would fail the next probe
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=api.url, timeout=10.0, limits=limits) as client:
        created = client.post("/v1/tasks", json={"input": "hi", "agent": "llm"}, headers=KEY)
        assert created.status_code == 202
        task = created.json()["task_id"]
        events = f"/v1/tasks/{task}/events"
        cases: list[tuple[str, httpx.Response, set[int]]] = []

        def probe(name: str, response: httpx.Response, allowed: set[int]) -> None:
            cases.append((name, response, allowed))

        for bad in ["nope", "-1", "1-", "1-2-3", "99999999999999999999999-0", "\u00e9", "1_2", "0x10"]:
            probe(f"Last-Event-ID {bad!r}", client.get(events, headers={**KEY, "Last-Event-ID": bad.encode()}), {400})  # fmt: skip
            probe(f"after={bad!r}", client.get(events, params={"after": bad}, headers=KEY), {400})
        probe(
            "huge Last-Event-ID",
            client.get(events, headers={**KEY, "Last-Event-ID": "1" * 60_000}),
            {400, 431},
        )
        probe("huge header", client.get(events, headers={**KEY, "X-Junk": "x" * 200_000}), {200, 400, 431})
        probe("starting_after=-1", client.get(events, params={"starting_after": "-1"}, headers=KEY), {400})
        probe("mode=bogus", client.get(events, params={"mode": "bogus"}, headers=KEY), {400})
        probe(
            "limit=0",
            client.get(events, params={"limit": "0"}, headers={**KEY, "Accept": "application/json"}),
            {400},
        )
        post = "/v1/tasks"
        json_headers = {**KEY, "Content-Type": "application/json"}
        probe("invalid JSON", client.post(post, content=b"{not json", headers=json_headers), {400, 422})
        probe("JSON array", client.post(post, content=b"[1,2]", headers=json_headers), {422})
        probe("wrong types", client.post(post, json={"input": 5, "agent": ["llm"]}, headers=KEY), {422})
        # (a well-formed unknown name is refused only against a live catalog: tests/api/test_agents.py)
        probe(
            "malformed agent", client.post(post, json={"input": "x", "agent": "wiz ard"}, headers=KEY), {422}
        )
        probe("max_iterations -1", client.post(post, json={"input": "x", "agent": "hybrid", "max_iterations": -1}, headers=KEY), {422})  # fmt: skip
        # BUG (fails today): orjson cannot encode integers beyond 64 bits; create_task raises
        # TypeError and the API answers 500 (found by schemathesis; RELIABILITY.md, finding F3)
        probe("2**70 in metadata", client.post(post, content=b'{"input": "x", "agent": "llm", "metadata": {"n": 1180591620717411303424}}', headers=json_headers), {422})  # fmt: skip
        probe("lone surrogate", client.post(post, content=b'{"input": "\\ud800", "agent": "llm"}', headers=json_headers), {202, 422})  # fmt: skip
        probe("10 MB body", ten_megabytes(client, api), {413})
        probe("not JSON content type", client.post(post, content=b"input=x", headers={**KEY, "Content-Type": "text/plain"}), {400, 415, 422})  # fmt: skip
        for task_id in [
            "\u00e9t\u00e9",
            "\U0001f600",
            "a" * 65,
            "a b",
            "a{b}",
            "a:b",
            "..",
            "%2e%2e",
            "a%00b",
            "a%0Ab",
        ]:
            probe(f"task_id {task_id!r} in body", client.post(post, json={"input": "x", "agent": "llm", "task_id": task_id}, headers=KEY), {400, 422})  # fmt: skip
            probe(f"task_id {task_id!r} in path", client.get(f"/v1/tasks/{task_id}", headers=KEY), {404})
            probe(f"events of {task_id!r}", client.get(f"/v1/tasks/{task_id}/events", headers=KEY), {404})
    bad = []
    for name, response, allowed in cases:
        ok = response.status_code in allowed
        if ok and response.status_code >= 400 and response.status_code != 431:
            body = response.json()
            ok = set(body) == {"error"} and {"code", "message"} <= set(body["error"])
        if not ok:
            bad.append(f"{name}: {response.status_code} {response.text[:200]}")
    print(f"\nscenario 7: {len(cases)} malformed requests, {len(cases) - len(bad)} answered as expected")
    assert not bad, "\n".join(bad)
