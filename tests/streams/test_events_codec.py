"""Pure tests of the event model, filters, keys and codec (no Redis)."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentstream.streams import (
    ALWAYS_PASS,
    CATEGORIES,
    EventFilter,
    InvalidCursor,
    InvalidEvent,
    InvalidFilter,
    InvalidTaskId,
    Keys,
    StreamingMode,
    decode,
    dump_event,
    encode,
    parse_cursor,
    parse_event,
)
from agentstream.streams.codec import format_us, parse_us
from agentstream.streams.events import UnknownEvent

SAMPLES: list[dict[str, Any]] = [
    {"type": "queued", "agent": "hybrid", "input": "What is 17 * 23?"},
    {"type": "status", "status": "started"},
    {"type": "started", "agent": "tool"},
    {"type": "retry", "reason": "worker lost"},
    {"type": "iteration_start", "iteration": 1, "max_iterations": 5, "remaining": 4},
    {"type": "token", "content": "Hello"},
    {"type": "thinking_token", "content": "hmm"},
    {"type": "tool_call_delta", "index": 0, "tool_call_id": "c1", "tool_name": "calculator",
     "arguments_delta": '{"ex', "arguments": '{"ex'},
    {"type": "tool_calls_ready", "tool_calls": [
        {"index": 0, "tool_call_id": "c1", "tool_name": "calculator", "parameters": {"expression": "1+1"}}]},
    {"type": "thought", "content": "I should add", "iteration": 1},
    {"type": "action", "tool_name": "calculator", "tool_call_id": "c1", "parameters": {"e": 1}, "iteration": 1},
    {"type": "tool_call", "tool_name": "calculator", "tool_call_id": "c1", "parameters": {"e": 1}},
    {"type": "tool_result", "tool_name": "calculator", "tool_call_id": "c1", "result": 391, "success": True},
    {"type": "tool_error", "tool_name": "calculator", "tool_call_id": "c1", "error": "bad"},
    {"type": "observation", "content": "391", "iteration": 1, "has_error": False},
    {"type": "dawp_run_started", "run_id": "r", "workflow_id": "w", "placement": "before", "trigger": "task"},
    {"type": "dawp_step_started", "run_id": "r", "step_id": "s1", "step_index": 0},
    {"type": "dawp_step_completed", "run_id": "r", "step_id": "s1", "step_index": 0, "success": True},
    {"type": "dawp_run_completed", "run_id": "r", "success": True, "step_summaries": ["ok"]},
    {"type": "usage", "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    {"type": "result", "output": "391", "success": True, "execution_time": 0.5},
    {"type": "error", "error": "boom", "error_type": "ModelError", "retryable": True},
    {"type": "cancelled", "reason": "user"},
    {"type": "completed", "success": True, "status": "succeeded", "execution_time": 1.5},
]  # fmt: skip


def stored(event: dict[str, Any], seq: int = 7, attempt: int = 2, cursor: str = "5-1") -> dict[str, Any]:
    """What the append script stores for ``event``, decoded back."""
    enc = encode(event)
    fields = {"t": enc.type, "s": str(seq), "a": str(attempt), "m": str(enc.ts_us), "g": enc.agent_id,
              "d": _text(enc.payload)}  # fmt: skip
    if enc.extra:
        fields["x"] = _text(enc.extra)
    return decode(cursor, fields, "task1")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize("event", SAMPLES, ids=[e["type"] for e in SAMPLES])
def test_every_protocol_type_parses_to_its_model_and_back(event: dict[str, Any]) -> None:
    model = parse_event(event)
    assert not isinstance(model, UnknownEvent)
    assert model.type == event["type"]
    dumped = dump_event(model)
    for key, value in event.items():
        assert dumped[key] == value


def test_every_type_has_a_category() -> None:
    for event in SAMPLES:
        assert event["type"] in CATEGORIES


def test_unknown_types_round_trip_untouched() -> None:
    event = {"type": "x_custom", "payload": {"a": [1, 2]}, "task_id": "t"}
    model = parse_event(event)
    assert isinstance(model, UnknownEvent)
    assert dump_event(model)["payload"] == {"a": [1, 2]}
    back = stored(event)
    assert back["type"] == "x_custom" and back["payload"] == {"a": [1, 2]}


@pytest.mark.parametrize("event", SAMPLES, ids=[e["type"] for e in SAMPLES])
def test_codec_round_trip_keeps_every_field(event: dict[str, Any]) -> None:
    source = {**event, "agent_id": "a1", "timestamp": "2026-11-21T13:08:00.123456+00:00"}
    back = stored(source)
    assert back == {**source, "task_id": "task1", "seq": 7, "attempt": 2, "id": "5-1"}


def test_codec_keeps_loop_scope_on_raw_events() -> None:
    scope = {"kind": "dawp", "run_id": "r", "workflow_id": "w", "step_id": "s", "step_index": 1}
    back = stored({"type": "token", "content": "x", "loop_scope": scope})
    assert back["loop_scope"] == scope and back["content"] == "x"


def test_codec_refuses_bad_events() -> None:
    with pytest.raises(InvalidEvent):
        encode({"content": "no type"})
    with pytest.raises(InvalidEvent):
        encode({"type": "token"})
    with pytest.raises(InvalidEvent):
        encode({"type": "result", "output": object()})
    with pytest.raises(InvalidEvent):
        encode({"type": "token", "content": "x", "timestamp": "yesterday"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
field_names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
    lambda k: k not in {"type", "task_id", "seq", "attempt", "timestamp", "agent_id", "id"}
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([*CATEGORIES, "token", "custom_type"]),
    content=st.text(max_size=50),
    extra=st.dictionaries(field_names, json_values, max_size=5),
    micros=st.integers(0, 4_102_444_800_000_000),
    agent=st.none() | st.text(string.ascii_letters, min_size=1, max_size=10),
)
def test_codec_round_trip_property(
    kind: str, content: str, extra: dict[str, Any], micros: int, agent: str | None
) -> None:
    event: dict[str, Any] = {"type": kind, **extra, "timestamp": format_us(micros)}
    if kind in ("token", "thinking_token"):
        event["content"] = content
    if agent:
        event["agent_id"] = agent
    back = stored(event)
    assert back == {**event, "task_id": "task1", "seq": 7, "attempt": 2, "id": "5-1"}
    assert parse_us(back["timestamp"]) == micros


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from(list(StreamingMode)),
    kind=st.sampled_from([*CATEGORIES, "custom"]),
    scope=st.sampled_from(["main", "dawp", "all"]),
    event_scope=st.sampled_from([None, "main", "dawp"]),
)
def test_filter_property(mode: StreamingMode, kind: str, scope: str, event_scope: str | None) -> None:
    event: dict[str, Any] = {"type": kind}
    if event_scope:
        event["loop_scope"] = {"kind": event_scope}
    flt = EventFilter.parse(mode.value, scope=scope)
    passes = flt.matches(event)
    if kind in ALWAYS_PASS:
        assert passes
        return
    categories = mode.categories
    category_ok = categories is None or CATEGORIES.get(kind) in categories
    scope_ok = scope == "all" or (event_scope or "main") == scope
    assert passes == (category_ok and scope_ok)


def test_modes_match_the_protocol_table() -> None:
    def passing(mode: str) -> set[str]:
        flt = EventFilter.parse(mode)
        return {t for t in CATEGORIES if flt.matches({"type": t})} - ALWAYS_PASS

    assert passing("chunk") == {"token", "thinking_token", "refusal", "tool_call_delta"}
    assert passing("output") == {"result"}
    assert passing("chunk_output") == {"token", "thinking_token", "refusal", "tool_call_delta", "result"}
    assert "usage" not in passing("core") and "usage" in passing("all")
    assert EventFilter.parse("all").matches({"type": "brand_new"})
    assert not EventFilter.parse("core").matches({"type": "brand_new"})
    narrowed = EventFilter.parse("all", types="token,result")
    assert narrowed.matches({"type": "token"}) and not narrowed.matches({"type": "thought"})
    assert narrowed.matches({"type": "completed"}) and narrowed.matches({"type": "error"})


def test_bad_filters_are_clear_errors() -> None:
    with pytest.raises(InvalidFilter, match="unknown mode"):
        EventFilter.parse("everything")
    with pytest.raises(InvalidFilter, match="unknown scope"):
        EventFilter.parse("core", scope="side")


@pytest.mark.parametrize("bad", ["", "a" * 65, "a{b}", "a:b", "../x", "a b", "tâsk", "a\nb"])
def test_task_ids_that_could_escape_their_keys_are_refused(bad: str) -> None:
    with pytest.raises(InvalidTaskId):
        Keys("p").events(bad)


def test_keys_share_one_hash_tag() -> None:
    keys = Keys("agentstream")
    assert keys.events("t-1") == "agentstream:{t-1}:events"
    assert keys.meta("t-1") == "agentstream:{t-1}:meta"
    assert keys.dead("t-1") == "agentstream:{t-1}:dead"
    assert keys.tasks == "agentstream:tasks"
    assert keys.task_id_of(keys.events("t-1")) == "t-1"


@pytest.mark.parametrize(
    ("raw", "norm"), [(None, "0-0"), ("0", "0-0"), ("$", "$"), ("17", "17-0"), ("17-3", "17-3")]
)
def test_cursor_forms(raw: str | None, norm: str) -> None:
    assert parse_cursor(raw) == norm


@pytest.mark.parametrize("bad", ["-1", "abc", "1-2-3", "1-", "99999999999999999999999", "1 2", "(5"])
def test_malformed_cursors_are_invalid(bad: str) -> None:
    with pytest.raises(InvalidCursor):
        parse_cursor(bad)
