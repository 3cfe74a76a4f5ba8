"""``POST /v1/ag-ui``: the stock ``@ag-ui/client`` ``HttpAgent`` (node, the version pinned
in tests/node/package-lock.json, no override) against the API, a real worker and the
scripted model; and the route's own rules over plain HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentstream.streams import StreamsSettings
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.agui_node import NPM_TIMEOUT_S, run_script
from tests.api.dialect_stack import dialect_stack
from tests.api.helpers import Frame, sse_frames
from tests.api.server import ALICE, BOB, Api

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


@pytest.fixture
async def stack(settings: StreamsSettings, redis: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    async with ScriptedLLMServer() as llm, dialect_stack(settings, llm, monkeypatch) as api:
        yield api


async def http_agent(api: Api, *prompts: str, key: str = "key-alice") -> dict[str, Any]:
    """Run ``tests/node/agui_run.mjs``: one HttpAgent, one run per prompt on its thread."""
    return await run_script("agui_run.mjs", *prompts, api_url=api.url, key=key)


@pytest.mark.timeout(NPM_TIMEOUT_S + 120)  # on a fresh clone the fixture runs npm ci first
async def test_the_stock_http_agent_assembles_a_run_and_continues_the_thread(
    stack: Api, node_modules: Path
) -> None:
    got = await http_agent(stack, "What is 17 * 23?", "thanks, and hello")
    first, second = got["runs"]
    assert first["events"][0] == "RUN_STARTED" and first["events"][-1] == "RUN_FINISHED"
    assert {"TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"} <= set(first["events"])
    messages = got["messages"]
    roles = [m["role"] for m in messages]
    assert roles[0] == "user" and roles[-1] == "assistant"
    calls = [call for m in messages if m["role"] == "assistant" for call in m.get("toolCalls") or []]
    assert [c["function"]["name"] for c in calls] == ["calculator"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"expression": "17 * 23"}
    tool = next(m for m in messages if m["role"] == "tool")
    assert tool["toolCallId"] == calls[0]["id"] and "391" in tool["content"]
    answers = [m["content"] for m in messages if m["role"] == "assistant" and m.get("content")]
    assert any("391" in text for text in answers)
    assert "391" in json.dumps(first["result"])
    # the second run on the same thread: the model saw the first exchange (turn 2)
    assert second["events"][0] == "RUN_STARTED" and second["events"][-1] == "RUN_FINISHED"
    assert second["newMessages"][-1]["content"] == "Turn 2: you said thanks, and hello."
    assert messages[-1]["content"] == "Turn 2: you said thanks, and hello."


def run_input(run_id: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "threadId": f"thread-{run_id}",
        "runId": run_id,
        "state": {},
        "messages": [{"id": "m1", "role": "user", "content": text}],
        "tools": [],
        "context": [],
        "forwardedProps": {"agent": "llm"},
        **extra,
    }


async def post_run(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> list[Frame]:
    async with client.stream("POST", "/v1/ag-ui", json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [f async for f in sse_frames(response) if f.comment is None]


async def test_a_repeated_run_id_is_the_same_run_and_resumes_by_frame_id(stack: Api) -> None:
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    async with stack.client(ALICE) as alice, stack.client(BOB) as bob:
        frames = await post_run(alice, run_input(run_id, "hello there"))
        types = [f.json["type"] for f in frames]
        assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED"
        assert frames[0].json["threadId"] == f"thread-{run_id}" and frames[0].json["runId"] == run_id
        text = "".join(f.json["delta"] for f in frames if f.json["type"] == "TEXT_MESSAGE_CONTENT")
        assert text == "Turn 1: you said hello there."
        again = await post_run(alice, run_input(run_id, "something else"))
        assert again == frames  # the same run, not a second one
        upto = next(i for i, f in enumerate(frames) if f.json["type"] == "TEXT_MESSAGE_CONTENT")
        assert frames[upto].id is not None
        resumed = await post_run(alice, run_input(run_id), **{"Last-Event-ID": frames[upto].id})
        assert [f for f in resumed if f.id is not None] == [f for f in frames[upto + 1 :] if f.id is not None]
        by_get = await alice.get(f"/v1/tasks/{run_id}", headers=ALICE)
        assert by_get.json()["status"] == "succeeded"
        shared = [
            {"description": "user's name", "value": "Ada"},
            {"description": "page", "value": "/billing"},
        ]
        with_context = await post_run(alice, run_input(f"{run_id}-ctx", context=shared))
        assert with_context[-1].json["type"] == "RUN_FINISHED"
        as_response = (await alice.get(f"/v1/responses/{run_id}-ctx")).json()
        assert as_response["instructions"] == "user's name: Ada\npage: /billing"
        # the same runId is another tenant's own (or refused), never alice's run
        other = await bob.post("/v1/ag-ui", json=run_input(run_id))
        assert other.status_code in (200, 409)
        if other.status_code == 200:
            assert "hello there" not in other.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"runId": "not a task id!"}, "runId"),
        ({"messages": []}, "no user message"),
        ({"messages": [{"id": "a", "role": "assistant", "content": "hi"}]}, "no user message"),
        ({"forwardedProps": {"agent": "no such agent"}}, "agent"),
        ({"threadId": "bad thread id!"}, "threadId"),
        ({"threadId": None}, "threadId"),
    ],
)
async def test_bad_run_inputs_are_422_and_start_nothing(
    stack: Api, change: dict[str, Any], message: str
) -> None:
    run_id = f"bad-{uuid.uuid4().hex[:8]}"
    async with stack.client(ALICE) as alice:
        response = await alice.post("/v1/ag-ui", json={**run_input(run_id), **change})
        assert response.status_code == 422, response.text
        assert message in response.json()["error"]["message"]
        assert (await alice.get(f"/v1/tasks/{run_id}")).status_code == 404
        assert (
            await alice.post("/v1/ag-ui", json=run_input(run_id), headers={"Authorization": "Bearer x"})
        ).status_code == 401


async def test_a_run_in_progress_resumes_through_the_events_route(stack: Api) -> None:
    run_id = f"live-{uuid.uuid4().hex[:8]}"
    body = run_input(run_id, "[slow:40] [tokens:30] go")
    first: list[Frame] = []
    async with stack.client(ALICE) as alice:
        async with alice.stream("POST", "/v1/ag-ui", json=body) as response:
            async for frame in sse_frames(response):
                if frame.comment is None:
                    first.append(frame)
                if len([f for f in first if f.json["type"] == "TEXT_MESSAGE_CONTENT"]) == 5:
                    break  # the connection drops mid-message
        last_id = next(f.id for f in reversed(first) if f.id is not None)
        assert last_id is not None
        url = f"/v1/tasks/{run_id}/events"
        async with alice.stream(
            "GET", url, params={"format": "ag-ui"}, headers={"Last-Event-ID": last_id}
        ) as rest:
            frames = [f async for f in sse_frames(rest) if f.comment is None]
    types = [f.json["type"] for f in frames]
    assert types[0] == "RUN_STARTED" and types[-1] == "RUN_FINISHED"
    assert "TEXT_MESSAGE_START" in types[:4]  # the open message, re-opened with its id
    text = "".join(f.json["delta"] for f in first + frames if f.json["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == " ".join(f"w{i}" for i in range(1, 31))
