"""``run``, ``tail`` and ``replay`` against the real API (in this loop, the scripted model
behind it), and against an API that does not answer."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentstream.cli.reach import GaveUp, Patience, follow
from agentstream.cli.stack import running_stack
from agentstream.sdk import AgentStreamClient, AgentStreamConnectionError, AgentStreamError
from tests.harness import default_sigint
from tests.redis_server import free_port

# arq's Worker.close() calls redis-py's deprecated close() when the in-process stack stops.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def stack(redis_url: str) -> AsyncIterator[tuple[str, str]]:
    """The real API and an arq worker in this loop, the scripted model behind them."""
    from agentstream.worker.scripted_llm import ScriptedLLMServer

    before = dict(os.environ)
    async with (
        ScriptedLLMServer() as llm,
        running_stack(redis_url, model_base_url=llm.base_url, prefix=f"t{uuid.uuid4().hex[:8]}") as stack,
    ):
        # The model's URL reached the worker through the mapping, not through os.environ.
        assert dict(os.environ) == before
        yield stack


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AGENTSTREAM_")}


async def _agentstream(*args: str) -> tuple[int, str, str]:
    """Run the command in a subprocess while this loop keeps serving the stack."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentstream.cli", *args, cwd=ROOT, env=_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_run_then_replay_then_tail_from_a_cursor(stack: tuple[str, str]) -> None:
    url, key = stack
    client_args = ("--url", url, "--api-key", key)
    code, out, err = await _agentstream("run", "What is 17 * 23?", *client_args)
    assert code == 0, err
    assert out.endswith("The answer is 391.\n✓ succeeded in " + out.rsplit(" in ", 1)[1])
    assert "← 391\n" in out and "\x1b[" not in out, "no colours when stdout is not a terminal"
    assert "retry" not in err
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
    assert code == 1 and "404 not_found" in err and "retry" not in err


def _wait_or_dump(proc: subprocess.Popen[str], timeout_s: float) -> None:
    """Wait for the process to end; if it does not, fail with where it was stuck."""
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
        raise AssertionError(
            f"still running {timeout_s}s after Ctrl-C; its threads:\n{err[-6000:]}"
        ) from None


def test_an_unreachable_api_is_reported_at_once_and_retried_visibly() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with subprocess.Popen(
        [sys.executable, "-m", "agentstream.cli", "run", "hi", "--url", url, "--retry-for", "120"],
        cwd=ROOT,
        env={**_env(), "PYTHONFAULTHANDLER": "1"},  # SIGABRT dumps every thread's stack
        preexec_fn=default_sigint,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        try:
            first, second = proc.stderr.readline(), proc.stderr.readline()
            # Said while it is still trying, not after a long silence at the end.
            assert proc.poll() is None
        finally:
            proc.send_signal(signal.SIGINT)
            _wait_or_dump(proc, 60)
    assert first.startswith(f"agentstream: cannot reach the API at {url} (")
    assert "retry 1 in 0.5s, giving up in 120s" in first
    assert "retry 2 in 1.0s" in second


def test_an_unreachable_api_ends_in_a_clear_error_at_the_deadline() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "agentstream.cli", "tail", "tsk_x", "--url", url, "--retry-for", "1"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1 and proc.stdout == ""
    assert all(line.startswith(f"agentstream: cannot reach the API at {url}") for line in lines[:-1])
    assert len(lines) >= 2
    assert lines[-1].startswith(f"agentstream: gave up: the API at {url} did not answer for 1s")
    assert "agentstream api" in lines[-1]


# ------------------------------------------------------- resumption, without a network


def _event(seq: int, kind: str = "token", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "seq": seq, "id": f"{seq}-0", **fields}


async def test_follow_resumes_after_the_last_event_it_rendered() -> None:
    opened: list[str | None] = []
    fail = AgentStreamConnectionError(0, "unavailable", "gave up after 0 retries: ReadError('')")

    async def stream(after: str | None) -> AsyncIterator[dict[str, Any]]:
        opened.append(after)
        if len(opened) == 1:
            yield _event(1, content="The ")
            yield _event(2, content="answer")
            raise fail
        if len(opened) == 2:
            raise fail
        yield _event(2, content="answer")  # a server may repeat the last one: shown once
        yield _event(3, content=" is 391.")
        yield _event(4, "completed", status="succeeded", execution_time=0.1)

    out, err = io.StringIO(), io.StringIO()
    patience = Patience("http://api", err, retry_for_s=30, initial_s=0.001, max_s=0.001)
    renderer, seen = await follow(patience, stream, out, err)
    assert opened == [None, "2-0", "2-0"]
    assert out.getvalue() == "The answer is 391.\n✓ succeeded in 0.10s\n"
    assert [e["seq"] for e in seen] == [1, 2, 3, 4] and renderer.status == "succeeded"
    assert err.getvalue().count("cannot reach the API at http://api (ReadError)") == 2


async def test_follow_gives_up_at_the_deadline_and_passes_other_errors_through() -> None:
    async def down(_after: str | None) -> AsyncIterator[dict[str, Any]]:
        raise AgentStreamConnectionError(503, "unavailable", "gave up after 0 retries: Service Unavailable")
        yield {}

    err = io.StringIO()
    with pytest.raises(GaveUp, match=r"did not answer for 0\.05s"):
        await follow(Patience("http://api", err, retry_for_s=0.05, initial_s=0.01), down, io.StringIO(), err)
    assert "the API is failing at http://api (HTTP 503 unavailable: Service Unavailable)" in err.getvalue()

    async def missing(_after: str | None) -> AsyncIterator[dict[str, Any]]:
        raise AgentStreamError(404, "not_found", "no such task")
        yield {}

    err = io.StringIO()
    with pytest.raises(AgentStreamError, match="404"):
        await follow(Patience("http://api", err), missing, io.StringIO(), err)
    assert err.getvalue() == ""
