"""The wait-for-input scripts against a real Redis: park, record input (atomic, checked,
idempotent), end a wait past its deadline, and what a waiting task refuses."""

from __future__ import annotations

import pytest

from agentstream.streams import InputRejected, TaskStore, TaskWaiting
from agentstream.streams.codec import encode
from agentstream.streams.errors import FencedError

PENDING = [{"tool_call_id": "c1", "kind": "approval"}, {"tool_call_id": "c2", "kind": "question"}]


async def waiting_task(store: TaskStore, task_id: str = "t1") -> int:
    await store.create_task(task_id, owner="alice", agent="hybrid", input="hi")
    attempt = await store.open_attempt(task_id)
    async with store.writer(attempt) as writer:
        await writer.append(
            {"type": "approval_required", "tool_call_id": "c1", "tool_name": "rm", "parameters": {}}
        )
        await writer.append({"type": "input_required", "tool_call_id": "c2", "prompt": "which?"})
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
    assert (first.seq, first.remaining, first.queued) == (4, 1, False) and repeat == first
    meta = await store.meta("t1")
    assert meta is not None and meta.status == "waiting" and meta.seq == 4

    answer = {"type": "input", "message": "blue", "tool_call_id": "c2"}
    last = await store.record_input("t1", answer, ["c2"])
    assert (last.seq, last.remaining, last.queued) == (5, 0, True)
    meta = await store.meta("t1")
    assert meta is not None and (meta.status, meta.resumes, meta.pending_input) == ("queued", 1, [])
    with pytest.raises(InputRejected) as late:
        await store.record_input("t1", answer, ["c2"])
    assert late.value.reason == "notwaiting" and "its status is queued" in str(late.value)
    assert (await store.open_attempt("t1")).number == 2


async def test_calls_answered_before_their_attempt_parks_the_task_wait_no_more(store: TaskStore) -> None:
    """A reader sees a wait event as soon as it is appended, before the attempt parks the
    task: an answer sent at once is taken, and the attempt then waits only for the rest."""
    await store.create_task("e1", owner="alice", agent="hybrid", input="hi")
    attempt = await store.open_attempt("e1")
    approve = {"type": "input", "approvals": [{"tool_call_id": "c1", "approved": True}]}
    with pytest.raises(InputRejected) as unannounced:
        await store.record_input("e1", approve, ["c1"])
    assert unannounced.value.reason == "notwaiting"
    async with store.writer(attempt) as writer:
        await writer.append(
            {"type": "approval_required", "tool_call_id": "c1", "tool_name": "rm", "parameters": {}}
        )
        await writer.append({"type": "input_required", "tool_call_id": "c2", "prompt": "which?"})
        await writer.flush()
        early = await store.record_input("e1", approve, ["c1"], "k1")
        assert (early.seq, early.remaining, early.queued) == (4, 1, False)
        await writer.append({"type": "tool_result", "tool_call_id": "c0", "result": 1})  # after it
        await writer.flush()
        assert writer.last_seq == 5
    meta = await store.meta("e1")
    assert meta is not None and meta.status == "running" and meta.pending_input == [PENDING[1]]
    assert await store.set_waiting(attempt, PENDING, "2030-01-01T00:00:00+00:00")
    meta = await store.meta("e1")
    assert meta is not None and meta.status == "waiting" and meta.pending_input == [PENDING[1]]

    await store.create_task("e2", owner="alice", agent="hybrid", input="hi")
    attempt = await store.open_attempt("e2")
    async with store.writer(attempt) as writer:
        await writer.append(
            {"type": "approval_required", "tool_call_id": "c1", "tool_name": "rm", "parameters": {}}
        )
        await writer.flush()
        answered = await store.record_input("e2", approve, ["c1"])
        assert (answered.remaining, answered.queued) == (0, False)  # its attempt hands it on
    assert not await store.set_waiting(attempt, PENDING[:1], "2030-01-01T00:00:00+00:00")
    meta = await store.meta("e2")
    assert meta is not None and (meta.status, meta.resumes, meta.pending_input) == ("queued", 1, [])
    assert (await store.open_attempt("e2")).number == 2


async def test_a_wait_ends_only_under_its_own_attempt(store: TaskStore) -> None:
    attempt = await waiting_task(store)
    ending = [
        {"type": "error", "error": "late", "error_type": "InputTimeout", "retryable": False},
        {"type": "completed", "success": False, "status": "failed", "execution_time": 0.0},
    ]
    assert not await store.end_wait("t1", attempt + 1, ending, "failed")
    assert await store.end_wait("t1", attempt, ending, "failed")
    meta = await store.meta("t1")
    assert meta is not None and meta.done and meta.status == "failed" and meta.seq == 5
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


async def test_a_message_to_a_running_task_joins_its_stream_between_the_writers_batches(
    store: TaskStore,
) -> None:
    await store.create_task("m1", owner="alice", agent="hybrid", input="hi")
    early = await store.record_message("m1", "before any attempt", "k0")  # queued: taken later
    attempt = await store.open_attempt("m1")
    async with store.writer(attempt) as writer:
        await writer.append({"type": "started", "agent": "a"})
        await writer.flush()
        first = await store.record_message("m1", "while it runs", "k1")
        assert await store.record_message("m1", "while it runs", "k1") == first  # counted once
        await writer.append({"type": "status", "status": "going on"})  # goes on after the message
        await writer.flush()
        assert writer.last_seq == 5
    assert (early.seq, first.seq, first.remaining) == (2, 4, 0)
    assert await store.queued_count("m1") == 2
    given = await store.queued_messages("m1", skip={2})
    assert [(m.seq, m.message) for m in given] == [(4, "while it runs")]
    meta = await store.meta("m1")
    assert meta is not None and meta.status == "running" and meta.seq == 5

    assert not await store.close_inbox("m1", attempt.number, 1)  # one not given yet: stays open
    assert await store.close_inbox("m1", attempt.number, 2)
    with pytest.raises(InputRejected) as finishing:
        await store.record_message("m1", "too late")
    assert finishing.value.reason == "finishing" and "final answer" in str(finishing.value)
    with pytest.raises(FencedError):
        await store.close_inbox("m1", attempt.number - 1, 2)
    await store.open_attempt("m1")  # a new attempt takes messages again
    assert (await store.record_message("m1", "again")).seq == 6


async def test_a_resent_batch_is_answered_again_after_a_message_and_an_ended_task_refuses(
    store: TaskStore,
) -> None:
    await store.create_task("m2", owner="alice", agent="hybrid", input="hi")
    attempt = await store.open_attempt("m2")
    async with store.writer(attempt) as writer:
        await writer.append({"type": "started", "agent": "a"})
        await writer.flush()
        sent = [{"type": "status", "status": "one"}, {"type": "status", "status": "two"}]
        args: list[object] = [attempt.number, 2, 1000, 60, "running", "2030-01-01T00:00:00+00:00", 2]
        for event in sent:
            args.extend(encode(event))
        keys = list(store.keys.task_keys("m2"))
        applied = await writer._script(keys=keys, args=args)  # as if its reply were lost
        await store.record_message("m2", "meanwhile")
        again = await writer._script(keys=keys, args=args)  # the resend: answered, not re-applied
        assert again[0] == 5 and again[1:] == applied[1:]
        meta = await store.meta("m2")
        assert meta is not None and meta.seq == 5
    await waiting_task(store, "m4")
    with pytest.raises(InputRejected) as now_waiting:
        await store.record_message("m4", "hello")
    assert now_waiting.value.reason == "waitingnow"
    await store.request_cancel("m4")
    with pytest.raises(InputRejected) as ended:
        await store.record_message("m4", "hello")
    assert ended.value.reason == "ended" and "has ended (cancelled)" in str(ended.value)
