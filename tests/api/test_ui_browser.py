"""The live viewer at ``/ui`` in a real headless Chromium: a live task through cut
connections, gaps, other tenants, every streaming mode, and a 400 px wide screen.

These tests need Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright``
package (only its driver: no browser download); they skip, saying so, without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from agentstream.streams import StreamsSettings, TaskStore
from tests.api.helpers import completed, key_id, run_worker, write_slowly
from tests.api.server import ALICE, Api, api_settings, serve, submit


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


async def test_the_viewer_counts_model_calls_in_every_mode_and_fits_a_phone(
    api: Api, alice: httpx.AsyncClient, browser: Any, tmp_path: Path
) -> None:
    task_id = await submit(
        alice, "What is 17 * 23? Please show the whole working, step by step.", agent="hybrid"
    )
    await write_slowly(api.services.store, task_id, [*ATTEMPT_1, *ATTEMPT_2], 0)
    replay = [event async for _, event in api.services.reader.replay(key_id(task_id))]
    page = await browser.new_page(viewport={"width": 400, "height": 800})
    await page.goto(f"{api.url}/ui#task={task_id}&mode=core")
    await page.fill("#api-key", "key-alice")
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#task[data-stream='1'][data-mode=core] #conn[data-state=ended]")
    await page.evaluate("document.getElementById('viewer').scrollTop = 0")
    await page.screenshot(path=str(tmp_path / "viewer-400px.png"))

    # `usage` is `debug` and `result` is `output`: core draws neither, the stats count both
    assert await page.text_content("#stat-calls") == "2"
    assert await page.text_content("#stat-usage") == "118 (100 in + 18 out)"
    assert await page.text_content("#stat-tools") == "1"
    assert await page.text_content("#stat-events") == str(len(replay))
    assert (
        await page.locator(".entry-usage").count() == 0 and await page.locator(".entry-result").count() == 0
    )
    assert "".join(await page.locator(".text-body").all_text_contents()) == shown_answer(replay)

    # 400 px: the list sits above the task, nothing scrolls sideways, the title keeps its lines
    layout = await page.evaluate(
        """() => {
            const box = (id) => document.getElementById(id).getBoundingClientRect();
            const title = box("task-title");
            const line = parseFloat(getComputedStyle(document.getElementById("task-title")).lineHeight);
            return {
                page: document.documentElement.scrollWidth, viewer: box("viewer").width,
                lines: Math.round(title.height / line), words: document.getElementById("task-title")
                    .textContent.split(" ").length,
                sidebarBottom: document.querySelector(".sidebar").getBoundingClientRect().bottom,
                viewerTop: box("viewer").top,
            };
        }"""
    )
    assert layout["page"] <= 400, layout
    assert layout["viewer"] >= 380, layout
    assert layout["lines"] <= 4 < layout["words"], layout  # 12 words on at most 4 lines
    assert layout["sidebarBottom"] <= layout["viewerTop"] + 1, layout
    await page.close()


async def test_the_viewers_mode_table_is_the_protocols(api: Api, browser: Any) -> None:
    from agentstream.protocol import MODE_CATEGORIES
    from agentstream.streams.events import ALWAYS_PASS, CATEGORIES

    page = await browser.new_page()
    await page.goto(f"{api.url}/ui")
    table = await page.evaluate(
        """async () => {
            const m = await import("./ui/modes.js");
            return { categories: m.CATEGORIES, modes: m.MODE_CATEGORIES, always: m.ALWAYS_PASS };
        }"""
    )
    assert table["categories"] == dict(CATEGORIES)
    assert {mode: sorted(c) if c is not None else None for mode, c in table["modes"].items()} == {
        str(mode): sorted(c) if c is not None else None for mode, c in MODE_CATEGORIES.items()
    }
    assert sorted(table["always"]) == sorted(ALWAYS_PASS)
    await page.close()
