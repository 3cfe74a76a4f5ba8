"""The renderer (events in, text out) and the demo's replay summary: pure, no I/O."""

from __future__ import annotations

import io
from typing import Any

from agentstream.cli.render import Renderer, format_tool_call, format_tool_result, status_of
from agentstream.cli.summary import summarize_replay
from agentstream.cli.terminal import StatusLine


def _render(events: list[dict[str, Any]], *, color: bool = False) -> str:
    renderer = Renderer(color=color)
    return "".join(renderer.feed(event) for event in events)


def _stored(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as a reader returns them: with seq and a cursor id."""
    return [{**event, "seq": i, "id": f"{1000 + i}-0"} for i, event in enumerate(events, start=1)]


HYBRID_RUN: list[dict[str, Any]] = [
    {"type": "queued", "agent": "hybrid", "input": "What is 17 * 23?"},
    {"type": "started", "agent": "hybrid"},
    {"type": "iteration_start", "iteration": 1, "max_iterations": 8, "remaining": 7},
    {"type": "tool_call_delta", "index": 0, "arguments_delta": "{", "arguments": "{"},
    {"type": "tool_calls_ready", "tool_calls": []},
    {"type": "thought", "content": "", "iteration": 1},
    {"type": "action", "tool_name": "calculator", "tool_call_id": "c1", "parameters": {}, "iteration": 1},
    {
        "type": "tool_call",
        "tool_name": "calculator",
        "tool_call_id": "c1",
        "parameters": {"expression": "17 * 23"},
    },
    {"type": "tool_result", "tool_name": "calculator", "tool_call_id": "c1", "result": 391, "success": True},
    {"type": "observation", "content": "391", "iteration": 1, "has_error": False},
    {"type": "iteration_start", "iteration": 2, "max_iterations": 8, "remaining": 6},
    {"type": "token", "content": "The"},
    {"type": "token", "content": " answer"},
    {"type": "token", "content": " is"},
    {"type": "token", "content": " 391."},
    {"type": "thought", "content": "The answer is 391.", "iteration": 2},
    {"type": "result", "output": "The answer is 391.", "success": True, "execution_time": 0.5},
    {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.5},
]


# ---------------------------------------------------------------------------- rendering


def test_a_hybrid_run_renders_tool_lines_headers_and_the_streamed_answer() -> None:
    assert _render(HYBRID_RUN) == (
        "── iteration 1/8 ──\n"
        '→ calculator({"expression": "17 * 23"})\n'
        "← 391\n"
        "── iteration 2/8 ──\n"
        "The answer is 391.\n"
        "✓ succeeded in 0.50s\n"
    )


def test_tool_results_and_calls_are_compact_one_liners() -> None:
    assert (
        format_tool_call("calculator", {"expression": "2 ** 10"}) == '→ calculator({"expression": "2 ** 10"})'
    )
    assert format_tool_call("now", None) == "→ now({})"
    assert format_tool_result({"result": 391}) == "← 391"
    assert format_tool_result("plain text") == "← plain text"
    assert format_tool_result({"a": 1, "b": [1, 2]}) == '← {"a": 1, "b": [1, 2]}'


def test_thinking_is_dimmed_and_separated_from_the_answer() -> None:
    events: list[dict[str, Any]] = [
        {"type": "thinking_token", "content": "Let me think."},
        {"type": "token", "content": "Hi"},
        {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.1},
    ]
    assert (
        _render(events, color=True)
        == "\x1b[2mLet me think.\x1b[0m\nHi\n\x1b[32m✓ succeeded in 0.10s\x1b[0m\n"
    )
    assert _render(events) == "Let me think.\nHi\n✓ succeeded in 0.10s\n"


def test_output_mode_prints_the_result_when_no_token_was_streamed() -> None:
    events = [
        {"type": "result", "output": "The answer is 391.", "success": True, "execution_time": 0.2},
        {"type": "completed", "success": True, "status": "succeeded", "execution_time": 0.2},
    ]
    renderer = Renderer()
    text = "".join(renderer.feed(e) for e in events)
    assert text == "The answer is 391.\n✓ succeeded in 0.20s\n"
    assert (renderer.text, renderer.status) == ("The answer is 391.", "succeeded")


def test_retry_resets_the_partial_answer() -> None:
    renderer = Renderer()
    events: list[dict[str, Any]] = [
        {"type": "token", "content": "The ans"},
        {"type": "retry", "attempt": 2, "reason": "worker lost"},
        {"type": "token", "content": "The answer"},
    ]
    for event in events:
        renderer.feed(event)
    assert renderer.text == "The answer"


def test_failures_gaps_and_cancellation_are_visible() -> None:
    text = _render(
        [
            {"type": "gap", "first_cursor": "5-0"},
            {"type": "token", "content": "partial"},
            {
                "type": "tool_error",
                "tool_name": "calculator",
                "tool_call_id": "c",
                "error": "division by zero",
            },
            {
                "type": "error",
                "error": "model unavailable",
                "error_type": "ModelUnavailable",
                "retryable": False,
            },
            {"type": "cancelled", "reason": "user"},
            {"type": "completed", "success": False, "status": "cancelled", "execution_time": 1.0},
            {"type": "some_future_type", "x": 1},
        ]
    )
    assert text == (
        "[gap: events before 5-0 have expired]\n"
        "partial\n"
        "✗ calculator: division by zero\n"
        "error: model unavailable (ModelUnavailable)\n"
        "cancelled: user\n"
        "✗ cancelled in 1.00s\n"
    )


def test_status_line_is_silent_unless_the_stream_is_a_tty() -> None:
    stream = io.StringIO()
    status = StatusLine(stream)
    status.update("running")
    status.tick(True)
    status.clear()
    assert not status.enabled and stream.getvalue() == ""


# ---------------------------------------------------------------------- replay summary


def test_replay_summary_of_a_faithful_replay() -> None:
    stored = _stored(HYBRID_RUN)
    live = [e for e in stored if e["type"] not in {"result"}]  # mode core leaves out output
    summary = summarize_replay(live, stored)
    assert summary.ok
    assert summary.describe() == (
        "18 events, seqs 1..18, no gaps, same cursors as the live consumer, same text: 'The answer is 391.'"
    )


def test_replay_summary_catches_a_gap_and_different_text() -> None:
    stored = _stored(HYBRID_RUN)
    holed = stored[:5] + stored[6:]
    assert not summarize_replay(stored, holed).dense
    other = [*stored[:-7], {**stored[-7], "content": " answered"}, *stored[-6:]]
    summary = summarize_replay(stored, other)
    assert not summary.same_text and not summary.ok


def test_the_status_line_follows_what_the_task_does() -> None:
    assert status_of({"type": "queued"}) == "queued, waiting for a worker"
    assert status_of({"type": "tool_call", "tool_name": "calculator"}) == "running calculator"
    assert status_of({"type": "token", "content": "x"}) is None


def test_a_result_that_is_not_text_is_shown_as_json() -> None:
    renderer = Renderer()
    assert renderer.feed({"type": "result", "output": {"answer": 391}}) == '{"answer": 391}\n'
    assert renderer.feed({"type": "completed", "success": False}) == "✗ failed\n"
    assert renderer.status == "failed"
