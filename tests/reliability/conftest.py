"""Fixtures of the reliability scenarios: the scripted model on loopback, an arq pool on
the session Redis (the test's own key prefix and queue), and task submission."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from agentstream.streams import StreamsSettings, TaskStore
from agentstream.worker.enqueue import enqueue_task
from agentstream.worker.payload import TaskRequest
from agentstream.worker.scripted_llm import ScriptedLLMServer
from agentstream.worker.settings import WorkerConfig
from arq.connections import ArqRedis, create_pool


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLMServer]:
    async with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
async def arq_pool(settings: StreamsSettings) -> AsyncIterator[ArqRedis]:
    config = WorkerConfig(streams=settings)
    pool = await create_pool(config.redis_settings(), default_queue_name=config.queue_name)
    try:
        yield pool
    finally:
        await pool.aclose()


async def submit(store: TaskStore, pool: ArqRedis, prompt: str, agent: str = "hybrid") -> str:
    """Create a task and enqueue its job, as the API does."""
    req = TaskRequest(input=prompt, agent=agent)  # type: ignore[arg-type]
    task_id = f"tsk_{uuid.uuid4().hex}"
    await store.create_task(task_id, owner="t", agent=req.agent, input=req.input, request=req.model_dump())
    await enqueue_task(pool, task_id, queue_name=WorkerConfig(streams=store.settings).queue_name)
    return task_id
