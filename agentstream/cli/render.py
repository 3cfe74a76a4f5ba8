"""The terminal renderer: events in, text out, no I/O (a pure function of the events).

Tokens stream as plain text, thinking dimmed, tool calls and results as ``→``/``←`` lines,
iterations as headers, the end as ``✓ succeeded in 0.52s``. Colours are ANSI escapes,
only when asked for (the caller decides from the terminal and ``NO_COLOR``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentstream.protocol import is_failure_twin

__all__ = ["Renderer", "format_tool_call", "format_tool_result", "status_of"]

DIM, RED, GREEN, CYAN, RESET = "\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[36m", "\x1b[0m"

Event = Mapping[str, Any]


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def format_tool_call(tool_name: str, parameters: Any) -> str:
    """``→ calculator({"expression": "17 * 23"})``."""
    return f"→ {tool_name}({_compact(parameters if parameters is not None else {})})"


def format_tool_result(result: Any) -> str:
    """``← 391``: a bare value as is, ``{"result": x}`` as ``x``, anything else as JSON."""
    if isinstance(result, dict) and set(result) == {"result"}:
        result = result["result"]
    return f"← {result if isinstance(result, str) else _compact(result)}"


def _iteration(event: Event) -> str:
    total = event.get("max_iterations")
    return f"── iteration {event.get('iteration')}" + (f"/{total}" if total else "") + " ──"


#: events shown as a line of their own: ``type -> (text of the line, style)``
_LINES: dict[str, Callable[[Event], tuple[str, str]]] = {
    "iteration_start": lambda e: (_iteration(e), DIM),
    "tool_call": lambda e: (format_tool_call(str(e.get("tool_name")), e.get("parameters")), CYAN),
    "tool_result": lambda e: (format_tool_result(e.get("result")), CYAN),
    "tool_error": lambda e: (f"✗ {e.get('tool_name')}: {e.get('error')}", RED),
    "error": lambda e: (f"error: {e.get('error')} ({e.get('error_type', 'Error')})", RED),
    "cancelled": lambda e: (f"cancelled: {e.get('reason', '')}", RED),
    "gap": lambda e: (f"[gap: events before {e.get('first_cursor')} have expired]", DIM),
    "usage": lambda e: (f"usage: {e.get('total_tokens')} tokens", DIM),
    "dawp_step_started": lambda e: (f"▸ workflow step {e.get('step_index')}: {e.get('step_id')}", DIM),
}


@dataclass
class Renderer:
    """Turn events into terminal text, one event at a time, without doing any I/O.

    ``result`` prints its output only when no token of it was streamed (e.g. ``--mode
    output``); ``retry`` drops the partial answer. Types it does not show (queued, status,
    deltas, thoughts, observations: they repeat what is shown) and unknown types add nothing.
    """

    color: bool = False
    #: the answer as streamed since the last ``retry`` (what a user saw as the reply)
    text: str = ""
    #: the ``status`` of ``completed`` once seen (``succeeded``/``failed``/``cancelled``)
    status: str | None = None
    #: whether the output so far ends at the start of a line (a status line may show)
    at_line_start: bool = True
    _thinking: bool = False
    _tokens_seen: bool = False

    def feed(self, event: Event) -> str:
        """The text this event adds to the output (often empty)."""
        kind = str(event.get("type"))
        if is_failure_twin(event):
            return ""  # the ``tool_error`` that follows prints the failure once
        if kind in _LINES:
            return self._line(*_LINES[kind](event))
        if kind == "token":
            return self._token(str(event.get("content", "")))
        if kind == "thinking_token":
            self._thinking = True
            return self._inline(str(event.get("content", "")), DIM)
        if kind == "retry":
            self.text, self._tokens_seen = "", False
            return self._line(f"↻ retry (attempt {event.get('attempt')}): {event.get('reason', '')}", DIM)
        if kind == "result":
            return self._result(event.get("output"))
        if kind == "completed":
            return self._completed(event)
        return ""

    def _paint(self, style: str, text: str) -> str:
        return f"{style}{text}{RESET}" if self.color and style and text else text

    def _line(self, text: str, style: str = "") -> str:
        """A whole line of its own, after ending whatever partial line is open."""
        prefix = "" if self.at_line_start else "\n"
        self.at_line_start = True
        self._thinking = False
        return f"{prefix}{self._paint(style, text)}\n"

    def _inline(self, text: str, style: str = "") -> str:
        if not text:
            return ""
        self.at_line_start = text.endswith("\n")
        return self._paint(style, text)

    def _token(self, content: str) -> str:
        prefix = ""
        if self._thinking:  # the answer starts on a line of its own, after the thinking
            self._thinking = False
            prefix = "" if self.at_line_start else "\n"
            self.at_line_start = True
        self._tokens_seen = True
        self.text += content
        return prefix + self._inline(content)

    def _result(self, output: Any) -> str:
        if self._tokens_seen or output is None or output == "":
            return ""
        rendered = output if isinstance(output, str) else _compact(output)
        self.text += rendered
        return self._line(rendered)

    def _completed(self, event: Event) -> str:
        status = str(event.get("status", "succeeded" if event.get("success") else "failed"))
        self.status = status
        elapsed = event.get("execution_time")
        timing = f" in {elapsed:.2f}s" if isinstance(elapsed, int | float) else ""
        mark, style = ("✓", GREEN) if status == "succeeded" else ("✗", RED)
        return self._line(f"{mark} {status}{timing}", style)


_STATUS: dict[str, str] = {
    "queued": "queued, waiting for a worker",
    "status": "running",
    "started": "running",
    "iteration_start": "thinking",
    "tool_result": "thinking",
    "tool_error": "thinking",
    "retry": "retrying",
}


def status_of(event: Event) -> str | None:
    """What the task is doing after ``event``, for the status line (``None``: unchanged)."""
    kind = str(event.get("type"))
    if kind in {"tool_call", "action"}:
        return f"running {event.get('tool_name')}"
    return _STATUS.get(kind)
