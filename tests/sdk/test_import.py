"""The SDK is light: importing it, or ``agentstream`` itself, loads nothing of the server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import agentstream

SERVER_MODULES = ("fastapi", "starlette", "arq", "openai", "redis", "uvicorn", "agentstream.streams",
                  "agentstream.worker", "agentstream.api")  # fmt: skip


def loaded_after(code: str) -> dict[str, bool]:
    """Which of the server's modules (and pydantic) a fresh interpreter holds after ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps({{m: m in sys.modules for m in {[*SERVER_MODULES, 'pydantic']!r}}}))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "from agentstream import AgentStreamClient, StreamingMode",
        "import agentstream.sdk",
        "from agentstream.sdk import ChunkMessage, TaskMessage, TopicType",
    ],
)
def test_importing_the_sdk_loads_no_server_dependency(code: str) -> None:
    loaded = loaded_after(code)
    assert not any(loaded[m] for m in SERVER_MODULES), loaded
    assert not loaded["pydantic"], "pydantic is loaded only when typed events are asked for"


def test_typed_events_need_pydantic_only() -> None:
    loaded = loaded_after(
        "from agentstream import parse_event; parse_event({'type': 'token', 'content': 'x'})"
    )
    assert loaded["pydantic"]
    assert not any(loaded[m] for m in SERVER_MODULES), loaded


def test_the_public_names() -> None:
    assert set(agentstream.__all__) <= set(dir(agentstream))
    for name in agentstream.__all__:
        assert getattr(agentstream, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        agentstream.nothing_here  # noqa: B018
