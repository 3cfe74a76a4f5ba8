"""One streamed response, line by line, into deltas (pure: no I/O).

:class:`ResponseReader` is fed an OpenAI-style SSE body, as raw bytes in whatever pieces
the network gave (:meth:`ResponseReader.feed_bytes`, the client's path: no text decoding
nor line objects on the way) or line by line (:meth:`ResponseReader.feed`), and returns the
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

from agentstream.worker.model.deltas import Finish, ModelDelta, parse_choice, parse_usage

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
    #: the last ``usage`` object received, and the last one that had details
    _usage: dict[str, Any] | None = None
    _detailed: dict[str, Any] | None = None
    #: the start of a line cut by the end of the last piece of the body
    _rest: bytes = b""

    def feed_bytes(self, data: bytes) -> list[ModelDelta]:
        """The deltas of the complete lines in ``data``, a piece of the raw body (lines end
        with LF or CRLF); a line it cuts off waits for the next piece, or :meth:`close`."""
        if self._rest:
            data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        deltas: list[ModelDelta] = []
        for line in lines:
            if line.startswith(b"data:") and not self.done:
                deltas += self._data(line[5:].strip())
        return deltas

    def feed(self, line: str) -> list[ModelDelta]:
        """The deltas of one SSE line (none for blank lines, comments and ``event:``).

        Raises ``orjson.JSONDecodeError`` for a chunk that is not JSON and
        :class:`StreamErrorEvent` for an ``error`` chunk.
        """
        if not line.startswith("data:") or self.done:
            return []
        return self._data(line[5:].strip())

    def _data(self, data: str | bytes) -> list[ModelDelta]:
        if data in _DONE:
            self.done = True
            return []
        chunk: Any = orjson.loads(data)
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error"):
            raise StreamErrorEvent(f"the model stream reported an error: {chunk['error']}")
        self.chunks += 1
        if usage := chunk.get("usage"):
            # Only kept here, cheaply (servers may send it with every token): the one
            # Usage is built at the end.
            self._usage = usage
            if "completion_tokens_details" in usage or "prompt_tokens_details" in usage:
                self._detailed = usage
        choices = chunk.get("choices")
        if not choices:
            return []
        deltas = parse_choice(choices[0])  # we never ask for n > 1
        if deltas and isinstance(deltas[-1], Finish):
            self.finished = True
        return deltas

    def close(self) -> list[ModelDelta]:
        """The usage, once the body has ended; :class:`IncompleteStream` if the response
        was cut off."""
        rest, self._rest = self._rest, b""
        deltas = self.feed_bytes(rest + b"\n") if rest.strip() else []
        if not self.finished and not (self.done and self.chunks):
            raise IncompleteStream("the model stream ended without a finish reason or [DONE]")
        if self._usage is None:
            return deltas
        usage = dict(self._usage)
        for group in _DETAIL_GROUPS:  # details an earlier chunk gave and the last lacks
            if not isinstance(usage.get(group), dict) and self._detailed is not None:
                usage[group] = self._detailed.get(group)
        return [*deltas, parse_usage(usage)]


_DONE = ("[DONE]", b"[DONE]")
_DETAIL_GROUPS = ("prompt_tokens_details", "completion_tokens_details")
