"""The example project ``examples/my_agents`` (outside the package tree) served by a real
worker process (``agentstream worker --app myagents:app``, as a user runs it,
started in the project's folder) behind the API: its named agent runs, its own tool is
called and streams its own events, and what it does not serve is refused at submit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentstream.streams import StreamsSettings
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.api.helpers import read_sse
from tests.api.server import Api
from tests.processes import WorkerProcess, child_env, stopping

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "my_agents"


@pytest.fixture
def worker_env(settings: StreamsSettings, scripted_llm: ScriptedLLMServer) -> dict[str, str]:
    env = child_env(settings.redis_url, settings.prefix, scripted_llm.base_url)
    env.pop("PYTHONPATH", None)  # the module must come from the working directory
    return env


@pytest.fixture
def example_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    # what the user runs: agentstream worker --app module:attr, in the project's folder
    worker = WorkerProcess(worker_env, tmp_path / "worker.log", app="myagents:app", cwd=EXAMPLE)
    with stopping(worker):
        yield worker


@pytest.fixture
def api(api: Api) -> Api:
    api.services.catalog.max_age_s = 0  # the catalog as the worker publishes it, uncached
    return api


async def wait_for_agent(client: httpx.AsyncClient, worker: WorkerProcess, name: str) -> dict[str, Any]:
    """The catalog once the worker published it (the worker's startup does)."""
    async with asyncio.timeout(30):
        while True:
            worker.assert_running()
            body = (await client.get("/v1/agents")).json()
            if any(agent["name"] == name for agent in body["agents"]):
                return body
            await asyncio.sleep(0.05)


async def test_the_example_project_runs_through_a_real_worker(
    api: Api, example_worker: WorkerProcess
) -> None:
    async with api.client() as client:
        catalog = await wait_for_agent(client, example_worker, "support")
        support = next(agent for agent in catalog["agents"] if agent["name"] == "support")
        assert support["tools"] == ["lookup_order"] and support["model"] == "gpt-4o-mini"
        assert {t["name"] for t in catalog["tools"]} >= {"add_numbers", "lookup_order", "calculator"}

        text = "Where is order A17? [call:lookup_order:order_id=A17]"
        accepted = await client.post("/v1/tasks", json={"agent": "support", "input": text})
        assert accepted.status_code == 202, accepted.text
        url = accepted.json()["events_url"]
        events = [frame.json for frame in await read_sse(client, url, params={"mode": "all"})]

        kinds = [e["type"] for e in events]
        assert kinds[-1] == "completed" and events[-1]["status"] == "succeeded", example_worker.log()
        call = next(e for e in events if e["type"] == "tool_call")
        assert call["tool_name"] == "lookup_order" and call["parameters"] == {"order_id": "A17"}
        custom = [e for e in events if e["type"] == "custom"]
        assert [c["data"]["step"] for c in custom] == ["querying", "found"]
        found = {"step": "found", "task_id": events[0]["task_id"], "attempt": 1, "tenant": "alice"}
        assert custom[1]["data"] == found
        assert kinds.index("custom") < kinds.index("tool_result")
        assert all(c["tool_call_id"] == call["tool_call_id"] and c["agent_id"] == "support" for c in custom)
        result = next(e for e in events if e["type"] == "tool_result")["result"]
        assert result == {"order_id": "A17", "status": "shipped", "carrier": "DHL", "eta": "2026-12-03"}
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

        # custom events are category `custom`: `all` and `mode=all&types=custom` show them, `core` not
        core = [frame.json["type"] for frame in await read_sse(client, url)]
        assert "custom" not in core and "tool_result" in core
        only = [
            frame.json["type"]
            for frame in await read_sse(client, url, params={"mode": "all", "types": "custom"})
        ]
        assert only == ["custom", "custom", "completed"]

        for body, message in [
            ({"agent": "sales"}, "agents: llm, tool, hybrid, support"),
            ({"agent": "hybrid", "tools": ["rm_rf"]}, "no tool(s) 'rm_rf'"),
        ]:
            refused = await client.post("/v1/tasks", json={"input": "x", **body})
            assert refused.status_code == 422 and message in refused.json()["error"]["message"]

    example_worker.stop()
    async with api.client() as client:
        assert (await client.get("/v1/agents")).json()["workers"] == []  # it left the catalog


async def test_tasks_submitted_before_any_worker_run_once_one_starts(
    api: Api, worker_env: dict[str, str], tmp_path: Path
) -> None:
    async with api.client() as client:
        early = await client.post("/v1/tasks", json={"agent": "support", "input": "Hello"})
        unknown = await client.post("/v1/tasks", json={"agent": "sales", "input": "Hello"})
        assert (early.status_code, unknown.status_code) == (202, 202)  # no live worker: they wait

        worker = WorkerProcess(worker_env, tmp_path / "late.log", app="myagents:app", cwd=EXAMPLE)
        with stopping(worker):
            everything = {"mode": "all"}
            served = [f.json for f in await read_sse(client, early.json()["events_url"], params=everything)]
            refused = [
                f.json for f in await read_sse(client, unknown.json()["events_url"], params=everything)
            ]

    assert served[-1]["status"] == "succeeded" and served[-2]["output"] == "Turn 1: you said Hello."
    error = next(e for e in refused if e["type"] == "error")
    assert error["error_type"] == "ConfigurationError"
    assert "unknown agent 'sales'; this app serves: llm, tool, hybrid, support" in error["error"]
    assert refused[-1]["status"] == "failed"


async def test_a_wrong_app_reference_stops_the_worker_with_a_clear_error(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    worker = WorkerProcess(worker_env, tmp_path / "bad.log", app="myagents:nope", cwd=EXAMPLE)
    with stopping(worker):
        code = await worker.exited(30)
    assert code != 0
    assert "AGENTSTREAM_APP='myagents:nope': module 'myagents' has no attribute 'nope'" in worker.log()
