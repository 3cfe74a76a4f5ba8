from __future__ import annotations

import uuid
from typing import Any

from agentstream.streams import Attempt, StreamsSettings, TaskStore


async def new_task(store: TaskStore, task_id: str | None = None, owner: str = "tenant-a") -> Attempt:
    """A created task with its first attempt opened."""
    task_id = task_id or f"tsk_{uuid.uuid4().hex[:12]}"
    await store.create_task(task_id, owner=owner, agent="llm", input="hello")
    return await store.open_attempt(task_id)


async def lose_last(redis: Any, settings: StreamsSettings, task_id: str, count: int) -> None:
    """What Redis with ``appendfsync everysec`` may do on a crash: forget the last writes."""
    key = settings.keys.events(task_id)
    newest = await redis.xrevrange(key, count=count)
    await redis.xdel(key, *[cursor for cursor, _ in newest])
    kept = await redis.xrevrange(key, count=1)
    await redis.hset(settings.keys.meta(task_id), mapping={"seq": kept[0][1]["s"], "last_id": kept[0][0]})


def tokens(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"type": "token", "content": f"w{i} "} for i in range(start, start + n)]


COMPLETED: dict[str, Any] = {
    "type": "completed",
    "success": True,
    "status": "succeeded",
    "execution_time": 0.1,
}
