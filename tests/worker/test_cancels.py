"""The process's one poll of the cancel requests of its running tasks, against a real Redis."""

from __future__ import annotations

import asyncio
import uuid

from agentstream.streams import TaskStore
from agentstream.worker.cancels import cancel_watch_for


async def new_task(store: TaskStore) -> str:
    task_id = f"c_{uuid.uuid4().hex[:12]}"
    await store.create_task(task_id, owner="t", agent="llm", input="x", request={})
    return task_id


async def test_the_tasks_of_a_process_are_polled_together_and_only_the_cancelled_one_wakes(
    store: TaskStore,
) -> None:
    ids = [await new_task(store) for _ in range(20)]
    watch = cancel_watch_for(store, 0.02)
    waits = {task_id: asyncio.create_task(watch.requested(task_id)) for task_id in ids}
    for _ in range(1_000):  # polls, one round trip each for all 20 tasks
        if watch.polls >= 3:
            break
        await asyncio.sleep(0.01)
    assert watch.polls >= 3
    assert not any(w.done() for w in waits.values())

    await store.request_cancel(ids[7], reason="user")
    await asyncio.wait_for(waits[ids[7]], 10)
    await asyncio.sleep(0.1)
    assert [task_id for task_id, w in waits.items() if w.done()] == [ids[7]]

    for w in waits.values():
        w.cancel()
    await asyncio.gather(*waits.values(), return_exceptions=True)
    for _ in range(500):  # the poll ends at its next interval once nobody watches
        if watch._task is None:
            break
        await asyncio.sleep(0.01)
    assert watch._task is None and not watch._waiters


async def test_one_watch_per_client_and_interval(store: TaskStore) -> None:
    assert cancel_watch_for(store, 0.25) is cancel_watch_for(store, 0.25)
    assert cancel_watch_for(store, 0.25) is not cancel_watch_for(store, 0.5)
