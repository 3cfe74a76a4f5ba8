"""What an operator sees of a real task: the API's and the worker's Prometheus scrapes
(parsed with prometheus-client's own parser) and JSON log lines carrying the task, from a
real API process and a real worker process talking to the scripted model."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.api.helpers import Frame, sse_frames
from tests.processes import ApiProcess, WorkerProcess, child_env, stopping
from tests.redis_server import free_port

#: the first model call fails once (no model-client retries): a model error, then a retry
PROMPT = "What is 17 * 23? [fail:503x1] {nonce}"


def samples(text: str) -> dict[str, list[Any]]:
    """Every sample of a scrape by metric family name, parsed by prometheus-client."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(found: dict[str, list[Any]], sample_name: str, **labels: str) -> float:
    """The sum of the samples called ``sample_name`` whose labels include ``labels``."""
    return sum(
        s.value
        for family in found.values()
        for s in family
        if s.name == sample_name and labels.items() <= s.labels.items()
    )


def json_lines(log: str) -> list[dict[str, Any]]:
    """Every line of a log, each parsed as JSON (a line that is not fails the test)."""
    parsed = []
    for line in log.splitlines():
        if line.strip():
            try:
                parsed.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                pytest.fail(f"a log line is not JSON: {line!r}")
    return parsed


async def scrape_when_idle(client: httpx.AsyncClient, url: str) -> dict[str, list[Any]]:
    """The API's scrape once its SSE response has wound down (it ends just after
    ``completed`` reached the client)."""
    async with asyncio.timeout(20):
        while True:
            found = samples((await client.get(f"{url}/metrics")).text)
            if value(found, "agentstream_sse_clients") == 0:
                return found
            await asyncio.sleep(0.02)


async def scrape_when_done(client: httpx.AsyncClient, url: str) -> dict[str, list[Any]]:
    """The worker's scrape once its attempt has ended: the ``completed`` the client saw is
    stored before the attempt returns, so a loaded worker may not have counted it out yet."""
    async with asyncio.timeout(20):
        while True:
            scrape = await client.get(f"{url}/metrics")
            assert scrape.status_code == 200
            found = samples(scrape.text)
            if value(found, "agentstream_worker_tasks_running") == 0:
                return found
            await asyncio.sleep(0.02)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedLLMServer]:
    async with ScriptedLLMServer(token_delay_s=0.0) as server:
        yield server


async def test_a_task_through_real_processes_is_measured_and_logged_as_json(
    redis_url: str, scripted: ScriptedLLMServer, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    worker_port = free_port()
    env = child_env(
        redis_url, prefix, scripted.base_url,
        AGENTSTREAM_LOG_FORMAT="json", AGENTSTREAM_WORKER_METRICS_PORT=str(worker_port),
        AGENTSTREAM_MODEL_RETRIES="0", AGENTSTREAM_API_KEYS="acme:key-acme",
    )  # fmt: skip
    api = ApiProcess(env, tmp_path / "api.log", log_level="info")  # uvicorn's access lines too
    worker: WorkerProcess | None = None
    auth = {"Authorization": "Bearer key-acme"}
    async with httpx.AsyncClient(timeout=30, headers=auth) as client:
        with stopping(api):
            await api.ready(30)
            prompt = PROMPT.format(nonce=uuid.uuid4().hex[:8])
            submitted = await client.post(f"{api.url}/v1/tasks", json={"input": prompt, "agent": "hybrid"})
            assert submitted.status_code == 202, submitted.text
            task_id = submitted.json()["task_id"]
            frames: list[Frame] = []
            # Connected before any worker runs: the first event's delivery is timed from submit.
            async with client.stream("GET", f"{api.url}/v1/tasks/{task_id}/events?mode=all") as response:
                async for frame in sse_frames(response):
                    frames.append(frame)
                    if frame.event == "queued":
                        worker = WorkerProcess(env, tmp_path / "worker.log")
                    if frame.event == "completed":
                        break
            assert worker is not None
            with stopping(worker):
                assert frames[-1].json["status"] == "succeeded", [f.event for f in frames]
                assert [f.event for f in frames].count("retry") == 1
                api_scrape = await scrape_when_idle(client, api.url)
                worker_scrape = await scrape_when_done(client, f"http://127.0.0.1:{worker_port}")

    # the API: append -> delivery for every live event, submit -> first event once
    live = len([f for f in frames if f.event != "queued"])
    assert value(api_scrape, "agentstream_sse_delivery_seconds_count") == live
    assert value(api_scrape, "agentstream_sse_first_event_seconds_count") == 1
    assert value(api_scrape, "agentstream_tasks_submitted_total") == 1
    assert value(api_scrape, "agentstream_events_delivered_total") == len(frames)
    assert value(api_scrape, "agentstream_sse_clients") == 0
    # the worker: one finished task, its model calls and tool, the failed call and the retry
    assert value(worker_scrape, "agentstream_worker_task_duration_seconds_count", status="succeeded") == 1
    assert value(worker_scrape, "agentstream_worker_tasks_running") == 0
    assert value(worker_scrape, "agentstream_worker_tool_seconds_count", tool="calculator", outcome="ok") == 1
    assert value(worker_scrape, "agentstream_worker_model_call_seconds_count", outcome="ok") == 2
    assert value(worker_scrape, "agentstream_worker_model_errors_total") == 1
    assert value(worker_scrape, "agentstream_worker_retries_total") == 1
    usage = [f.json for f in frames if f.event == "usage"]
    completion = sum(u["completion_tokens"] for u in usage)
    assert completion > 0
    assert value(worker_scrape, "agentstream_worker_tokens_total", kind="completion") == completion

    # JSON logs: every line parses; every line about the task carries its id and tenant,
    # the worker's its attempt too; no line per model HTTP request
    api_lines, worker_lines = json_lines(api.log()), json_lines(worker.log())
    about = [line for line in api_lines + worker_lines if task_id in line["message"]]
    assert about, "no log line names the task"
    for line in about:
        assert line["task_id"] == task_id, line
    failed = [line for line in worker_lines if "retried in" in line["message"]]
    assert [(line["task_id"], line["attempt"], line["tenant"]) for line in failed] == [(task_id, 1, "acme")]
    arq_lines = [
        line for line in worker_lines if line["logger"] == "arq.worker" and task_id in line["message"]
    ]
    assert len(arq_lines) >= 4  # start and end of both runs of the job
    submit_lines = [line for line in api_lines if "POST /v1/tasks" in line["message"]]
    assert submit_lines and all(line.get("tenant") == "acme" for line in submit_lines)
    assert not [line for line in api_lines + worker_lines if "HTTP Request:" in line["message"]]
    assert {line["level"] for line in worker_lines} <= {"INFO", "WARNING"}


# ---------------------------------------------------------------------- the pieces


def test_text_and_json_lines_carry_the_task_bound_in_their_context() -> None:
    script = """
import asyncio, io, logging, sys
from agentstream.telemetry.logs import LogSettings, bind_task, configure_logging
fmt = sys.argv[1]
configure_logging(LogSettings(format=fmt, level="INFO"), stream=sys.stdout)
log = logging.getLogger("agentstream.test")

async def attempt():
    bind_task("tsk_1", attempt=2, tenant="acme")
    await asyncio.create_task(child())  # a task started from here inherits the scope
    log.info("done %s", "here")

async def child():
    log.warning("in a child task")

log.info("before any task")
asyncio.run(attempt())
logging.getLogger("httpx").info("HTTP Request: POST /v1/chat/completions")  # held at WARNING
"""
    text = subprocess.run([sys.executable, "-c", script, "text"], capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 3 and "[" not in lines[0]
    assert lines[1].endswith("in a child task [task_id=tsk_1 attempt=2 tenant=acme]")
    assert lines[2].endswith("done here [task_id=tsk_1 attempt=2 tenant=acme]")
    as_json = subprocess.run(
        [sys.executable, "-c", script, "json"], capture_output=True, text=True, timeout=60
    )
    parsed = json_lines(as_json.stdout)
    assert [line["message"] for line in parsed] == ["before any task", "in a child task", "done here"]
    assert "task_id" not in parsed[0]
    assert [(p["task_id"], p["attempt"], p["tenant"]) for p in parsed[1:]] == [("tsk_1", 2, "acme")] * 2
    assert parsed[1]["level"] == "WARNING" and parsed[2]["logger"] == "agentstream.test"


def test_log_settings_refuse_what_they_do_not_know() -> None:
    from agentstream.telemetry.logs import LogSettings

    assert LogSettings.from_env({}) == LogSettings("text", "INFO")
    assert LogSettings.from_env({"AGENTSTREAM_LOG_FORMAT": " JSON ", "AGENTSTREAM_LOG_LEVEL": "debug"}) == (
        LogSettings("json", "DEBUG")
    )
    with pytest.raises(ValueError, match="AGENTSTREAM_LOG_FORMAT must be text or json"):
        LogSettings.from_env({"AGENTSTREAM_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="AGENTSTREAM_LOG_LEVEL"):
        LogSettings.from_env({"AGENTSTREAM_LOG_LEVEL": "LOUD"})


def test_a_later_bind_keeps_what_it_does_not_restate() -> None:
    import contextvars

    from agentstream.telemetry.logs import TaskScope, bind_task, task_scope

    def run() -> list[TaskScope | None]:
        bind_task("tsk_1", tenant="acme")
        first = task_scope()
        bind_task("tsk_1", attempt=3)
        second = task_scope()
        bind_task("tsk_2")
        return [first, second, task_scope()]

    assert contextvars.copy_context().run(run) == [
        TaskScope("tsk_1", None, "acme"), TaskScope("tsk_1", 3, "acme"), TaskScope("tsk_2"),
    ]  # fmt: skip
    assert task_scope() is None  # nothing leaked out of that context


def test_the_worker_metrics_port_is_off_unless_set_and_checked() -> None:
    from agentstream.worker.errors import ConfigurationError
    from agentstream.worker.metrics import WorkerMetricsSettings, serve_metrics

    assert WorkerMetricsSettings.from_env({}) == WorkerMetricsSettings(0, "127.0.0.1")
    assert serve_metrics(WorkerMetricsSettings.from_env({})) is None
    for bad in ("-1", "70000", "ninety"):
        with pytest.raises(ConfigurationError, match="AGENTSTREAM_WORKER_METRICS_PORT"):
            WorkerMetricsSettings.from_env({"AGENTSTREAM_WORKER_METRICS_PORT": bad})
    port = free_port()
    server = serve_metrics(WorkerMetricsSettings(port=port))
    assert server is not None and server.port == port
    try:
        with pytest.raises(ConfigurationError, match="one free port per worker process"):
            serve_metrics(WorkerMetricsSettings(port=port))  # taken
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "# TYPE agentstream_worker_tasks_running gauge" in body
    finally:
        server.close()
