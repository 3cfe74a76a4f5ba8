"""A backend service using agentstream: the SDK over HTTP, and Redis directly.

    python examples/backend_service.py

Starts a self-contained stack in this process (a real Redis in a temporary folder, the
scripted model, an arq worker and the API on loopback), then shows, each as one line:

1. submit a task with the SDK and follow ``events()`` (it reconnects and resumes by itself);
2. ``streaming_run(...)``, AWorld-style: typed messages, answer tokens typed out as they
   come (the model's reasoning is not printed), then the task response;
3. a deliberate disconnect: leave the loop half-way, resume with ``after=<cursor>``, and
   check that nothing was missed or seen twice;
4. a consumer group over HTTP: two consumers split one task's events, ack them, and
   ``groups()`` shows the group drained;
5. inside the trust boundary, straight on Redis: a ``GroupConsumer`` on one task and a
   ``FeedConsumer`` that follows every task's ``created``/``ended`` entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from agentstream import AgentStreamClient, ChunkMessage, StreamingMode, TaskResponse, ToolMessage, TopicType
from agentstream.cli.embedded import EmbeddedRedis
from agentstream.cli.stack import running_stack
from agentstream.streams import FeedConsumer, GroupConsumer, StreamsSettings, create_redis
from agentstream.streams.keys import public_task_id
from agentstream.worker.scripted_llm import ScriptedLLMServer


@contextlib.asynccontextmanager
async def local_stack() -> AsyncIterator[tuple[str, str, str]]:
    """Redis, model, worker and API in this process; yields ``(redis_url, api_url, api_key)``."""
    with tempfile.TemporaryDirectory() as data_dir:
        async with (
            EmbeddedRedis(data_dir) as redis_url,
            ScriptedLLMServer(token_delay_s=0.02) as model,
            # env={}: this shell's AGENTSTREAM_* settings do not leak into the example
            running_stack(redis_url, env={}, model_base_url=model.base_url) as (api_url, api_key),
        ):
            yield redis_url, api_url, api_key


def seqs_of(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


async def follow_one_task(client: AgentStreamClient) -> str:
    """Submit, then follow the stream (plain dicts) until ``completed``."""
    task = await client.submit("What is 17 * 23?", agent="hybrid")
    answer, tools, status = "", [], None
    async for event in client.events(task["task_id"], mode=StreamingMode.CORE):
        if event["type"] == "token":
            answer += event["content"]
        elif event["type"] == "tool_call":
            tools.append(f"{event['tool_name']}({event['parameters']['expression']})")
        elif event["type"] == "tool_result":
            tools[-1] += f" = {event['result']}"
        elif event["type"] == "completed":
            status = event["status"]
    print(f"1. events(): {task['task_id']} {status}; tools: {', '.join(tools)}; answer: {answer}")
    return str(task["task_id"])


async def typewriter(client: AgentStreamClient, question: str) -> TaskResponse:
    """Type the answer out as the model writes it, then return how the task ended."""
    async for msg in client.streaming_run(question, agent="hybrid"):  # StreamingMode.CORE
        if isinstance(msg, ChunkMessage):
            print(msg.payload.content, end="", flush=True)  # answer tokens only, no reasoning
        elif isinstance(msg, ToolMessage):
            for action in msg.payload:
                print(f"[{action.tool_name} {action.params}] ", end="", flush=True)
        elif msg.topic == TopicType.TASK_RESPONSE:
            print()
            return msg.payload  # .success, .answer, .msg
    raise RuntimeError("the stream ended without its task response")


async def aworld_style(client: AgentStreamClient) -> None:
    """2. Submit and stream in one call, typed messages; the model reasons first here."""
    print("2. streaming_run(): ", end="")
    response = await typewriter(client, "[think] What is 17 * 23?")
    print(f"   task response: success {response.success}, answer {response.answer!r}, msg {response.msg}")


async def disconnect_and_resume(client: AgentStreamClient) -> None:
    """3. Leave the loop half-way (a crash, a deploy), then resume from the last cursor."""
    task = await client.submit("[tokens:30] tell me a story", agent="llm")
    task_id = task["task_id"]
    before: list[dict[str, Any]] = []
    # aclosing: leaving the loop closes the HTTP stream now, not when the GC gets to it
    async with contextlib.aclosing(client.events(task_id, mode="all")) as events:
        async for event in events:
            before.append(event)
            if len(before) == 12:
                break
    cursor = before[-1]["id"]  # persist this wherever the consumer keeps its progress
    after = [event async for event in client.events(task_id, mode="all", after=cursor)]
    seqs = seqs_of(before) + seqs_of(after)
    dense = seqs == list(range(1, len(seqs) + 1))
    print(
        f"3. disconnected after seq {before[-1]['seq']}, resumed with after={cursor}: "
        f"{len(before)} + {len(after)} events, seqs {seqs[0]}..{seqs[-1]}, "
        f"{'no gap, no duplicate' if dense else 'GAP OR DUPLICATE'}"
    )


async def consume(client: AgentStreamClient, task_id: str, group: str, name: str, seen: list[str]) -> None:
    """One consumer of a group: handle each event, then ack it (at-least-once delivery)."""
    async for event in client.group_events(task_id, group, name, mode="all"):
        seen.append(event["id"])  # the handling
        await client.ack(task_id, group, [event["id"]])


async def drained(client: AgentStreamClient, task_id: str, group: str) -> dict[str, Any]:
    """Wait until the task ended and the group has delivered and acked everything."""
    while True:
        stats = next(g for g in (await client.groups(task_id))["groups"] if g["name"] == group)
        if stats["lag"] == 0 and stats["pending"] == 0 and (await client.get(task_id))["done"]:
            return dict(stats)
        await asyncio.sleep(0.05)


async def split_between_two_consumers(client: AgentStreamClient) -> None:
    """4. Two consumers of one group share a task's events; each event goes to one of them."""
    task = await client.submit("[tokens:30] a long answer", agent="llm")
    task_id, group = task["task_id"], "billing"
    seen: dict[str, list[str]] = {"a": [], "b": []}
    consumers = [asyncio.create_task(consume(client, task_id, group, n, ids)) for n, ids in seen.items()]
    # The consumer that receives `completed` ends there.
    await asyncio.wait(consumers, return_when=asyncio.FIRST_COMPLETED)
    # The other one gets no `completed`, so its iterator keeps waiting (when the server ends
    # its drained stream, the SDK reconnects). Once the group is drained (everything
    # delivered and acked, hence handled) nothing is left for it: stop it.
    stats = await drained(client, task_id, group)
    for running in consumers:
        running.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    stored = [event["id"] async for event in client.replay(task_id, mode="all")]
    a, b = seen["a"], seen["b"]
    disjoint, union = not set(a) & set(b), sorted(a + b) == sorted(stored)
    print(
        f"4. group {group!r} over HTTP: a got {len(a)}, b got {len(b)}; "
        f"disjoint: {disjoint}; union = all {len(stored)} events: {union}; "
        f"groups(): consumers {stats['consumers']}, pending {stats['pending']}, lag {stats['lag']}"
    )


async def straight_on_redis(redis_url: str, task_id: str, tasks: int) -> None:
    """5. Services inside the trust boundary skip HTTP (and tenants): streams on Redis."""
    settings = StreamsSettings(redis_url=redis_url)  # same prefix as the API: the default
    redis = create_redis(settings)
    try:
        # The task feed: one `created` and one `ended` entry per task, for all tenants. Its
        # `task_id` is the key id the streams take: `<tenant>/<task id>` (ids are per tenant).
        feed = FeedConsumer(redis, settings, after="0", block_ms=200)
        kinds: dict[str, int] = {"created": 0, "ended": 0}
        key_ids: list[str] = []
        async with asyncio.timeout(10):
            while kinds["ended"] < tasks:  # `ended` follows `completed` a moment later
                for _cursor, entry in await feed.read():
                    kinds[entry["kind"]] += 1
                    key_ids.append(entry["task_id"])
        key_id = next(k for k in key_ids if public_task_id(k) == task_id)

        handled = acked = 0
        async with GroupConsumer(redis, settings, key_id, "audit", "audit-1") as consumer:
            async for cursor, _event in consumer:  # ends after `completed`
                handled += 1
                acked += await consumer.ack(cursor)
            dead = len(await consumer.dead_letters())
        print(
            f"5. on Redis: GroupConsumer 'audit' handled {handled}, acked {acked}, dead-lettered {dead}; "
            f"FeedConsumer: {kinds['created']} created, {kinds['ended']} ended"
        )
    finally:
        await redis.aclose()


async def main() -> None:
    async with local_stack() as (redis_url, api_url, api_key):
        print(f"stack: redis {redis_url}, api {api_url}")
        async with AgentStreamClient(api_url, api_key) as client:
            first = await follow_one_task(client)
            await aworld_style(client)
            await disconnect_and_resume(client)
            await split_between_two_consumers(client)
        await straight_on_redis(redis_url, first, tasks=4)


if __name__ == "__main__":
    asyncio.run(main())
