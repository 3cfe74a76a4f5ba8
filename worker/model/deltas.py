"""What one streamed chunk says, as typed deltas (pure: no I/O).

:func:`parse_chunk` is the one mapping from an OpenAI ``chat.completion.chunk`` to deltas.
It takes the chunk as decoded JSON (the hot path: the client reads the SSE body itself
and parses it with orjson) or as the ``openai`` package's ``ChatCompletionChunk``; both
give the same deltas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from openai.types.chat import ChatCompletionChunk

__all__ = [
    "Finish",
    "ModelDelta",
    "RefusalDelta",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallFragment",
    "Usage",
    "parse_choice",
    "parse_chunk",
    "parse_usage",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the visible answer."""

    content: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """A piece of reasoning (`reasoning_content` / `reasoning` of reasoning models)."""

    content: str


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    """A piece of a refusal (`delta.refusal`): the model declines to answer."""

    content: str


@dataclass(frozen=True, slots=True)
class ToolCallFragment:
    """A piece of the tool call at `index`; the id and name arrive once, or late, or never.

    `index` is the server's, or the call's position in its chunk when the server sent
    none; calls that share an index are told apart by their ids (see
    :class:`~agentstream.worker.model.accumulate.ToolCallAccumulator`).
    """

    index: int
    tool_call_id: str | None
    tool_name: str | None
    arguments_delta: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one model call; the details are None when the server gave none."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None

    def fields(self) -> dict[str, int]:
        """The `usage` event's fields: the three counts, and the details that were given."""
        fields = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.reasoning_tokens is not None:
            fields["reasoning_tokens"] = self.reasoning_tokens
        if self.cached_tokens is not None:
            fields["cached_tokens"] = self.cached_tokens
        return fields


@dataclass(frozen=True, slots=True)
class Finish:
    """The model finished its turn (`stop`, `tool_calls`, `length`, `content_filter`, ...)."""

    reason: str


ModelDelta: TypeAlias = TextDelta | ThinkingDelta | RefusalDelta | ToolCallFragment | Usage | Finish


def parse_chunk(chunk: Mapping[str, Any] | ChatCompletionChunk) -> list[ModelDelta]:
    """Map one streamed chunk to deltas, in the order a reader expects them.

    Pass the decoded JSON on hot paths: building the SDK's pydantic models costs ~70 µs a
    chunk, most of a worker's CPU per token. A `ChatCompletionChunk` is accepted too
    (its extra fields, such as `reasoning_content`, included).
    """
    if isinstance(chunk, ChatCompletionChunk):
        chunk = chunk.model_dump(exclude_unset=True)
    choices = chunk.get("choices")
    deltas = parse_choice(choices[0]) if choices else []  # we never ask for n > 1
    if usage := chunk.get("usage"):
        deltas.append(parse_usage(usage))
    return deltas


def parse_choice(choice: Mapping[str, Any]) -> list[ModelDelta]:
    """The deltas of a chunk's choice (decoded JSON), usage aside."""
    deltas: list[ModelDelta] = []
    delta = choice.get("delta") or {}
    thinking = delta.get("reasoning_content") or delta.get("reasoning")
    if isinstance(thinking, str) and thinking:
        deltas.append(ThinkingDelta(thinking))
    if content := delta.get("content"):
        deltas.append(TextDelta(content))
    if refusal := delta.get("refusal"):
        deltas.append(RefusalDelta(refusal))
    if calls := delta.get("tool_calls"):
        deltas.extend(_fragments(calls))
    if choice.get("finish_reason"):
        deltas.append(Finish(choice["finish_reason"]))
    return deltas


def _fragments(calls: list[Mapping[str, Any]]) -> list[ModelDelta]:
    fragments: list[ModelDelta] = []
    for position, call in enumerate(calls):
        function = call.get("function") or {}
        index = call.get("index")
        fragments.append(
            ToolCallFragment(
                # Some compatible servers omit `index`; the position is the best stand-in.
                index=index if isinstance(index, int) else position,
                tool_call_id=call.get("id") or None,
                tool_name=function.get("name") or None,
                arguments_delta=function.get("arguments") or "",
            )
        )
    return fragments


def parse_usage(usage: Mapping[str, Any]) -> Usage:
    """A chunk's ``usage`` object (decoded JSON) as :class:`Usage`."""
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=int(usage.get("total_tokens") or prompt + completion),
        reasoning_tokens=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
        cached_tokens=_detail(usage, "prompt_tokens_details", "cached_tokens"),
    )


def _detail(usage: Mapping[str, Any], group: str, name: str) -> int | None:
    details = usage.get(group)
    value = details.get(name) if isinstance(details, Mapping) else None
    return value if isinstance(value, int) else None
