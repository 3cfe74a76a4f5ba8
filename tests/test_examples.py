"""The README's runnable examples run as a new user would run them."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from agentstream.cli.stack import running_stack
from agentstream.sdk.client import AgentStreamClient
from agentstream.streams import StreamsSettings
from agentstream.worker.scripted_llm import ScriptedLLMServer

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str, timeout_s: float = 80) -> str:
    done = subprocess.run(
        [sys.executable, f"examples/{name}"], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return done.stdout


def test_write_and_replay_example_runs_on_the_embedded_redis() -> None:
    done = subprocess.run(
        [sys.executable, "examples/write_and_replay.py"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "live tail saw: queued status token" in done.stdout
    assert "replayed text: Hello from a durable stream ." in done.stdout
    assert "10 events, seqs 1..10" in done.stdout


@pytest.mark.timeout(90)
def test_backend_service_example() -> None:
    out = run_example("backend_service.py")
    assert re.search(
        r"^1\. events\(\): tsk_\w+ succeeded; tools: calculator\(17 \* 23\) = 391; answer: The answer is 391\.$",
        out,
        re.M,
    ), out
    assert (
        "2. streaming_run(): [calculator {'expression': '17 * 23'}] The answer is 391.\n"
        "   task response: success True, answer 'The answer is 391.', msg None\n" in out
    ), out
    assert re.search(r"^3\. disconnected after seq 12, resumed with after=\d+-\d+: 12 \+ 23 events, "
                     r"seqs 1\.\.35, no gap, no duplicate$", out, re.M), out  # fmt: skip
    four = re.search(r"^4\. group 'billing' over HTTP: a got (\d+), b got (\d+); disjoint: True; "
                     r"union = all 35 events: True; groups\(\): consumers 2, pending 0, lag 0$", out, re.M)  # fmt: skip
    assert four and int(four[1]) + int(four[2]) == 35, out
    assert "5. on Redis: GroupConsumer 'audit' handled 24, acked 24, dead-lettered 0; " in out
    assert "FeedConsumer: 4 created, 4 ended" in out


@pytest.mark.timeout(90)
def test_browser_agui_example() -> None:
    out = run_example("browser_agui.py")
    assert re.search(r"^run: thread thread-42, run tsk_\w+$", out, re.M), out
    assert (
        "connection 1: RUN_STARTED CUSTOM STEP_STARTED TEXT_MESSAGE_START TEXT_MESSAGE_CONTENT TEXT_MESSAGE_CONTENT\n"
        in out
    )
    assert re.search(r"^  dropped inside message tsk_\w+-msg-\d+ after 'Let me'$", out, re.M), out
    assert re.search(r"^connection 2 \(Last-Event-ID: \d+-\d+\): re-opened with RUN_STARTED STEP_STARTED "
                     r"TEXT_MESSAGE_START$", out, re.M), out  # fmt: skip
    assert "same message re-opened: True; it continues with TEXT_MESSAGE_CONTENT ' calculate';" in out
    assert "ending RUN_FINISHED" in out
    assert "messages: Let me calculate that. | The answer is 391.\n" in out
    assert "tool call: calculator({'expression': '17 * 23'}) -> 391\n" in out
    assert "RUN_FINISHED result: The answer is 391.\n" in out


@pytest.mark.timeout(90)
def test_operator_example() -> None:
    out = run_example("operator.py")
    # four slow tasks, two workers taking at most two jobs each: both workers run some
    assert re.search(r"^workers: 4 tasks ran on 2 workers: ", out, re.M), out
    assert "followed one more task over SSE: 21 events" in out
    assert 'GET /healthz -> 200 {"status":"ok"}' in out
    assert 'GET /readyz -> 200 {"status":"ready","checks":{"redis":"ok","queue":"ok"}}' in out
    assert "  agentstream_tasks_submitted_total 5\n" in out
    assert "  agentstream_events_delivered_total 21\n" in out
    assert "  agentstream_sse_clients 0\n" in out
    assert "GET /v1/tasks -> 5 tasks, newest first:" in out
    assert len(re.findall(r"^  tsk_\w+ succeeded (llm|hybrid) attempt 1$", out, re.M)) == 5, out
    assert "a running task's keys expire in 604800 s" in out
    assert re.search(r":events TTL 3600, agentstream:\{demo/tsk_\w+\}:meta TTL 3600, agentstream:tasks TTL -1, "
                     r"(9|10) entries$", out, re.M), out  # fmt: skip


# --------------------------------------------------------- examples/browser/index.html


# arq's worker closes its Redis pool with redis-py's deprecated close()
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_the_browser_page_logs_in_streams_and_resumes_by_itself(
    settings: StreamsSettings, redis: Any, browser: Any
) -> None:
    # The server ends every response after 0.3 s: EventSource must come back by itself.
    env = {"AGENTSTREAM_SSE_MAX_DURATION_S": "0.3", "AGENTSTREAM_SSE_RETRY_MS": "100"}
    async with (
        ScriptedLLMServer(token_delay_s=0.1) as model,
        running_stack(
            settings.redis_url, env=env, prefix=settings.prefix, model_base_url=model.base_url
        ) as stack,
        AgentStreamClient(*stack) as client,
    ):
        api_url, api_key = stack
        # The task starts only once the page is ready to watch it: on a loaded machine,
        # loading the page could otherwise take longer than the whole stream.
        task_id = f"browser-{uuid.uuid4().hex[:12]}"
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        event_requests: list[Any] = []
        page.on("request", lambda r: event_requests.append(r) if "/events" in r.url else None)
        # The page must come from the API's origin (cookie and EventSource): serve it there.
        page_path = ROOT / "examples" / "browser" / "index.html"
        await page.route(
            lambda url: url.startswith(f"{api_url}/example?"), lambda r: r.fulfill(path=page_path)
        )

        await page.goto(f"{api_url}/example?task={task_id}")
        await page.fill("#key", api_key)
        await client.submit("[tokens:20] go", agent="llm", task_id=task_id)
        await page.click("#watch button[type=submit]")
        await page.wait_for_function(
            "document.getElementById('status').textContent === 'succeeded'", timeout=30_000
        )

        stored = [event async for event in client.replay(task_id, mode="all")]
        answer = "".join(event["content"] for event in stored if event["type"] == "token")
        assert answer == " ".join(f"w{n}" for n in range(1, 21))
        assert await page.text_content("#answer") == answer
        assert await page.text_content("#cursor") == stored[-1]["id"]
        # The server cut the stream at least once and EventSource came back by itself. Its
        # URL has no cursor: only Last-Event-ID kept the answer from repeating its start.
        reconnects = int(await page.text_content("#reconnects") or 0)
        assert reconnects >= 1 and len(event_requests) == reconnects + 1
        assert errors == []
        await page.close()
