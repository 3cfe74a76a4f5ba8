"""The Responses translator, pure: stored events in, events the ``openai`` SDK's own models
validate out (strictly, each in the class of its type), numbered ``seq * 1000 + k``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, get_args

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from agentstream.api.dialects.responses.objects import ResponseState
from agentstream.api.dialects.responses.translator import SEQ_SPAN, ResponsesTranslator
from tests.api.helpers import completed, result, tokens

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
TS = "2026-11-21T13:08:00.123456+00:00"


def stored(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Events as a reader yields them: the envelope with dense seqs."""
    return [{**e, "seq": i, "timestamp": TS, "attempt": 1} for i, e in enumerate(events, start=1)]


def translate(events: Iterable[Mapping[str, Any]]) -> tuple[list[Any], Response]:
    translator = ResponsesTranslator(ResponseState(id="resp_1", model="hybrid", created_at=1))
    out = []
    for event in stored([{"type": "queued", "agent": "hybrid", "input": "x"}, *events]):
        for item in translator.feed(event):
            typed = EVENTS.validate_python(item)
            assert get_args(type(typed).model_fields["type"].annotation) == (item["type"],)
            out.append(typed)
    numbers = [e.sequence_number for e in out]
    assert numbers == sorted(set(numbers))
    return out, Response.model_validate(translator.state.snapshot())


def kinds(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def test_reasoning_text_and_tool_calls_become_items() -> None:
    calc = {"index": 0, "tool_call_id": "call_a", "tool_name": "calculator"}
    events, final = translate([
        {"type": "started", "agent": "hybrid"},
        {"type": "thinking_token", "content": "Let me "},
        {"type": "thinking_token", "content": "think."},
        *tokens(2),
        {**calc, "type": "tool_call_delta", "arguments_delta": '{"expr', "arguments": '{"expr'},
        {"index": 1, "type": "tool_call_delta", "tool_name": "search", "arguments_delta": '{"q": 1}'},
        {**calc, "type": "tool_call_delta", "arguments_delta": '": "6*7"}', "arguments": '{"expr": "6*7"}'},
        {"type": "usage", "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "reasoning_tokens": 2,
         "cached_tokens": 4},
        {"type": "tool_calls_ready", "tool_calls": [
            {**calc, "parameters": {"expr": "6*7"}},
            {"index": 1, "tool_call_id": "call_b", "tool_name": "search", "parameters": {"q": 1}},
        ]},
        {"type": "tool_call", "tool_name": "calculator", "tool_call_id": "call_a", "parameters": {"expr": "6*7"}},
        {"type": "tool_result", "tool_name": "calculator", "tool_call_id": "call_a", "result": 42, "success": True},
        {"type": "tool_result", "tool_name": "search", "tool_call_id": "call_b", "result": None, "success": False,
         "error": "search is down"},
        {"type": "tool_error", "tool_name": "search", "tool_call_id": "call_b", "error": "search is down"},
        *tokens(3, start=10),
        {"type": "usage", "prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23},
        result("w10 w11 w12 "),
        completed(),
    ])  # fmt: skip
    assert kinds(events)[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert events[0].sequence_number == SEQ_SPAN and events[1].sequence_number == 2 * SEQ_SPAN
    assert kinds(events)[-1] == "response.completed" and final.status == "completed"
    assert [item.type for item in final.output] == [
        "reasoning", "message", "function_call", "function_call", "function_call_output",
        "function_call_output", "message",
    ]  # fmt: skip
    reasoning, _, call_a, call_b, out_a, out_b, _ = final.output
    assert reasoning.content is not None and reasoning.content[0].text == "Let me think."
    assert (call_a.arguments, call_a.status) == ('{"expr": "6*7"}', "completed")
    assert (call_b.call_id, call_b.arguments) == ("call_b", '{"q": 1}')
    assert (out_a.call_id, out_a.output, out_b.output) == ("call_a", "42", "search is down")
    assert final.output_text == "w0 w1 w10 w11 w12 "
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (30, 8)
    assert final.usage.input_tokens_details.cached_tokens == 4
    assert final.usage.output_tokens_details.reasoning_tokens == 2
    deltas = [
        e.delta
        for e in events
        if e.type == "response.function_call_arguments.delta" and e.item_id == call_a.id
    ]
    assert "".join(deltas) == call_a.arguments
    assert [e.delta for e in events if e.type == "response.reasoning_text.delta"] == ["Let me ", "think."]
    assert events[-1].response == final


def test_a_failed_run_and_a_cancelled_one() -> None:
    events, final = translate([
        {"type": "status", "status": "started"}, *tokens(2),
        {"type": "error", "error": "model down", "error_type": "RateLimitError", "retryable": False},
        completed("failed"),
    ])  # fmt: skip
    assert kinds(events)[-1] == "response.failed" and final.status == "failed"
    assert final.error is not None and (final.error.code, final.error.message) == (
        "rate_limit_exceeded",
        "model down",
    )
    assert final.output[0].status == "incomplete"
    events, final = translate([{"type": "cancelled", "reason": "user"}, completed("cancelled")])
    assert kinds(events) == ["response.created", "response.incomplete"]
    assert final.status == "cancelled" and final.output == []


def test_a_retry_drops_what_the_failed_attempt_left_open() -> None:
    events, final = translate([
        {"type": "started", "agent": "llm"}, *tokens(3),
        {"type": "retry", "attempt": 2, "reason": "worker lost"},
        *tokens(2, start=5), result(), completed(),
    ])  # fmt: skip
    superseded = next(e for e in events if e.type == "response.output_item.done")
    assert superseded.item.status == "incomplete"
    assert final.output_text == "w5 w6 " and len(final.output) == 1


def test_model_stops_are_incomplete_and_a_refusal_is_an_answer() -> None:
    stopped = {
        "type": "error",
        "error": "the model stopped: length",
        "error_type": "model_stopped",
        "retryable": False,
    }
    failed = {**result("w0 w1 "), "success": False}
    events, final = translate([*tokens(2), stopped, {**failed, "stop_reason": "length"}, completed("failed")])
    assert kinds(events)[-1] == "response.incomplete" and final.status == "incomplete"
    assert final.incomplete_details is not None and final.incomplete_details.reason == "max_output_tokens"
    assert final.output[0].status == "incomplete" and final.error is None
    events, final = translate([
        {"type": "refusal", "content": "I can't "}, {"type": "refusal", "content": "help with that."},
        stopped, {**failed, "stop_reason": "refusal", "refusal": "I can't help with that."},
        completed("failed"),
    ])  # fmt: skip
    assert kinds(events)[-1] == "response.completed" and final.status == "completed"
    assert [e.delta for e in events if e.type == "response.refusal.delta"] == ["I can't ", "help with that."]
    message = final.output[0]
    assert message.type == "message" and message.status == "completed"
    assert message.content[0].type == "refusal" and message.content[0].refusal == "I can't help with that."
    assert final.output_text == ""


def test_markers_without_seq_are_skipped_and_a_trimmed_stream_still_opens() -> None:
    translator = ResponsesTranslator(ResponseState(id="resp_2", model="llm", created_at=1))
    assert translator.feed({"type": "gap", "first_cursor": "5-0", "first_seq": 40}) == []
    trimmed = translator.feed({"type": "token", "content": "hi", "seq": 40, "timestamp": TS})
    assert [e["type"] for e in trimmed][:2] == ["response.created", "response.in_progress"]
    assert trimmed[0]["sequence_number"] == 40 * SEQ_SPAN
