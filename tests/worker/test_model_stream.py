"""The pure reader of one streamed response: lines in, deltas out, usage once, completeness."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from agentstream.worker.model import Finish, ResponseReader, TextDelta, Usage
from agentstream.worker.model.stream import IncompleteStream, StreamErrorEvent


def line(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return "data: " + json.dumps({"id": "c", "choices": choices, **extra})


def usage(completion: int, **details: Any) -> dict[str, Any]:
    return {"prompt_tokens": 5, "completion_tokens": completion, "total_tokens": 5 + completion, **details}


def read(lines: list[str]) -> list[Any]:
    reader = ResponseReader()
    deltas = [delta for text in lines for delta in reader.feed(text)]
    return deltas + reader.close()


def test_usage_on_every_chunk_is_given_once_at_the_end_as_the_last_total() -> None:
    deltas = read(
        [
            line({"role": "assistant", "content": ""}, usage=usage(0)),
            line({"content": "Hi"}, usage=usage(1)),
            line({"content": " there"}, usage=usage(2)),
            line({}, "stop", usage=usage(2)),
            line(usage=usage(2, completion_tokens_details={"reasoning_tokens": 0})),
            "data: [DONE]",
        ]
    )

    assert deltas == [
        TextDelta("Hi"),
        TextDelta(" there"),
        Finish("stop"),
        Usage(5, 2, 7, reasoning_tokens=0),
    ]


def test_details_of_an_earlier_usage_survive_a_later_one_without_them() -> None:
    deltas = read(
        [
            line({"content": "a"}, "stop", usage=usage(1, prompt_tokens_details={"cached_tokens": 3})),
            line(usage=usage(1)),
            "data: [DONE]",
        ]
    )

    assert deltas[-1] == Usage(5, 1, 6, reasoning_tokens=None, cached_tokens=3)


def test_an_answer_ended_by_done_without_a_finish_reason_is_complete() -> None:
    assert read([line({"content": "Hi"}), "", ": keep-alive", "data: [DONE]"]) == [TextDelta("Hi")]


def test_a_finish_reason_without_done_is_complete() -> None:
    assert read([line({"content": "Hi"}, "stop")]) == [TextDelta("Hi"), Finish("stop")]


def test_a_body_with_neither_finish_nor_done_was_cut_off() -> None:
    reader = ResponseReader()
    assert reader.feed(line({"content": "Hi"})) == [TextDelta("Hi")]

    with pytest.raises(IncompleteStream, match="without a finish reason or \\[DONE\\]"):
        reader.close()


def test_done_alone_is_no_answer() -> None:
    with pytest.raises(IncompleteStream):
        read(["data: [DONE]"])


def test_nothing_after_done_counts() -> None:
    reader = ResponseReader()
    reader.feed(line({"content": "a"}))
    reader.feed("data: [DONE]")

    assert reader.done
    assert reader.feed(line({"content": "late"})) == []


def test_an_error_chunk_and_a_chunk_that_is_not_json_raise() -> None:
    with pytest.raises(StreamErrorEvent, match="overloaded"):
        ResponseReader().feed('data: {"error": {"message": "overloaded"}}')
    with pytest.raises(orjson.JSONDecodeError):
        ResponseReader().feed("data: {not json")


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_raw_bytes_in_any_pieces_read_like_lines(size: int, newline: str) -> None:
    lines = [
        ": keep-alive comment",
        line({"role": "assistant", "content": ""}),
        line({"content": "héllo ✓"}),  # multi-byte characters may be cut between pieces
        "event: message",
        line({"content": " world"}),
        line({}, "stop", usage=usage(2)),
        "data: [DONE]",
        line({"content": "after the end"}),
    ]
    body = "".join(text + newline + newline for text in lines).encode()
    reader = ResponseReader()
    deltas = [d for start in range(0, len(body), size) for d in reader.feed_bytes(body[start : start + size])]
    assert deltas + reader.close() == read(lines)
    assert [d for d in deltas if isinstance(d, TextDelta)] == [TextDelta("héllo ✓"), TextDelta(" world")]


def test_a_last_line_without_its_newline_is_read_at_the_close() -> None:
    reader = ResponseReader()
    assert reader.feed_bytes(line({"content": "a"}, "stop").encode()) == []
    assert reader.close() == [TextDelta("a"), Finish("stop")]
