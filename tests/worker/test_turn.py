"""The pure turn accumulator: deltas in, event payloads, stop reasons and messages out."""

from __future__ import annotations

import pytest

from agentstream.worker.errors import ModelStopped
from agentstream.worker.model import (
    Finish,
    RefusalDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallFragment,
    TurnAccumulator,
    Usage,
)


def fragment(
    index: int, args: str = "", *, id: str | None = None, name: str | None = None
) -> ToolCallFragment:
    return ToolCallFragment(index=index, tool_call_id=id, tool_name=name, arguments_delta=args)


def test_turn_accumulator_maps_deltas_to_event_payloads() -> None:
    turn = TurnAccumulator()
    events = [
        turn.feed(ThinkingDelta("Hmm.")),
        turn.feed(TextDelta("Hello")),
        turn.feed(TextDelta(" world")),
        turn.feed(Finish("stop")),
        turn.feed(Usage(3, 2, 5)),
    ]

    assert events == [
        {"type": "thinking_token", "content": "Hmm."},
        {"type": "token", "content": "Hello"},
        {"type": "token", "content": " world"},
        None,
        {"type": "usage", "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    ]
    assert turn.text == "Hello world"
    assert turn.thinking == "Hmm."
    assert turn.finish_reason == "stop"
    assert turn.assistant_message() == {"role": "assistant", "content": "Hello world"}


def test_turn_accumulator_builds_the_assistant_message_with_tool_calls() -> None:
    turn = TurnAccumulator()
    delta_event = turn.feed(fragment(0, '{"expression": "17 * 23"}', id="a", name="calculator"))
    turn.feed(fragment(1, '{"expression": "2*', id="b", name="calculator"))
    turn.feed(fragment(2, "", id="c", name="current_time"))
    turn.feed(Finish("tool_calls"))

    assert delta_event is not None and delta_event["type"] == "tool_call_delta"
    assert turn.assistant_message() == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "a",
                "type": "function",
                "function": {"name": "calculator", "arguments": '{"expression": "17 * 23"}'},
            },
            # Unusable arguments are replaced so the history stays valid for strict servers.
            {"id": "b", "type": "function", "function": {"name": "calculator", "arguments": "{}"}},
            {"id": "c", "type": "function", "function": {"name": "current_time", "arguments": "{}"}},
        ],
    }
    assert [call.error is None for call in turn.ready_tool_calls()] == [True, False, True]


def test_usage_fields_are_zero_without_usage() -> None:
    assert TurnAccumulator().usage_fields() == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
    }


def test_a_refusal_is_an_event_and_the_stop_reason() -> None:
    turn = TurnAccumulator()
    events = [
        turn.feed(RefusalDelta("I can't")),
        turn.feed(RefusalDelta(" do that.")),
        turn.feed(Finish("stop")),
    ]

    assert events == [
        {"type": "refusal", "content": "I can't"},
        {"type": "refusal", "content": " do that."},
        None,
    ]
    assert (turn.refusal, turn.text, turn.stop_reason) == ("I can't do that.", "", "refusal")
    with pytest.raises(ModelStopped) as caught:
        turn.raise_if_incomplete()
    assert (caught.value.output, caught.value.refusal) == ("I can't do that.", "I can't do that.")


def test_stop_reasons_of_turns() -> None:
    def stop_reason(*deltas: object) -> str:
        turn = TurnAccumulator()
        for delta in deltas:
            turn.feed(delta)  # type: ignore[arg-type]
        return turn.stop_reason

    assert stop_reason(TextDelta("a"), Finish("stop")) == "stop"
    assert stop_reason(TextDelta("a")) == "stop"  # ended by [DONE] alone
    assert stop_reason(fragment(0, "{}", id="c", name="t")) == "tool_calls"
    assert stop_reason(fragment(0, "{}", id="c", name="t"), Finish("function_call")) == "tool_calls"
    assert stop_reason(TextDelta("a"), Finish("length")) == "length"
    assert stop_reason(TextDelta("a"), Finish("eos")) == "eos"  # a server's own reason is kept


def test_only_cut_filtered_or_refused_turns_are_incomplete() -> None:
    for reason in ("stop", "tool_calls", "eos"):
        turn = TurnAccumulator()
        turn.feed(Finish(reason))
        turn.raise_if_incomplete()
    for reason in ("length", "content_filter"):
        turn = TurnAccumulator()
        turn.feed(TextDelta("partial"))
        turn.feed(Finish(reason))
        with pytest.raises(ModelStopped) as caught:
            turn.raise_if_incomplete()
        assert (caught.value.stop_reason, caught.value.output, caught.value.refusal) == (
            reason,
            "partial",
            None,
        )


def test_usage_details_reach_the_usage_event() -> None:
    turn = TurnAccumulator()

    assert turn.feed(Usage(3, 2, 5, reasoning_tokens=1, cached_tokens=0)) == {
        "type": "usage",
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "reasoning_tokens": 1,
        "cached_tokens": 0,
    }
