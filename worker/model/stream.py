"""One streamed response, line by line, into deltas (pure: no I/O).

:class:`ResponseReader` is fed the lines of an OpenAI-style SSE body and returns the
deltas to pass on. It holds back what deployed servers repeat and decides whether the
response was complete:

- ``usage``: some servers (vLLM with continuous usage stats, some proxies) put it on every
  chunk, each a running total. One call gets one :class:`Usage`, the last one received,
  given out by :meth:`ResponseReader.close`.
- completeness: a response is complete once it gave a ``finish_reason`` or ended with
  ``[DONE]`` (servers such as some llama.cpp and proxy builds never send a finish reason).
  A body that ends with neither was cut off: :class:`IncompleteStream`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from agentstream.worker.model.deltas import Finish, ModelDelta, Usage, parse_chunk

__all__ = ["IncompleteStream", "ResponseReader", "StreamErrorEvent"]


class StreamErrorEvent(Exception):
    """An ``error`` object inside a 200 stream."""


class IncompleteStream(Exception):
    """The body ended without a finish reason and without ``[DONE]``."""


@dataclass(slots=True)
class ResponseReader:
    """The state of one response being read: feed lines, then :meth:`close`."""

    chunks: int = 0
    finished: bool = False
    done: bool = False
    usage: Usage | None = None

    def feed(self, line: str) -> list[ModelDelta]:
        """The deltas of one SSE line (none for blank lines, comments and ``event:``).

        Raises ``orjson.JSONDecodeError`` for a chunk that is not JSON and
        :class:`StreamErrorEvent` for an ``error`` chunk.
        """
        if not line.startswith("data:") or self.done:
            return []
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return []
        chunk: Any = orjson.loads(data)
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error"):
            raise StreamErrorEvent(f"the model stream reported an error: {chunk['error']}")
        self.chunks += 1
        deltas = parse_chunk(chunk)
        if not deltas:
            return deltas
        kept: list[ModelDelta] = []
        for delta in deltas:
            if isinstance(delta, Usage):
                self.usage = _latest(self.usage, delta)
                continue
            if isinstance(delta, Finish):
                self.finished = True
            kept.append(delta)
        return kept

    def close(self) -> list[ModelDelta]:
        """The held-back usage, once the body has ended; :class:`IncompleteStream` if the
        response was cut off."""
        if not self.finished and not (self.done and self.chunks):
            raise IncompleteStream("the model stream ended without a finish reason or [DONE]")
        return [self.usage] if self.usage is not None else []


def _latest(previous: Usage | None, latest: Usage) -> Usage:
    """The latest running total, keeping details an earlier chunk gave and this one lacks."""
    if previous is None:
        return latest
    reasoning = latest.reasoning_tokens if latest.reasoning_tokens is not None else previous.reasoning_tokens
    cached = latest.cached_tokens if latest.cached_tokens is not None else previous.cached_tokens
    if reasoning == latest.reasoning_tokens and cached == latest.cached_tokens:
        return latest
    return Usage(latest.prompt_tokens, latest.completion_tokens, latest.total_tokens, reasoning, cached)
