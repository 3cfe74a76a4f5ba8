"""Write one task's stream and read it back, on the embedded Redis (nothing else needed).

    python examples/write_and_replay.py

Shows the streams core on its own: create a task, open an attempt, append a burst of
events through the fenced writer, tail it live while it is written, then replay it from
the start with a streaming mode, and resume from a cursor in the middle.
"""

from __future__ import annotations

import asyncio
import tempfile

from agentstream.cli.embedded import EmbeddedRedis
from agentstream.streams import EventFilter, Reader, ReaderHub, StreamsSettings, TaskStore, create_redis


async def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        async with EmbeddedRedis(data_dir) as url:
            settings = StreamsSettings(redis_url=url)
            redis = create_redis(settings)
            store = TaskStore(redis, settings)
            async with ReaderHub(redis, settings) as hub:
                reader = Reader(redis, settings, hub)
                await store.create_task("demo-task", owner="me", agent="llm", input="Say hello")
                attempt = await store.open_attempt("demo-task")

                async def follow() -> list[str]:
                    return [e["type"] async for _, e in reader.tail("demo-task")]

                live = asyncio.create_task(follow())
                async with store.writer(attempt) as writer:
                    await writer.append({"type": "status", "status": "started"})
                    for word in ["Hello", "from", "a", "durable", "stream", "."]:
                        await writer.append({"type": "token", "content": word + " "})
                    await writer.append(
                        {"type": "result", "output": "Hello", "success": True, "execution_time": 0.1}
                    )
                    await writer.append(
                        {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.1}
                    )
                print("live tail saw:", " ".join(await live))

                text = "".join(
                    [
                        e.get("content", "")
                        async for _, e in reader.replay("demo-task", filter=EventFilter.parse("chunk"))
                    ]
                )
                print("replayed text:", text.strip())
                items = [item async for item in reader.replay("demo-task")]
                middle = items[3][0]
                resumed = [e["seq"] async for _, e in reader.replay("demo-task", after=middle)]
                first, last = items[0][1]["seq"], items[-1][1]["seq"]
                print(f"{len(items)} events, seqs {first}..{last}; after {middle}: {resumed}")
            await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
