"""What several worker test modules share: a real arq worker in this process, the shape of
a finished task's stream, and an openai client to the scripted model."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import Worker
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionUserMessageParam

from agentstream.streams import Reader, TaskStore, create_redis
from agentstream.worker.config import WorkerConfig
from agentstream.worker.deps import AgentFactory, WorkerDeps, build_task_agent
from agentstream.worker.jobs import DEPS_KEY
from agentstream.worker.llm import ModelSettings, OpenAIClient
from agentstream.worker.scripted import ScriptedLLMServer
from agentstream.worker.settings import create_worker
from agentstream.worker.tools import ToolRegistry, ToolSettings, default_registry
from tests.harness import Events, worker_task

# --------------------------------------------------------------------------- arq worker


@contextlib.asynccontextmanager
async def running_worker(
    config: WorkerConfig,
    llm: ScriptedLLMServer,
    *,
    registry: ToolRegistry | None = None,
    agent_factory: AgentFactory = build_task_agent,
) -> AsyncIterator[Worker]:
    """An arq worker with the production options, its deps pointed at the test doubles."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        redis = create_redis(config.streams)
        model = ModelSettings(base_url=llm.base_url, max_retries=1, backoff_base_s=0.01, backoff_max_s=0.02)
        ctx[DEPS_KEY] = WorkerDeps(
            config=config,
            redis=redis,
            store=TaskStore(redis, config.streams),
            reader=Reader(redis, config.streams),
            llm=OpenAIClient(model),
            registry=registry if registry is not None else default_registry(ToolSettings()),
            worker_id=f"test:{uuid.uuid4().hex[:6]}",
            agent_factory=agent_factory,
        )

    worker = create_worker(config, handle_signals=False, on_startup=on_startup)
    async with worker_task(worker, config.poll_delay_s):
        yield worker


def assert_well_formed(events: Events) -> dict[str, Any]:
    """PROTOCOL rules 1 and 2 and dense seqs; returns the ``completed`` event."""
    assert events[0]["type"] == "queued"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("completed") == 1
    assert events[-1]["type"] == "completed"
    return events[-1]


# --------------------------------------------------------------------------- openai client


@pytest.fixture
async def client(llm: ScriptedLLMServer) -> AsyncIterator[AsyncOpenAI]:
    """The openai client to the ``llm`` fixture the importing module sees (a module may
    keep its own, e.g. module-scoped). Imported as ``client as client`` by the modules that
    use it; not in conftest.py, since ``test_llm.py``'s ``client`` is another client."""
    async with AsyncOpenAI(base_url=llm.base_url, api_key="x", max_retries=0) as client:
        yield client


def user(text: str) -> ChatCompletionUserMessageParam:
    return {"role": "user", "content": text}
