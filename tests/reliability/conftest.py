"""Fixtures of the reliability scenarios: the scripted model on loopback, an arq pool on
the session Redis (the test's own key prefix and queue), and task submission."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis, create_pool

from streams import StreamsSettings, TaskStore
from worker.enqueue import enqueue_task
from worker.payload import TaskRequest
from worker.scripted_llm import ScriptedLLMServer
from worker.settings import WorkerConfig


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
