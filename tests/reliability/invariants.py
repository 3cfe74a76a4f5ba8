"""The one checker every reliability scenario ends with: nothing was lost.

A sound stream starts with ``queued`` (seq 1), has dense seqs, ends with exactly one
``completed``, and never shows a tool result twice for one call. What a consumer saw must
equal a full replay of the stream, event for event (or SSE ``data:`` payload for payload).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

Event = Mapping[str, Any]


def assert_stream_sound(events: Sequence[Event], *, status: str | None = None) -> None:
    """``events``: a whole stream, as a replay from the start returns it."""
    assert events, "the stream is empty"
    task = events[0].get("task_id")
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)), f"task {task}: seqs are not dense from 1: {seqs}"
    types = [e["type"] for e in events]
    assert types[0] == "queued", f"task {task}: first event is {types[0]!r}"
    assert types.count("completed") == 1, f"task {task}: {types.count('completed')} completed events"
    assert types[-1] == "completed", f"task {task}: the stream ends with {types[-1]!r}"
    if status is not None:
        assert events[-1]["status"] == status, f"task {task}: ended {events[-1]['status']!r}: {events[-2:]}"
    attempts = [e["attempt"] for e in events]
    assert attempts == sorted(attempts), f"task {task}: attempts go backwards: {attempts}"
    # A new attempt opens with ``retry`` (rule 4): every attempt change lands on one.
    for prev, event in itertools.pairwise(events):
        if event["attempt"] != prev["attempt"] and prev["type"] != "queued":
            assert event["type"] == "retry", f"task {task}: attempt {event['attempt']} starts with {event}"
    assert_no_tool_ran_twice(events)


def assert_no_tool_ran_twice(events: Sequence[Event]) -> None:
    """At most one outcome per ``tool_call_id`` (``tool_error``, or a successful
    ``tool_result``: a failure's ``tool_result`` with ``success: false`` is the twin of its
    ``tool_error``), and once a result is recorded no later attempt announces that call
    again (``tool_call`` precedes a run)."""
    outcomes = Counter(
        e["tool_call_id"]
        for e in events
        if e["type"] == "tool_error" or (e["type"] == "tool_result" and e.get("success") is not False)
    )
    twice = {call: n for call, n in outcomes.items() if n > 1}
    assert not twice, f"tool calls with more than one recorded outcome: {twice}"
    recorded: set[str] = set()
    for event in events:
        call = event.get("tool_call_id")
        if event["type"] in ("tool_result", "tool_error"):
            recorded.add(call)
        elif event["type"] == "tool_call":
            assert call not in recorded, f"tool call {call} ran again after its result was recorded"


def assert_same_as_replay(seen: Sequence[Any], replayed: Sequence[Any]) -> None:
    """What a consumer saw equals the replay: same length, same items, same order."""
    assert len(seen) == len(replayed), f"saw {len(seen)} items, the replay has {len(replayed)}"
    for index, (a, b) in enumerate(zip(seen, replayed, strict=True)):
        assert a == b, f"item {index} differs:\n seen     {a!r}\n replayed {b!r}"
