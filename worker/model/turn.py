"""One model turn, collected from its deltas (pure, synchronous)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from agentstream.worker.errors import ModelStopped
from agentstream.worker.model.accumulate import INCOMPLETE_STOPS, ReadyToolCall, ToolCallAccumulator
from agentstream.worker.model.deltas import (
    Finish,
    ModelDelta,
    RefusalDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallFragment,
    Usage,
)

__all__ = ["TurnAccumulator", "assistant_message"]

_ZERO_USAGE = Usage(0, 0, 0)


class TurnAccumulator:
    """Collects one model turn: text, thinking, refusal, tool calls, usage, finish reason.

    `feed` returns the payload of the event to write for each delta (or None), so the
    async layer that drives the model only has to forward them. Once the turn is over,
    `stop_reason` says why it ended and `raise_if_incomplete` refuses a turn that must not
    be taken as an answer.
    """

    def __init__(self, *, id_salt: str = "") -> None:
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._refusal: list[str] = []
        self.tool_calls = ToolCallAccumulator(id_salt=id_salt)
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    def add_text(self, content: str) -> str:
        """Record a text delta's content (what :meth:`feed` does for a `TextDelta`)."""
        self._text.append(content)
        return content

    def feed(self, delta: ModelDelta) -> dict[str, Any] | None:
        """Record a delta; return `{"type": ..., fields...}` for its event, if it has one."""
        match delta:
            case TextDelta(content=content):
                return {"type": "token", "content": self.add_text(content)}
            case ThinkingDelta(content=content):
                self._thinking.append(content)
                return {"type": "thinking_token", "content": content}
            case RefusalDelta(content=content):
                self._refusal.append(content)
                return {"type": "refusal", "content": content}
            case ToolCallFragment():
                return {"type": "tool_call_delta", **self.tool_calls.feed(delta)}
            case Usage():
                self.usage = delta
                return {"type": "usage", **delta.fields()}
            case Finish(reason=reason):
                self.finish_reason = reason
                return None

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def thinking(self) -> str:
        return "".join(self._thinking)

    @property
    def refusal(self) -> str:
        """The refusal text (`delta.refusal`), empty when the model did not refuse."""
        return "".join(self._refusal)

    @property
    def stop_reason(self) -> str:
        """Why the turn ended: `refusal` when the model refused, else the finish reason
        (`stop`, `tool_calls`, `length`, `content_filter`, or a server's own); a turn
        accepted without one (ended by `[DONE]`) is `tool_calls` or `stop`."""
        if self._refusal:
            return "refusal"
        if self.finish_reason is None or self.finish_reason == "function_call":
            return "tool_calls" if len(self.tool_calls) else "stop"
        return self.finish_reason

    def raise_if_incomplete(self) -> None:
        """Raise `ModelStopped` if the turn was cut off, filtered or refused."""
        reason = self.stop_reason
        if reason not in INCOMPLETE_STOPS:
            return
        if reason == "refusal":
            message = f"the model refused: {self.refusal}"
        elif reason == "content_filter":
            message = "the model server's content filter stopped the answer (finish_reason 'content_filter')"
        elif len(self.tool_calls):
            names = ", ".join(call.tool_name or "?" for call in self.tool_calls.finish())
            message = (
                "the model hit its output token limit (finish_reason 'length') inside the arguments "
                f"of its tool call(s) to {names}; they were not run: raise the model's token limit"
            )
        else:
            message = "the model hit its output token limit (finish_reason 'length'): the answer is cut off"
        output = self.refusal if reason == "refusal" else self.text
        raise ModelStopped(message, stop_reason=reason, output=output, refusal=self.refusal or None)

    def usage_fields(self) -> dict[str, int]:
        """The `usage` event fields (zeros when the server sent no usage)."""
        return (self.usage or _ZERO_USAGE).fields()

    def ready_tool_calls(self) -> list[ReadyToolCall]:
        return self.tool_calls.finish()

    def assistant_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation for this turn."""
        calls = self.tool_calls.finish()
        if not calls:
            return {"role": "assistant", "content": self.text}
        return assistant_message(self.text, calls)


def assistant_message(text: str, calls: Sequence[ReadyToolCall]) -> dict[str, Any]:
    """The assistant message of a turn that asked for ``calls`` (as the model sent it)."""
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {
                "id": call.tool_call_id,
                "type": "function",
                "function": {"name": call.tool_name, "arguments": _arguments(call)},
            }
            for call in calls
        ],
    }


def _arguments(call: ReadyToolCall) -> str:
    # Unusable calls send `{}`: some servers reject a history holding invalid JSON.
    if call.error is not None or call.parameters is None:
        return "{}"
    if call.arguments.strip():
        return call.arguments
    return orjson.dumps(call.parameters).decode()
