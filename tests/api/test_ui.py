"""The live viewer at ``/ui``: its session cookie and the SSE max-duration knob it relies
on to resume (the page itself in a browser: ``test_ui_browser.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentstream.api import ApiSettings
from agentstream.api.auth import SESSION_COOKIE, UiSessions
from agentstream.streams import StreamsSettings, UsageError
from tests.api.helpers import completed, read_sse, run_worker, tokens, write_slowly
from tests.api.server import ALICE, BOB, Api, api_settings, serve, submit

# ----------------------------------------------------------------- session cookie


@contextlib.asynccontextmanager
async def logged_in(api: Api, key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client without a bearer key, holding the viewer's session cookie."""
    async with api.client({}) as client:
        response = await client.post("/ui/session", json={"api_key": key})
        assert response.status_code == 200, response.text
        yield client


async def test_login_sets_a_signed_read_only_cookie_that_holds_no_key(api: Api) -> None:
    async with api.client({}) as anonymous:
        response = await anonymous.post("/ui/session", json={"api_key": "key-alice"})
    assert response.status_code == 200
    assert response.json() == {
        "tenant": "alice", "open_mode": False, "expires_in_s": 8 * 3600, "can_answer": False, "csrf_token": None,
    }  # fmt: skip
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes and "secure" not in attributes  # http here
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    value = cookie.split(";")[0].removeprefix(f"{SESSION_COOKIE}=")
    assert "key-alice" not in value and "alice" not in value  # tenant base64'd, key nowhere


async def test_the_cookie_reads_tasks_of_its_tenant_only(
    api: Api, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    task_id = await submit(alice, "alice's task")
    await run_worker(api.services.store, task_id, [*tokens(3), completed()])
    bob_task = await submit(bob, "bob's task")
    async with logged_in(api, "key-alice") as viewer:
        assert (await viewer.get("/ui/session")).json() == {
            "tenant": "alice", "open_mode": False, "expires_in_s": None, "can_answer": False, "csrf_token": None,
        }  # fmt: skip
        frames = await read_sse(viewer, f"/v1/tasks/{task_id}/events")
        assert [f.event for f in frames] == ["queued", "token", "token", "token", "completed"]
        assert (await viewer.get(f"/v1/tasks/{task_id}")).json()["status"] == "succeeded"
        assert [t["task_id"] for t in (await viewer.get("/v1/tasks")).json()["tasks"]] == [task_id]
        for path in (f"/v1/tasks/{bob_task}", f"/v1/tasks/{bob_task}/events"):
            assert (await viewer.get(path)).status_code == 404, path
        # read-only: a cookie neither submits nor cancels
        assert (await viewer.post("/v1/tasks", json={"input": "x"})).status_code == 401
        assert (await viewer.post(f"/v1/tasks/{task_id}/cancel")).status_code == 401
        # a bearer key still wins over the cookie
        assert (await viewer.get(f"/v1/tasks/{bob_task}", headers=BOB)).status_code == 200

        assert (await viewer.delete("/ui/session")).status_code == 204
        assert SESSION_COOKIE not in viewer.cookies
        response = await viewer.get(f"/v1/tasks/{task_id}")
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "cookie",
    ["", "garbage", "YWxpY2U.9999999999.forged", "Ym9i.9999999999.c2lnbmF0dXJl", "a.b.c.d"],
)
async def test_a_forged_or_broken_cookie_is_401(api: Api, alice: httpx.AsyncClient, cookie: str) -> None:
    task_id = await submit(alice)
    async with api.client({}, cookies={SESSION_COOKIE: cookie}) as client:
        for path in ("/ui/session", "/v1/tasks", f"/v1/tasks/{task_id}", f"/v1/tasks/{task_id}/events"):
            response = await client.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"]["code"] == "unauthorized"


async def test_a_wrong_key_gets_no_cookie(api: Api) -> None:
    async with api.client({}) as client:
        response = await client.post("/ui/session", json={"api_key": "key-mallory"})
        assert response.status_code == 401 and "set-cookie" not in response.headers
        assert (await client.post("/ui/session", json={})).status_code == 422


def test_session_tokens_expire_and_die_with_their_tenant_or_secret() -> None:
    sessions = UiSessions(b"s" * 32, ttl_s=60, tenants=frozenset({"alice"}))
    token = sessions.issue("alice", now=1000)
    assert sessions.tenant_of(token, now=1059) == "alice"
    assert sessions.tenant_of(token, now=1060) is None  # expired
    assert sessions.tenant_of(sessions.issue("bob", now=1000), now=1001) is None  # no longer a tenant
    assert UiSessions(b"t" * 32, 60, frozenset({"alice"})).tenant_of(token, now=1001) is None
    body, _, signature = token.rpartition(".")
    tenant, _, expiry = body.partition(".")
    assert sessions.tenant_of(f"{tenant}.{int(expiry) + 3600}.{signature}", now=1001) is None


async def test_open_mode_needs_no_login(settings: StreamsSettings, redis: Any) -> None:
    async with serve(api_settings(settings, api_keys=())) as api, api.client({}) as client:
        response = await client.post("/ui/session", json={"api_key": "anything"})
        session = response.json()
        assert {k: session[k] for k in ("tenant", "open_mode", "expires_in_s", "can_answer")} == {
            "tenant": "default", "open_mode": True, "expires_in_s": None, "can_answer": True,
        }  # fmt: skip
        assert session["csrf_token"]  # open mode answers too, from the page only (its token)
        assert "set-cookie" not in response.headers
        assert (await client.get("/ui/session")).json()["open_mode"] is True


async def test_the_page_and_its_files_are_served_with_a_strict_policy(api: Api) -> None:
    async with api.client({}) as client:
        page = await client.get("/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="ui/app.js">' in page.text
        for name, kind in (("app.js", "text/javascript"), ("transcript.js", "text/javascript"),
                           ("modes.js", "text/javascript"), ("style.css", "text/css")):  # fmt: skip
            response = await client.get(f"/ui/{name}")
            assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        for name in ("index.html", "..%2Fapp.py", "nope.js"):
            assert (await client.get(f"/ui/{name}")).status_code == 404, name


def test_the_viewer_knobs_come_from_the_environment() -> None:
    env = {
        "AGENTSTREAM_SSE_MAX_DURATION_S": "300",
        "AGENTSTREAM_SSE_RETRY_MS": "500",
        "AGENTSTREAM_UI_SECRET": "s" * 32,
        "AGENTSTREAM_UI_SESSION_S": "600",
    }
    settings = ApiSettings.from_env(env)
    assert (settings.sse_max_duration_s, settings.sse_retry_ms) == (300, 500)
    assert (settings.ui_secret, settings.ui_session_s) == ("s" * 32, 600)
    assert "s" * 32 not in repr(settings)
    defaults = ApiSettings.from_env({})
    assert (defaults.sse_max_duration_s, defaults.sse_retry_ms, defaults.ui_secret) == (0, 0, None)
    with pytest.raises(UsageError, match="at least 16"):
        ApiSettings.from_env({"AGENTSTREAM_UI_SECRET": "short"})


# -------------------------------------------------------------- SSE max duration


def parse_body(body: str) -> list[dict[str, str]]:
    """The field blocks of an SSE body (``retry``-only blocks included)."""
    blocks = [block for block in body.split("\n\n") if block]
    return [dict(line.split(": ", 1) for line in block.split("\n")) for block in blocks]


async def test_max_duration_ends_responses_between_frames_and_the_cursor_resumes(
    settings: StreamsSettings, redis: Any
) -> None:
    async with (
        serve(api_settings(settings, sse_max_duration_s=0.2, sse_retry_ms=250)) as api,
        api.client(ALICE) as alice,
    ):
        task_id = await submit(alice)
        events = [*tokens(12), completed()]
        writer = asyncio.create_task(write_slowly(api.services.store, task_id, events, 0.05))
        seen: list[str] = []
        cursor, responses = "0", 0
        started = time.monotonic()
        while not seen or seen[-1] != "completed":
            responses += 1
            response = await alice.get(f"/v1/tasks/{task_id}/events", headers={"Last-Event-ID": cursor})
            assert response.status_code == 200
            assert response.text.startswith("retry: 250\n\n") and response.text.endswith("\n\n")
            frames = [block for block in parse_body(response.text) if "event" in block]
            seen += [frame["event"] for frame in frames]
            cursor = frames[-1]["id"] if frames else cursor
            assert time.monotonic() - started < 10
        await writer
    assert seen == ["queued", *["token"] * 12, "completed"]  # nothing lost, nothing twice
    assert responses >= 3  # ~0.65 s of writing, cut every 0.2 s
