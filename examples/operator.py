"""Operating agentstream: probes, metrics, the task list, retention and a second worker.

    python examples/operator.py

Starts a self-contained stack in this process (a real Redis in a temporary folder, the
scripted model, an arq worker and the API on loopback) with a one-hour retention, adds a
second worker on the same queue, runs a few tasks across both, then shows what an
operator looks at: ``/healthz``, ``/readyz``, the ``agentstream_*`` lines of ``/metrics``,
``GET /v1/tasks``, and the TTLs Redis holds on a task's keys while it runs and once it
has finished. In production the second worker is another process or container
(``agentstream worker``; ``docker compose up --scale worker=3``).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator

import httpx
from prometheus_client.parser import text_string_to_metric_families

from agentstream.cli.embedded import EmbeddedRedis
from agentstream.cli.stack import InProcessWorker, running_stack
from agentstream.sdk.client import AgentStreamClient
from agentstream.streams import StreamsSettings, create_redis
from agentstream.streams.keys import scoped_task_id
from agentstream.worker.config import WorkerConfig
from agentstream.worker.scripted_llm import ScriptedLLMServer

#: what this deployment is configured with (in production: the containers' environment)
ENV = {"AGENTSTREAM_RETENTION_S": "3600", "AGENTSTREAM_MAX_JOBS": "2"}


@contextlib.asynccontextmanager
async def local_stack() -> AsyncIterator[tuple[str, str, str]]:
    """Redis, model, two workers and the API in this process; yields
    ``(redis_url, api_url, api_key)``."""
    with tempfile.TemporaryDirectory() as data_dir:
        async with (
            EmbeddedRedis(data_dir) as redis_url,
            ScriptedLLMServer() as model,
            running_stack(redis_url, env=ENV, model_base_url=model.base_url) as (api_url, api_key),
            # A second worker: same Redis, same queue (`<prefix>:queue` unless AGENTSTREAM_QUEUE
            # says otherwise); the jobs go to whichever worker polls first.
            InProcessWorker(
                WorkerConfig.from_env({**ENV, "REDIS_URL": redis_url, "OPENAI_BASE_URL": model.base_url})
            ),
        ):
            yield redis_url, api_url, api_key


async def run_tasks(
    client: AgentStreamClient, redis_url: str, tenant: str, count: int
) -> tuple[set[str], int]:
    """Submit ``count`` slow tasks; while they run, note who holds each one's lease (the
    worker id in the task's meta hash) and the TTL of a running task's keys. Task ids are
    per tenant: in Redis, the tenant's task ``t`` lives under the key id ``<tenant>/t``."""
    settings = StreamsSettings(redis_url=redis_url)
    redis = create_redis(settings)
    try:
        tasks = [
            (await client.submit(f"[slow:100] [tokens:10] job {n}", agent="llm"))["task_id"]
            for n in range(count)
        ]
        owners: set[str] = set()
        running_ttl = 0
        while not all([(await client.get(task_id))["done"] for task_id in tasks]):
            for task_id in tasks:
                key_id = scoped_task_id(tenant, task_id)
                owner = await redis.hget(settings.keys.meta(key_id), "lease_owner")
                if owner:  # "<host>:<pid>:<worker>/<job>" while the task runs
                    owners.add(owner.partition("/")[0])
                    running_ttl = max(running_ttl, await redis.ttl(settings.keys.events(key_id)))
            await asyncio.sleep(0.1)
        return owners, running_ttl
    finally:
        await redis.aclose()


async def finished_ttls(redis_url: str, key_id: str) -> str:
    settings = StreamsSettings(redis_url=redis_url)
    redis = create_redis(settings)
    try:
        keys = [settings.keys.events(key_id), settings.keys.meta(key_id)]
        ttls = [f"{key} TTL {await redis.ttl(key)}" for key in keys]
        # The task feed never expires: it is capped by length (XADD MAXLEN) instead.
        feed_key = settings.keys.tasks
        feed = f"{feed_key} TTL {await redis.ttl(feed_key)}, {await redis.xlen(feed_key)} entries"
        return ", ".join([*ttls, feed])
    finally:
        await redis.aclose()


async def main() -> None:
    async with local_stack() as (redis_url, api_url, api_key):
        auth = {"authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
            tenant = (await http.get("/ui/session", headers=auth)).json()["tenant"]  # whose key this is
        async with AgentStreamClient(api_url, api_key) as client:
            owners, running_ttl = await run_tasks(client, redis_url, tenant, count=4)
            print(f"workers: 4 tasks ran on {len(owners)} workers: {', '.join(sorted(owners))}")
            task = await client.submit("What is 17 * 23?", agent="hybrid")
            followed = [event async for event in client.events(task["task_id"])]
            print(f"followed one more task over SSE: {len(followed)} events")

        async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
            for path in ("/healthz", "/readyz"):  # no key needed: for load balancers and probes
                response = await http.get(path)
                print(f"GET {path} -> {response.status_code} {response.text}")
            metrics = (await http.get("/metrics")).text
            print("GET /metrics ->")
            for family in text_string_to_metric_families(metrics):  # prometheus-client's parser
                for sample in family.samples:
                    # counters, gauges, and each histogram's count and sum (not its buckets)
                    if sample.name.startswith("agentstream_") and not sample.name.endswith(
                        ("_bucket", "_created")
                    ):
                        print(f"  {sample.name} {sample.value:g}")
            listed = (await http.get("/v1/tasks", headers=auth)).json()
        print(f"GET /v1/tasks -> {len(listed['tasks'])} tasks, newest first:")
        for task in listed["tasks"]:
            print(f"  {task['task_id']} {task['status']} {task['agent']} attempt {task['attempt']}")

        print(f"retention: a running task's keys expire in {running_ttl} s (7-day safety TTL, renewed)")
        newest = listed["tasks"][0]["task_id"]
        ttls = await finished_ttls(redis_url, scoped_task_id(tenant, newest))
        print(f"retention: once finished (AGENTSTREAM_RETENTION_S=3600): {ttls}")


if __name__ == "__main__":
    asyncio.run(main())
