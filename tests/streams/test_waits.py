"""The wait-for-input scripts against a real Redis: park, record input (atomic, checked,
idempotent), end a wait past its deadline, and what a waiting task refuses."""

from __future__ import annotations

import pytest

from agentstream.streams import InputRejected, TaskStore, TaskWaiting
from agentstream.streams.errors import FencedError

PENDING = [{"tool_call_id": "c1", "kind": "approval"}, {"tool_call_id": "c2", "kind": "question"}]


async def waiting_task(store: TaskStore, task_id: str = "t1") -> int:
    await store.create_task(task_id, owner="alice", agent="hybrid", input="hi")
    attempt = await store.open_attempt(task_id)
    async with store.writer(attempt) as writer:
        await writer.append(
            {"type": "approval_required", "tool_call_id": "c1", "tool_name": "rm", "parameters": {}}
        )
        await writer.flush()
    await store.set_waiting(attempt, PENDING, "2030-01-01T00:00:00+00:00")
    return attempt.number


async def test_input_is_checked_recorded_once_and_requeues_when_nothing_waits(store: TaskStore) -> None:
    await waiting_task(store)
    meta = await store.meta("t1")
    assert meta is not None and meta.status == "waiting" and meta.pending_input == PENDING
    with pytest.raises(TaskWaiting):
        await store.open_attempt("t1")  # a stray job opens nothing

    with pytest.raises(InputRejected) as refused:
        await store.record_input("t1", {"type": "input", "approvals": []}, ["zz"])
    assert refused.value.reason == "notpending"

    approve = {"type": "input", "approvals": [{"tool_call_id": "c1", "approved": True}]}
    first = await store.record_input("t1", approve, ["c1"], "k1")
    repeat = await store.record_input("t1", approve, ["c1"], "k1")
    assert (first.seq, first.remaining) == (3, 1) and repeat == first
    meta = await store.meta("t1")
    assert meta is not None and meta.status == "waiting" and meta.seq == 3

    answer = {"type": "input", "message": "blue", "tool_call_id": "c2"}
    last = await store.record_input("t1", answer, ["c2"])
    assert (last.seq, last.remaining) == (4, 0)
    meta = await store.meta("t1")
    assert meta is not None and (meta.status, meta.resumes, meta.pending_input) == ("queued", 1, [])
    with pytest.raises(InputRejected) as late:
        await store.record_input("t1", answer, ["c2"])
    assert late.value.reason == "notwaiting" and "its status is queued" in str(late.value)
    assert (await store.open_attempt("t1")).number == 2


async def test_a_wait_ends_only_under_its_own_attempt(store: TaskStore) -> None:
    attempt = await waiting_task(store)
    ending = [
        {"type": "error", "error": "late", "error_type": "InputTimeout", "retryable": False},
        {"type": "completed", "success": False, "status": "failed", "execution_time": 0.0},
    ]
    assert not await store.end_wait("t1", attempt + 1, ending, "failed")
    assert await store.end_wait("t1", attempt, ending, "failed")
    meta = await store.meta("t1")
    assert meta is not None and meta.done and meta.status == "failed" and meta.seq == 4
    assert not await store.end_wait("t1", attempt, ending, "failed")  # once


async def test_a_stale_attempt_cannot_park_the_task_and_a_cancel_wins(store: TaskStore) -> None:
    await store.create_task("t2", owner="alice", agent="hybrid", input="hi")
    old = await store.open_attempt("t2")
    await store.open_attempt("t2")
    with pytest.raises(FencedError):
        await store.set_waiting(old, PENDING, "x")

    await waiting_task(store, "t3")
    meta = await store.request_cancel("t3")
    assert meta.status == "cancelled" and meta.done and meta.pending_input == []
