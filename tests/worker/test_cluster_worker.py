"""A worker whose streams live on a Redis Cluster and whose arq queue on a plain Redis
(``AGENTSTREAM_QUEUE_URL``): arq cannot use a Cluster, the streams can."""

from __future__ import annotations

import uuid

import pytest
from arq import create_pool

from agentstream.streams import Reader, ReaderHub, StreamsSettings, TaskStore, create_redis
from agentstream.worker.config import WorkerConfig
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.harness import submit_task, until_completed
from tests.worker.helpers import assert_well_formed, running_worker

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.filterwarnings("ignore:.*close.*deprecated:DeprecationWarning"),
]


async def test_a_task_runs_with_streams_on_a_cluster_and_the_queue_elsewhere(
    cluster_url: str, redis_url: str, scripted_llm: ScriptedLLMServer
) -> None:
    streams = StreamsSettings(
        redis_url=cluster_url, cluster=True, prefix=f"cw{uuid.uuid4().hex[:8]}", block_ms=300
    )
    config = WorkerConfig(
        streams=streams, queue_url=redis_url, queue_name=f"{streams.prefix}:queue",
        poll_delay_s=0.05, lease_s=3.0, task_timeout_s=20.0, max_jobs=4,
    )  # fmt: skip
    redis = create_redis(streams)
    pool = await create_pool(config.redis_settings(), default_queue_name=config.queue_name)
    try:
        async with ReaderHub(redis, streams) as hub, running_worker(config, scripted_llm):
            store, reader = TaskStore(redis, streams), Reader(redis, streams, hub)
            task_id = await submit_task(store, pool, input="What is 17 * 23?", agent="hybrid")
            events = await until_completed(reader, task_id)
        completed = assert_well_formed(events)
        assert completed["status"] == "succeeded"
        assert any(e["type"] == "tool_result" and e["result"] == 391 for e in events)
    finally:
        await pool.aclose()
        await redis.aclose()
