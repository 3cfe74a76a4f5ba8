"""A planned reply as OpenAI's wire format: deltas, chunks, usage, SSE frames (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentstream.worker.scripted.directives import Directives
from agentstream.worker.scripted.planner import Reply, ScriptedToolCall, text_of

__all__ = ["Envelope", "Script", "build_script", "sse", "usage_of"]


@dataclass(frozen=True, slots=True)
class Script:
    """The token chunks' deltas of one response, in stream order (role chunk excluded),
    and its finish reason (None: the stream sends none)."""

    deltas: list[dict[str, Any]]
    finish_reason: str | None
    reasoning_tokens: int


def build_script(reply: Reply, directives: Directives, max_tokens: int | None = None) -> Script:
    """Frame ``reply`` as deltas, cut by ``[length]``/``[content-filter]`` (at half) or by
    the request's ``max_tokens`` (one delta counts as one token)."""
    deltas: list[dict[str, Any]] = [{"reasoning_content": token} for token in reply.reasoning]
    deltas += [{"content": token} for token in reply.content]
    deltas += [{"refusal": token} for token in reply.refusal]
    deltas += [{"tool_calls": [delta]} for delta in _tool_call_deltas(reply.tool_calls, directives)]
    finish: str | None = reply.finish_reason
    half = max(1, len(deltas) // 2)
    if directives.length or directives.content_filter:
        deltas, finish = deltas[:half], "length" if directives.length else "content_filter"
    elif max_tokens is not None and len(deltas) > max_tokens:
        deltas, finish = deltas[:max_tokens], "length"
    if directives.no_finish:
        finish = None
    reasoning = sum(1 for delta in deltas if "reasoning_content" in delta)
    return Script(deltas=deltas, finish_reason=finish, reasoning_tokens=reasoning)


def _tool_call_deltas(calls: Sequence[ScriptedToolCall], directives: Directives) -> Iterator[dict[str, Any]]:
    if directives.no_index:  # each call whole in one chunk, without `index` (Gemini's way)
        for call in calls:
            yield {k: v for k, v in _head(0, call, call.arguments).items() if k != "index"}
        return
    if directives.same_index:  # every call at index 0, one after the other, ids on heads only
        for call in calls:
            yield from _call_deltas(0, call, repeat_id=False)
        return
    # Interleaved, each call's id repeated on every fragment, as some proxies send them.
    per_call = [list(_call_deltas(index, call, repeat_id=True)) for index, call in enumerate(calls)]
    yield from _round_robin(per_call)


def _head(index: int, call: ScriptedToolCall, arguments: str) -> dict[str, Any]:
    head: dict[str, Any] = {"index": index, "type": "function"}
    if call.id is not None:
        head["id"] = call.id
    head["function"] = {"name": call.name, "arguments": arguments}
    return head


def _call_deltas(index: int, call: ScriptedToolCall, *, repeat_id: bool) -> Iterator[dict[str, Any]]:
    yield _head(index, call, "")
    again = {"id": call.id} if repeat_id and call.id is not None else {}
    for fragment in _fragments(call.arguments):
        yield {"index": index, **again, "function": {"arguments": fragment}}


def _fragments(text: str) -> list[str]:
    """Cut ``text`` into at least three pieces of at most eight characters, as models do."""
    size = max(1, min(8, len(text) // 3))
    return [text[start : start + size] for start in range(0, len(text), size)]


def _round_robin(lists: Sequence[Sequence[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Interleave parallel tool calls, the way a model streams them."""
    for position in range(max((len(items) for items in lists), default=0)):
        for items in lists:
            if position < len(items):
                yield items[position]


def _message(deltas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The non-streamed message that says what ``deltas`` say."""
    keys = ("content", "reasoning_content", "refusal")
    text = {key: "".join(delta.get(key, "") for delta in deltas) for key in keys}
    calls: list[dict[str, Any]] = []
    open_calls: dict[int, dict[str, Any]] = {}  # the call each index's fragments belong to
    for delta in deltas:
        for part in delta.get("tool_calls", ()):
            function = part["function"]
            if "type" in part:  # a call's first delta
                call = {"type": "function", **({"id": part["id"]} if "id" in part else {})}
                call["function"] = {"name": function.get("name", ""), "arguments": ""}
                calls.append(call)
                open_calls[part.get("index", 0)] = call
            open_calls[part.get("index", 0)]["function"]["arguments"] += function.get("arguments", "")
    message: dict[str, Any] = {"role": "assistant", "content": text["content"] or (None if calls else "")}
    if text["refusal"]:
        message["content"], message["refusal"] = None, text["refusal"]
    if text["reasoning_content"]:
        message["reasoning_content"] = text["reasoning_content"]
    if calls:
        message["tool_calls"] = calls
    return message


def usage_of(
    messages: Sequence[Mapping[str, Any]], completion_tokens: int, reasoning_tokens: int
) -> dict[str, Any]:
    """Usage as OpenAI reports it: one token per word of the prompt and per delta; the
    prompt's messages but the last count as cached (a prefix cache's view)."""
    words = [len(text_of(message.get("content")).split()) for message in messages]
    prompt_tokens = sum(words)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": prompt_tokens - (words[-1] if words else 0)},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


@dataclass(frozen=True, slots=True)
class Envelope:
    """The fields every chunk or completion of one response repeats."""

    id: str
    created: int
    model: str

    def chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, usage: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        chunk = self._head("chat.completion.chunk") | {"choices": [choice]}
        if usage is not None:
            chunk["usage"] = usage
        return chunk

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        return self._head("chat.completion.chunk") | {"choices": [], "usage": usage}

    def completion(self, script: Script, usage: dict[str, Any]) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": _message(script.deltas),
            "logprobs": None,
            "finish_reason": script.finish_reason or "stop",
        }
        return self._head("chat.completion") | {"choices": [choice], "usage": usage}

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def sse(payload: dict[str, Any] | str) -> bytes:
    """One SSE frame: ``data: <json>`` (or a bare string such as ``[DONE]``)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()
