"""The live viewer at ``/ui``: its session cookie, the SSE max-duration knob it relies on to
resume, and the page itself in a real headless Chromium.

The browser test needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright``
package (only its driver: no browser download); it skips, saying so, without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from agentstream.api import ApiSettings
from agentstream.api.auth import SESSION_COOKIE, UiSessions
from agentstream.streams import StreamsSettings, TaskStore, UsageError

from tests.api.helpers import completed, key_id, read_sse, run_worker, tokens
from tests.api.server import ALICE, BOB, Api, api_settings, serve, submit

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


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
    assert response.json() == {"tenant": "alice", "open_mode": False, "expires_in_s": 8 * 3600}
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
            "tenant": "alice", "open_mode": False, "expires_in_s": None,
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
        assert response.json() == {"tenant": "default", "open_mode": True, "expires_in_s": None}
        assert "set-cookie" not in response.headers
        assert (await client.get("/ui/session")).json()["open_mode"] is True


async def test_the_page_and_its_files_are_served_with_a_strict_policy(api: Api) -> None:
    async with api.client({}) as client:
        page = await client.get("/ui")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="ui/app.js">' in page.text
        for name, kind in (("app.js", "text/javascript"), ("transcript.js", "text/javascript"),
                           ("style.css", "text/css")):  # fmt: skip
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


async def write_slowly(
    store: TaskStore, task_id: str, events: Sequence[Mapping[str, Any]], delay_s: float
) -> None:
    """Play the worker, one stored event every ``delay_s``."""
    attempt = await store.open_attempt(key_id(task_id))
    async with store.writer(attempt) as writer:
        for event in events:
            await asyncio.sleep(delay_s)
            await writer.write(event)


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


# ------------------------------------------------------------------- the browser


def shown_answer(events: Sequence[Mapping[str, Any]]) -> str:
    """The answer a viewer should end up showing: every token, except those of a model
    turn a ``retry`` interrupted (a turn is complete once its tool calls are ready)."""
    kept = partial = ""
    for event in events:
        if event["type"] == "token":
            partial += event["content"]
        elif event["type"] == "tool_calls_ready":
            kept, partial = kept + partial, ""
        elif event["type"] == "retry":
            partial = ""
    return kept + partial


def say(text: str, *pieces: str) -> list[dict[str, Any]]:
    return [{"type": "token", "content": piece} for piece in (pieces or (text,))]


CALL = {"tool_name": "calculator", "tool_call_id": "call_1", "parameters": {"expression": "17 * 23"}}
ATTEMPT_1: list[dict[str, Any]] = [
    {"type": "started", "agent": "hybrid"},
    {"type": "iteration_start", "iteration": 1, "max_iterations": 4, "remaining": 3},
    *say("", "Let me ", "work ", "this ", "out."),
    {"type": "tool_call_delta", "index": 0, "tool_call_id": "call_1", "tool_name": "calculator",
     "arguments_delta": '{"expression": ', "arguments": '{"expression": '},
    {"type": "tool_call_delta", "index": 0, "arguments_delta": '"17 * 23"}',
     "arguments": '{"expression": "17 * 23"}'},
    {"type": "usage", "prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52},
    {"type": "tool_calls_ready", "tool_calls": [{"index": 0, **CALL}]},
    {"type": "thought", "content": "Let me work this out.", "iteration": 1},
    {"type": "action", **CALL, "iteration": 1},
    {"type": "tool_call", **CALL},
    {"type": "tool_result", "tool_name": "calculator", "tool_call_id": "call_1", "result": 391, "success": True},
    {"type": "observation", "content": "calculator: 391", "iteration": 1, "has_error": False},
    {"type": "iteration_start", "iteration": 2, "max_iterations": 4, "remaining": 2},
    *say("", "The ", "ans"),  # the worker dies here
]  # fmt: skip
ATTEMPT_2: list[dict[str, Any]] = [
    {"type": "retry", "attempt": 2, "reason": "worker lost"},
    {"type": "iteration_start", "iteration": 2, "max_iterations": 4, "remaining": 2},
    *say("", "The ", "answer ", "is ", "391", "."),
    {"type": "usage", "prompt_tokens": 60, "completion_tokens": 6, "total_tokens": 66},
    {"type": "thought", "content": "The answer is 391.", "iteration": 2},
    {"type": "result", "output": "The answer is 391.", "success": True, "execution_time": 2.5,
     "reason": "completed", "iterations": 2, "tool_calls_count": 1,
     "usage": {"prompt_tokens": 100, "completion_tokens": 18, "total_tokens": 118}},
    {"type": "completed", "success": True, "status": "succeeded", "execution_time": 2.6},
]  # fmt: skip


async def play_hybrid_task(store: TaskStore, task_id: str, delay_s: float) -> None:
    """Two attempts of a hybrid agent, one event every ``delay_s``: the first dies mid-turn."""
    await write_slowly(store, task_id, ATTEMPT_1, delay_s)
    await write_slowly(store, task_id, ATTEMPT_2, delay_s)


@pytest.fixture
def chromium() -> str:
    if not CHROMIUM.exists():
        pytest.skip(f"the viewer test needs Chromium at {CHROMIUM} (apt-get install chromium)")
    return str(CHROMIUM)


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    """Headless Chromium driven by Playwright (its driver only: no browser download)."""
    playwright = pytest.importorskip(
        "playwright.async_api", reason="the viewer test needs the playwright package (pip install playwright)"
    )
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def test_the_viewer_shows_a_live_task_through_server_cut_connections(
    settings: StreamsSettings, redis: Any, browser: Any
) -> None:
    options = {"sse_max_duration_s": 0.3, "sse_retry_ms": 100}
    async with serve(api_settings(settings, **options)) as api, api.client(ALICE) as alice:
        other = await submit(alice, "an older task")
        task_id = await submit(alice, "What is 17 * 23?", agent="hybrid")
        page = await browser.new_page()
        event_requests: list[Any] = []
        page.on("request", lambda r: event_requests.append(r) if "/events" in r.url else None)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        await page.goto(f"{api.url}/ui")
        await page.fill("#api-key", "key-alice")
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector(f'.task-item[data-task-id="{other}"]')
        writer = asyncio.create_task(play_hybrid_task(api.services.store, task_id, 0.08))
        try:
            await page.click(f'.task-item[data-task-id="{task_id}"] a')
            await page.wait_for_selector("#task[data-stream='1'] #conn[data-state=ended]", timeout=20_000)
        finally:
            await writer

        replay = [event async for _, event in api.services.reader.replay(key_id(task_id))]
        shown = "".join(await page.locator(".text-body").all_text_contents())
        assert shown == shown_answer(replay) == "Let me work this out.The answer is 391."
        assert await page.text_content("#cursor") == replay[-1]["id"]
        assert await page.text_content("#task-status") == "succeeded"
        assert await page.text_content(".entry-retry") is not None
        assert "17 * 23" in (await page.text_content(".entry-tool .tool-args") or "")
        assert await page.text_content(".entry-tool .tool-result") == "→ 391"
        assert await page.text_content("#stat-usage") == "118 (100 in + 18 out)"
        assert await page.text_content("#stat-events") == str(len(replay))

        # the server cut the stream every 0.3 s; EventSource came back with Last-Event-ID
        assert len(event_requests) >= 3
        resumed = [(await r.all_headers()).get("last-event-id") for r in event_requests[1:]]
        assert all(resumed) and resumed == sorted(resumed, key=lambda c: tuple(map(int, c.split("-"))))
        assert int(await page.text_content("#reconnects") or 0) == len(event_requests) - 1

        # another mode reads the same stream from the start through another filter
        await page.select_option("#mode", "output")
        await page.wait_for_selector("#task[data-stream='2'][data-mode=output] #conn[data-state=ended]")
        assert await page.locator(".text-body").count() == 0
        assert await page.text_content(".result-output") == "The answer is 391."
        assert await page.text_content("#cursor") == replay[-1]["id"]
        assert await page.text_content("#stat-usage") == "118 (100 in + 18 out)"  # from the result
        # and "replay from start" reads it all again
        await page.select_option("#mode", "all")
        await page.wait_for_selector("#task[data-stream='3'][data-mode=all] #conn[data-state=ended]")
        await page.click("#replay")
        await page.wait_for_selector("#task[data-stream='4'] #conn[data-state=ended]")
        assert "".join(await page.locator(".text-body").all_text_contents()) == shown
        assert await page.text_content("#stat-events") == str(len(replay))
        assert errors == []
        await page.close()


async def test_the_viewer_marks_a_gap_and_hides_other_tenants_tasks(
    api: Api, alice: httpx.AsyncClient, bob: httpx.AsyncClient, browser: Any
) -> None:
    task_id = await submit(alice, "an old task")
    await run_worker(api.services.store, task_id, [*say("", "lost ", "kept ", "text"), completed()])
    key = api.settings.streams.keys.events(key_id(task_id))
    await api.services.redis.xtrim(key, maxlen=3, approximate=False)  # queued and "lost " are gone
    theirs = await submit(bob, "bob's task")
    page = await browser.new_page()
    await page.goto(f"{api.url}/ui#task={task_id}")
    await page.fill("#api-key", "key-alice")
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#task[data-stream='1'] #conn[data-state=ended]")
    gap = await page.text_content(".entry-gap") or ""
    first_kept = [c async for c, _ in api.services.reader.replay(key_id(task_id))][1]
    assert "gap" in gap and first_kept in gap
    assert "".join(await page.locator(".text-body").all_text_contents()) == "kept text"
    assert [await item.get_attribute("data-task-id") for item in await page.locator(".task-item").all()] == [
        task_id
    ]

    await page.goto(f"{api.url}/ui#task={theirs}")  # the same page, another task
    await page.wait_for_selector("#task[data-stream='2'] #conn[data-state=error]")
    assert await page.text_content("#conn") == "no such task"
    assert await page.locator(".entry").count() == 0
    await page.close()
