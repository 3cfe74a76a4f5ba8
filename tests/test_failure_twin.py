"""A failed tool call is stored as ``tool_result`` (``success: false``) and ``tool_error``;
every reader that shows one outcome per call shows it once: the terminal renderer, the
SDK's AWorld messages and the AG-UI dialect (the viewer does the same in transcript.js,
the Responses dialect in its translator)."""

from __future__ import annotations

from typing import Any

from ag_ui.core import ToolCallResultEvent

from agentstream.api.dialects.agui import AgUiTranslator
from agentstream.cli.render import Renderer
from agentstream.protocol import StreamingMode, is_failure_twin
from agentstream.sdk import TopicType
from agentstream.sdk.translate import MessageTranslator

CALL = {"tool_name": "lookup", "tool_call_id": "call_1", "task_id": "t", "attempt": 1}
EVENTS: list[dict[str, Any]] = [
    {"type": "tool_call", "seq": 5, "id": "1-5", "parameters": {"q": 1}, **CALL},
    {"type": "tool_result", "seq": 6, "id": "1-6", "success": False, "result": None, "error": "boom", **CALL},
    {"type": "tool_error", "seq": 7, "id": "1-7", "error": "boom", **CALL},
]


def test_only_the_failed_result_is_a_twin() -> None:
    assert [is_failure_twin(e) for e in EVENTS] == [False, True, False]
    assert not is_failure_twin({"type": "tool_result", "success": True})


def test_the_terminal_prints_the_failure_once() -> None:
    renderer = Renderer()
    text = "".join(renderer.feed(event) for event in EVENTS)
    assert text.count("boom") == 1


def test_the_sdk_gives_one_tool_result_message() -> None:
    translator = MessageTranslator(StreamingMode.ALL, "t")
    messages = [m for m in (translator.feed(e) for e in EVENTS) if m is not None]
    results = [m for m in messages if m.topic == TopicType.TOOL_RESULT]
    assert len(results) == 1
    assert results[0].payload.action_result[0].success is False


def test_ag_ui_sends_one_tool_call_result() -> None:
    translator = AgUiTranslator("thread", "run")
    frames = [frame for event in EVENTS for frame in translator.feed(event)]
    assert sum(isinstance(frame, ToolCallResultEvent) for frame in frames) == 1
