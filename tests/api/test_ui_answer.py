"""Answering a waiting task from the viewer: only a session that asked for it at login,
only by a same-origin JSON POST carrying that session's CSRF token; the read-only cookie,
or the cookie alone, cannot. Over HTTP as the page sends it, and in a real Chromium
against a worker process."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentstream.api.auth import SESSION_COOKIE, UiSessions
from tests.api.server import Api
from tests.hitl import ASK, DELETE, wait_status
from tests.processes import WorkerProcess

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


@contextlib.asynccontextmanager
async def viewer(api: Api, *, can_answer: bool) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """A client without a bearer key holding a viewer cookie, and its session."""
    async with api.client({}) as client:
        response = await client.post("/ui/session", json={"api_key": "key-alice", "can_answer": can_answer})
        assert response.status_code == 200, response.text
        yield client, (await client.get("/ui/session")).json()


def page_headers(api: Api, session: dict[str, Any], **extra: str) -> dict[str, str]:
    """What the page's fetch sends: its origin, same-origin, JSON, the CSRF token."""
    return {"Origin": api.url, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json",
            "X-CSRF-Token": session.get("csrf_token") or "", **extra}  # fmt: skip


async def waiting_task(api: Api, worker: WorkerProcess, text: str) -> tuple[str, str]:
    """A task parked on its first call: ``(task id, tool call id)``."""
    async with api.client() as client:
        task_id = (await client.post("/v1/tasks", json={"input": text})).json()["task_id"]
        await wait_status(client, worker, task_id, "waiting")
        page = await client.get(
            f"/v1/tasks/{task_id}/events", params={"mode": "all"}, headers={"Accept": "application/json"}
        )
    call = next(e for e in page.json()["events"] if e["type"] in ("approval_required", "input_required"))
    return task_id, str(call["tool_call_id"])


def test_the_answer_scope_is_signed_and_the_csrf_token_is_bound_to_the_cookie() -> None:
    sessions = UiSessions(b"s" * 32, 600, frozenset({"alice"}))
    read_only, answering = sessions.issue("alice"), sessions.issue("alice", can_answer=True)
    assert sessions.session_of(read_only).can_answer is False  # type: ignore[union-attr]
    assert sessions.session_of(answering).can_answer is True  # type: ignore[union-attr]
    body, _, signature = read_only.rpartition(".")
    assert sessions.session_of(f"{body}.answer.{signature}") is None  # the scope cannot be added
    assert sessions.csrf_token(answering) != sessions.csrf_token(
        sessions.issue("alice", can_answer=True, now=1)
    )
    with pytest.raises(Exception, match="X-CSRF-Token"):
        sessions.check_csrf(answering, sessions.csrf_token(read_only))
    sessions.check_csrf(answering, sessions.csrf_token(answering))


async def test_only_a_same_origin_post_with_the_session_s_token_answers(
    hitl_stack: tuple[Api, WorkerProcess],
) -> None:
    api, worker = hitl_stack
    task_id, call_id = await waiting_task(api, worker, DELETE)
    url = f"/ui/tasks/{task_id}/input"
    body = {"approvals": [{"tool_call_id": call_id, "approved": True}]}
    async with viewer(api, can_answer=False) as (client, session):
        assert session["can_answer"] is False and session["csrf_token"] is None
        refused = await client.post(url, json=body, headers=page_headers(api, session))
        assert refused.status_code == 403 and "read-only" in refused.text
        # the viewer's cookie is never enough on the API's own input route
        assert (await client.post(f"/v1/tasks/{task_id}/input", json=body)).status_code == 401
    async with viewer(api, can_answer=True) as (client, session):
        assert session["can_answer"] is True and session["csrf_token"]
        cases = {
            "no token": page_headers(api, session, **{"X-CSRF-Token": ""}),
            "wrong token": page_headers(api, session, **{"X-CSRF-Token": session["csrf_token"][:-2] + "xx"}),
            "cross-origin": page_headers(api, session, Origin="https://evil.example"),
            "cross-site fetch": page_headers(api, session, **{"Sec-Fetch-Site": "cross-site"}),
            "no origin": {"Content-Type": "application/json", "X-CSRF-Token": session["csrf_token"]},
        }
        for name, headers in cases.items():
            response = await client.post(url, json=body, headers=headers)
            assert response.status_code == 403, (name, response.text)
            assert response.json()["error"]["code"] == "csrf", name
        # what a cross-site form could send (a "simple" request needs no preflight)
        plain = page_headers(api, session, **{"Content-Type": "text/plain"})
        form = await client.post(url, content=json.dumps(body).encode(), headers=plain)
        assert form.status_code in (415, 422), form.text
        async with api.client({}, cookies={SESSION_COOKIE: "forged.1.x"}) as forged:
            assert (await forged.post(url, json=body, headers=page_headers(api, session))).status_code == 401
        # nothing was recorded by any of those
        async with api.client() as key_client:
            assert (await key_client.get(f"/v1/tasks/{task_id}")).json()["status"] == "waiting"
        accepted = await client.post(
            url, json=body, headers=page_headers(api, session, **{"Idempotency-Key": "k1"})
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["pending"] == 0
        again = await client.post(
            url, json=body, headers=page_headers(api, session, **{"Idempotency-Key": "k1"})
        )
        assert again.json() == accepted.json()
    async with api.client() as client:
        await wait_status(client, worker, task_id, "succeeded")


async def test_the_viewer_page_approves_and_answers_in_a_browser(
    hitl_stack: tuple[Api, WorkerProcess], browser: Any
) -> None:
    api, worker = hitl_stack
    approval, _ = await waiting_task(api, worker, DELETE)
    question, _ = await waiting_task(api, worker, ASK)
    page = await browser.new_page()
    await page.goto(f"{api.url}/ui#task={approval}")
    await page.fill("#api-key", "key-alice")
    await page.check("#can-answer")
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("form.answer button.approve", timeout=30_000)
    assert "delete_file" in await page.inner_text(".entry-wait .wait-title")
    await page.click("form.answer button.approve")
    await page.wait_for_selector("form.answer.answered", timeout=30_000)
    await page.wait_for_selector(".final-succeeded", timeout=60_000)
    assert "approved" in await page.inner_text("form.answer .answer-status")

    await page.goto(f"{api.url}/ui#task={question}")
    await page.wait_for_selector("form.answer input[name=message]", timeout=30_000)
    assert "Which colour?" in await page.inner_text(".entry-wait .wait-title")
    await page.fill("form.answer input[name=message]", "blue")
    await page.click("form.answer button.approve")
    await page.wait_for_selector(".final-succeeded", timeout=60_000)
    async with api.client() as client:
        page_events = await client.get(f"/v1/tasks/{question}/events", params={"mode": "all"},
                                       headers={"Accept": "application/json"})  # fmt: skip
    result = next(e for e in page_events.json()["events"] if e["type"] == "tool_result")
    assert result["result"] == "blue"

    # a read-only session sees the wait and no button
    read_only, _ = await waiting_task(api, worker, DELETE)
    other = await browser.new_context()
    viewer_page = await other.new_page()
    await viewer_page.goto(f"{api.url}/ui#task={read_only}")
    await viewer_page.fill("#api-key", "key-alice")
    await viewer_page.click("#login-form button[type=submit]")
    await viewer_page.wait_for_selector(".entry-wait", timeout=30_000)
    assert await viewer_page.query_selector("form.answer button") is None
    assert "read-only" in await viewer_page.inner_text(".entry-wait")
    await other.close()
