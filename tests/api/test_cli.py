"""The ``agentstream`` command: pure rendering, the replay summary, the small subcommands,
and the demo end to end as a user runs it (a subprocess with a clean environment)."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentstream.cli.embedded import EmbeddedRedis
from agentstream.cli.main import (
    Renderer,
    StatusLine,
    format_tool_call,
    format_tool_result,
    main,
    summarize_replay,
)
from agentstream.sdk.client import AgentStreamClient

# arq's Worker.close() calls redis-py's deprecated close() when the in-process stack stops.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]


def _demo_ready() -> bool:
    modules = ("api.routes", "agentstream.worker.jobs", "agentstream.worker.settings")
    return all(importlib.util.find_spec(name) is not None for name in modules)


def _render(events: list[dict[str, Any]], *, color: bool = False) -> str:
    renderer = Renderer(color=color)
    return "".join(renderer.feed(event) for event in events)


def _stored(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as a reader returns them: with seq and a cursor id."""
    return [{**event, "seq": i, "id": f"{1000 + i}-0"} for i, event in enumerate(events, start=1)]


HYBRID_RUN: list[dict[str, Any]] = [
    {"type": "queued", "agent": "hybrid", "input": "What is 17 * 23?"},
    {"type": "started", "agent": "hybrid"},
    {"type": "iteration_start", "iteration": 1, "max_iterations": 8, "remaining": 7},
    {"type": "tool_call_delta", "index": 0, "arguments_delta": "{", "arguments": "{"},
    {"type": "tool_calls_ready", "tool_calls": []},
    {"type": "thought", "content": "", "iteration": 1},
    {"type": "action", "tool_name": "calculator", "tool_call_id": "c1", "parameters": {}, "iteration": 1},
    {
        "type": "tool_call",
        "tool_name": "calculator",
        "tool_call_id": "c1",
        "parameters": {"expression": "17 * 23"},
    },
    {"type": "tool_result", "tool_name": "calculator", "tool_call_id": "c1", "result": 391, "success": True},
    {"type": "observation", "content": "391", "iteration": 1, "has_error": False},
    {"type": "iteration_start", "iteration": 2, "max_iterations": 8, "remaining": 6},
    {"type": "token", "content": "The"},
    {"type": "token", "content": " answer"},
    {"type": "token", "content": " is"},
    {"type": "token", "content": " 391."},
    {"type": "thought", "content": "The answer is 391.", "iteration": 2},
    {"type": "result", "output": "The answer is 391.", "success": True, "execution_time": 0.5},
    {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.5},
]


# ---------------------------------------------------------------------------- rendering


def test_a_hybrid_run_renders_tool_lines_headers_and_the_streamed_answer() -> None:
    assert _render(HYBRID_RUN) == (
        "── iteration 1/8 ──\n"
        '→ calculator({"expression": "17 * 23"})\n'
        "← 391\n"
        "── iteration 2/8 ──\n"
        "The answer is 391.\n"
        "✓ succeeded in 0.50s\n"
    )


def test_tool_results_and_calls_are_compact_one_liners() -> None:
    assert (
        format_tool_call("calculator", {"expression": "2 ** 10"}) == '→ calculator({"expression": "2 ** 10"})'
    )
    assert format_tool_call("now", None) == "→ now({})"
    assert format_tool_result({"result": 391}) == "← 391"
    assert format_tool_result("plain text") == "← plain text"
    assert format_tool_result({"a": 1, "b": [1, 2]}) == '← {"a": 1, "b": [1, 2]}'


def test_thinking_is_dimmed_and_separated_from_the_answer() -> None:
    events: list[dict[str, Any]] = [
        {"type": "thinking_token", "content": "Let me think."},
        {"type": "token", "content": "Hi"},
        {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.1},
    ]
    assert (
        _render(events, color=True)
        == "\x1b[2mLet me think.\x1b[0m\nHi\n\x1b[32m✓ succeeded in 0.10s\x1b[0m\n"
    )
    assert _render(events) == "Let me think.\nHi\n✓ succeeded in 0.10s\n"


def test_output_mode_prints_the_result_when_no_token_was_streamed() -> None:
    events = [
        {"type": "result", "output": "The answer is 391.", "success": True, "execution_time": 0.2},
        {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.2},
    ]
    renderer = Renderer()
    text = "".join(renderer.feed(e) for e in events)
    assert text == "The answer is 391.\n✓ succeeded in 0.20s\n"
    assert (renderer.text, renderer.status) == ("The answer is 391.", "succeeded")


def test_retry_resets_the_partial_answer() -> None:
    renderer = Renderer()
    events: list[dict[str, Any]] = [
        {"type": "token", "content": "The ans"},
        {"type": "retry", "attempt": 2, "reason": "worker lost"},
        {"type": "token", "content": "The answer"},
    ]
    for event in events:
        renderer.feed(event)
    assert renderer.text == "The answer"


def test_failures_gaps_and_cancellation_are_visible() -> None:
    text = _render(
        [
            {"type": "gap", "first_cursor": "5-0"},
            {"type": "token", "content": "partial"},
            {
                "type": "tool_error",
                "tool_name": "calculator",
                "tool_call_id": "c",
                "error": "division by zero",
            },
            {
                "type": "error",
                "error": "model unavailable",
                "error_type": "ModelUnavailable",
                "retryable": False,
            },
            {"type": "cancelled", "reason": "user"},
            {"type": "completed", "success": False, "status": "cancelled", "execution_time": 1.0},
            {"type": "some_future_type", "x": 1},
        ]
    )
    assert text == (
        "[gap: events before 5-0 have expired]\n"
        "partial\n"
        "✗ calculator: division by zero\n"
        "error: model unavailable (ModelUnavailable)\n"
        "cancelled: user\n"
        "✗ cancelled in 1.00s\n"
    )


def test_status_line_is_silent_unless_the_stream_is_a_tty() -> None:
    stream = io.StringIO()
    status = StatusLine(stream)
    status.update("running")
    status.tick(True)
    status.clear()
    assert not status.enabled and stream.getvalue() == ""


# ---------------------------------------------------------------------- replay summary


def test_replay_summary_of_a_faithful_replay() -> None:
    stored = _stored(HYBRID_RUN)
    live = [e for e in stored if e["type"] not in {"result"}]  # mode core leaves out output
    summary = summarize_replay(live, stored)
    assert summary.ok
    assert summary.describe() == (
        "18 events, seqs 1..18, no gaps, same cursors as the live consumer, same text: 'The answer is 391.'"
    )


def test_replay_summary_catches_a_gap_and_different_text() -> None:
    stored = _stored(HYBRID_RUN)
    holed = stored[:5] + stored[6:]
    assert not summarize_replay(stored, holed).dense
    other = [*stored[:-7], {**stored[-7], "content": " answered"}, *stored[-6:]]
    summary = summarize_replay(stored, other)
    assert not summary.same_text and not summary.ok


# ------------------------------------------------------------------------- subcommands


def test_worker_check_reports_whether_redis_answers(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    if importlib.util.find_spec("agentstream.worker.jobs") is None:
        pytest.skip("worker.settings needs worker.jobs, not there yet")
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["worker", "--check"]) == 0
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["worker", "--check"]) == 1


def test_api_refuses_a_public_bind_without_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if importlib.util.find_spec("api.routes") is None:
        pytest.skip("api.app is not complete yet")
    monkeypatch.delenv("AGENTSTREAM_API_KEYS", raising=False)
    assert main(["api", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "refusing to bind '0.0.0.0' without API keys" in capsys.readouterr().err


def test_scripted_llm_subcommand_serves_and_prints_its_url() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "agentstream.cli", "scripted-llm", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("scripted LLM listening on http://127.0.0.1:")
        finally:
            proc.terminate()
            proc.wait(10)


def test_embedded_redis_keeps_data_across_restarts_with_aof(tmp_path: Path) -> None:
    import redis

    with EmbeddedRedis(tmp_path / "redis") as url:
        client = redis.Redis.from_url(url, socket_timeout=5)
        client.set("k", "v")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    assert (tmp_path / "redis" / "appendonly.aof").exists()
    with EmbeddedRedis(tmp_path / "redis") as url:
        client = redis.Redis.from_url(url, socket_timeout=5)
        assert client.get("k") == b"v"
        client.close()


def test_embedded_redis_is_single_use(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path)
    with embedded:
        pass
    with pytest.raises(RuntimeError, match="runs only once"):
        embedded.__enter__()


# ------------------------------------------------- run, tail, replay against a real API


@pytest.fixture(scope="module")
async def stack(redis_url: str) -> AsyncIterator[tuple[str, str]]:
    """The real API and an arq worker in this loop, the scripted model behind them."""
    from agentstream.worker.scripted_llm import ScriptedLLMServer

    from agentstream.cli.main import running_stack

    async with (
        ScriptedLLMServer() as llm,
        running_stack(redis_url, model_base_url=llm.base_url, prefix=f"t{uuid.uuid4().hex[:8]}") as stack,
    ):
        yield stack


async def _agentstream(*args: str) -> tuple[int, str, str]:
    """Run the command in a subprocess while this loop keeps serving the stack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSTREAM_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentstream.cli", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.skipif(not _demo_ready(), reason="the API routes or the worker jobs are not there yet")
async def test_run_then_replay_then_tail_from_a_cursor(stack: tuple[str, str]) -> None:
    url, key = stack
    client_args = ("--url", url, "--api-key", key)
    code, out, err = await _agentstream("run", "What is 17 * 23?", *client_args)
    assert code == 0, err
    assert out.endswith("The answer is 391.\n✓ succeeded in " + out.rsplit(" in ", 1)[1])
    assert "← 391\n" in out and "\x1b[" not in out, "no colours when stdout is not a terminal"
    task_id = err.split("task ", 1)[1].split()[0]

    code, replayed, _ = await _agentstream("replay", task_id, *client_args)
    assert (code, replayed) == (0, out)

    async with AgentStreamClient(url, key) as client:
        events = [e async for e in client.events(task_id, mode="all")]
    tool_result = next(e for e in events if e["type"] == "tool_result")
    code, tailed, _ = await _agentstream("tail", task_id, "--after", tool_result["id"], *client_args)
    assert code == 0
    assert "→ calculator" not in tailed and tailed.startswith("── iteration 2/8 ──\n")
    assert "The answer is 391." in tailed

    code, _, err = await _agentstream("tail", "no_such_task", *client_args)
    assert code == 1 and "404 not_found" in err


# --------------------------------------------------------------------------- the demo


@pytest.mark.timeout(120)
@pytest.mark.skipif(not _demo_ready(), reason="the API routes or the worker jobs are not there yet")
def test_demo_runs_offline_from_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTSTREAM_", "REDIS_"))}
    env["PYTHONPATH"] = str(ROOT)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "agentstream.cli", "demo", "What is 17 * 23?"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    out = proc.stdout
    assert "no OPENAI_API_KEY: using the built-in scripted model" in out
    assert '→ calculator({"expression": "17 * 23"})' in out
    assert "← 391" in out
    assert "The answer is 391." in out
    assert "no gaps, same cursors as the live consumer, same text: 'The answer is 391.'" in out
    assert (tmp_path / ".agentstream" / "redis" / "appendonly.aof").exists()
    assert elapsed < 60, f"the demo took {elapsed:.1f}s"
