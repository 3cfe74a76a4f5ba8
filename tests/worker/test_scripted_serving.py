"""Serving the scripted model: routes, request counting, misuse, and the command line."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest
from openai import AsyncOpenAI

from agentstream.worker.scripted import Directives, ScriptedLLMServer, main, parse_directives
from tests.worker.helpers import client as client  # the fixture
from tests.worker.helpers import user

ROOT = Path(__file__).resolve().parents[2]
MODEL = "scripted-test"


async def test_models_and_health(client: AsyncOpenAI, llm: ScriptedLLMServer) -> None:
    models = await client.models.list()
    async with httpx.AsyncClient(timeout=5) as http:
        health = await http.get(f"http://127.0.0.1:{llm.port}/healthz")

    assert [model.id for model in models.data] == ["scripted"]
    assert health.status_code == 200


async def test_server_counts_requests(client: AsyncOpenAI, llm: ScriptedLLMServer) -> None:
    before = llm.requests
    await client.chat.completions.create(model=MODEL, messages=[user("count me")])

    assert llm.requests == before + 1


async def test_server_misuse_is_explained() -> None:
    server = ScriptedLLMServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    async with server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    with pytest.raises(RuntimeError, match="only once"):
        async with server:
            pass


def test_parse_directives_strips_them_from_the_text() -> None:
    directives, text = parse_directives("  [fail:429x2]  hi [slow:5] there [think][no-id] ")

    assert text == "hi there"
    assert directives == Directives(fail_status=429, fail_times=2, slow_ms=5, think=True, no_id=True)


def test_cli_refuses_a_non_loopback_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--host", "0.0.0.0", "--port", "0"])

    assert caught.value.code == 2
    assert "--allow-remote" in capsys.readouterr().err


async def test_cli_serves_in_the_foreground() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentstream.worker.scripted_llm",
        "--port",
        "0",
        "--log-level",
        "warning",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=15)
        base_url = line.decode().split()[-1]
        async with httpx.AsyncClient(timeout=2) as http:
            health = await _poll_health(http, base_url.removesuffix("/v1") + "/healthz")
        async with AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0) as cli_client:
            completion = await cli_client.chat.completions.create(
                model=MODEL, messages=[user("from the cli")]
            )
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.communicate(), timeout=15)

    assert health.status_code == 200
    assert completion.choices[0].message.content == "Turn 1: you said from the cli."
    assert process.returncode in (0, -signal.SIGTERM)


async def _poll_health(http: httpx.AsyncClient, url: str) -> httpx.Response:
    async with asyncio.timeout(10):
        while True:
            try:
                return await http.get(url)
            except httpx.TransportError:
                await asyncio.sleep(0.05)
