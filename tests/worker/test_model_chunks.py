"""One streamed chunk to deltas: decoded JSON (the hot path) and the openai SDK's models."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from agentstream.worker.model import (
    Finish,
    RefusalDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallFragment,
    Usage,
    parse_chunk,
)


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }
    )


def test_chunk_mapping_covers_text_reasoning_tool_calls_and_finish() -> None:
    mapped = parse_chunk(
        chunk(
            {
                "content": "Hi",
                "reasoning_content": "thinking",
                "tool_calls": [
                    {"index": 1, "id": "call_1", "function": {"name": "calculator", "arguments": '{"e'}},
                    {"index": 0, "function": {"arguments": "x"}},
                ],
            },
            finish_reason="tool_calls",
        )
    )

    assert mapped == [
        ThinkingDelta("thinking"),
        TextDelta("Hi"),
        ToolCallFragment(index=1, tool_call_id="call_1", tool_name="calculator", arguments_delta='{"e'),
        ToolCallFragment(index=0, tool_call_id=None, tool_name=None, arguments_delta="x"),
        Finish("tool_calls"),
    ]


def test_chunk_mapping_reads_the_reasoning_field_and_usage() -> None:
    assert parse_chunk(chunk({"reasoning": "hm"})) == [ThinkingDelta("hm")]
    usage_only = ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }
    )
    assert parse_chunk(usage_only) == [Usage(3, 4, 7)]
    assert parse_chunk(chunk({"role": "assistant", "content": ""})) == []


def test_chunk_mapping_reads_refusals_and_usage_details() -> None:
    assert parse_chunk(chunk({"refusal": "I can't"}, finish_reason="stop")) == [
        RefusalDelta("I can't"),
        Finish("stop"),
    ]
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 6,
        "total_tokens": 16,
        "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 4},
    }
    [mapped] = parse_chunk(chunk({}, usage=usage))
    assert mapped == Usage(10, 6, 16, reasoning_tokens=4, cached_tokens=8)
    assert mapped.fields() == {
        "prompt_tokens": 10,
        "completion_tokens": 6,
        "total_tokens": 16,
        "reasoning_tokens": 4,
        "cached_tokens": 8,
    }
    assert Usage(1, 2, 3).fields() == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


CHUNK_SAMPLES = [  # decoded JSON and the SDK's model of it must map alike
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "calculator", "arguments": ""}},
        {"index": 1, "function": {"arguments": '{"ex'}},
    ]}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}},
    {"choices": [{"index": 0, "delta": {"refusal": "No."}, "finish_reason": "stop"}]},
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8,
                              "completion_tokens_details": {"reasoning_tokens": 2},
                              "prompt_tokens_details": {"cached_tokens": 1}}},
]  # fmt: skip


@pytest.mark.parametrize("raw", CHUNK_SAMPLES)
def test_decoded_json_and_sdk_models_map_alike(raw: dict[str, Any]) -> None:
    full = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", **raw}
    assert parse_chunk(full) == parse_chunk(ChatCompletionChunk.model_validate(full))
