"""Every code block of the README runs as written, imports included.

- Python blocks run as scripts in a fresh interpreter. A block that talks to a running API
  (``http://127.0.0.1:8000``, key ``secret``: the Docker Compose stack the README names)
  runs against a real stack started here (API, worker, scripted model), with only that
  address and key replaced.
- The AG-UI ``HttpAgent`` block runs with node and the pinned ``@ag-ui/client`` of
  ``tests/node``, against the same stack.
- The ``EventSource`` fragment is the browser example's own code (``examples/browser``,
  driven in Chromium by ``tests/test_examples.py``).
- Shell blocks are the two commands (run from a fresh clone by CI) and the examples
  (``tests/test_examples.py``); this test checks that each names a file that exists.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentstream.streams import StreamsSettings
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.agui_node import NODE_DIR, NPM_TIMEOUT_S, node
from tests.api.dialect_stack import dialect_stack
from tests.api.server import Api

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, re.S | re.M)
COMPOSE_URL, COMPOSE_KEY = "http://127.0.0.1:8000", "secret"


def blocks(language: str) -> list[str]:
    return [code for lang, code in BLOCKS if lang == language]


def _against(code: str, api: Api) -> str:
    return (
        code.replace(COMPOSE_URL, api.url)
        .replace(f'"{COMPOSE_KEY}"', '"key-alice"')
        .replace(f"Bearer {COMPOSE_KEY}", "Bearer key-alice")
    )


async def _run(args: list[str], *, cwd: Path, timeout_s: float = 120) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode()
    assert proc.returncode == 0, text[-3000:]
    return text


@pytest.fixture
async def stack(settings: StreamsSettings, redis: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    async with ScriptedLLMServer() as llm, dialect_stack(settings, llm, monkeypatch) as api:
        yield api


def test_the_readme_has_the_blocks_this_test_knows() -> None:
    languages = [lang for lang, _ in BLOCKS]
    assert set(languages) <= {"bash", "python", "js", "text"}, languages
    assert len(blocks("python")) >= 3 and len(blocks("js")) == 2


@pytest.mark.timeout(300)
@pytest.mark.parametrize("index", range(len(blocks("python"))))
async def test_each_python_block_runs(index: int, stack: Api, tmp_path: Path) -> None:
    script = tmp_path / f"readme_{index}.py"
    script.write_text(_against(blocks("python")[index], stack))
    await _run([sys.executable, str(script)], cwd=tmp_path)


@pytest.mark.timeout(NPM_TIMEOUT_S + 180)
async def test_the_http_agent_block_runs_with_the_stock_client(stack: Api, node_modules: Path) -> None:
    (code,) = [c for c in blocks("js") if "HttpAgent" in c]
    script = NODE_DIR / "readme_block.mjs"  # beside node_modules, so the import resolves
    script.write_text(_against(code, stack))
    try:
        out = await _run([node(), str(script)], cwd=NODE_DIR)
    finally:
        script.unlink()
    assert "391" in out


def test_the_event_source_fragment_is_the_browser_example_s_use_of_the_api() -> None:
    """The fragment is a condensed view of the page: same URL, same query, the same
    events listened to, the stream closed on ``completed``."""
    (code,) = [c for c in blocks("js") if "EventSource" in c]
    page = (ROOT / "examples" / "browser" / "index.html").read_text()
    url = re.search(r"EventSource\(`(/v1/tasks/\$\{id\}/events)\?(.*?)`\)", code)
    assert url is not None
    assert "/v1/tasks/${encodeURIComponent(taskId)}/events" in page
    query = dict(part.split("=") for part in url.group(2).split("&"))
    assert f'new URLSearchParams({{ mode: "{query["mode"]}", types: "{query["types"]}" }})' in page
    listened = set(re.findall(r'addEventListener\("(\w+)"', code))
    assert listened and listened <= set(re.findall(r'addEventListener\("(\w+)"', page))
    assert "source.close()" in code and "source.close();" in page


def test_every_shell_block_names_what_exists() -> None:
    for code in blocks("bash"):
        for path in re.findall(r"(examples/[\w/.-]+\.py)", code):
            assert (ROOT / path).is_file(), path
