"""The model client and the pure accumulators that turn its deltas into events.

Kept apart on purpose (I/O apart from accumulation):

- :mod:`.client`: `OpenAIClient.stream_chat`, the only I/O. It calls an OpenAI-compatible
  `/chat/completions` endpoint with `stream=True`, yields typed deltas and retries
  transient failures while nothing has been yielded yet.
- :mod:`.deltas` (`parse_chunk`: one chunk to deltas) and :mod:`.stream` (one response's
  lines to deltas, usage kept once, completeness): pure.
- :mod:`.accumulate` (`ToolCallAccumulator`) and :mod:`.turn` (`TurnAccumulator`): pure,
  they assemble deltas into event payloads, ready tool calls and the assistant message.
- :mod:`.settings`: `ModelSettings`, built from an environment mapping passed in.
"""

from agentstream.worker.model.accumulate import INCOMPLETE_STOPS, ReadyToolCall, ToolCallAccumulator
from agentstream.worker.model.client import OpenAIClient
from agentstream.worker.model.deltas import (
    Finish,
    ModelDelta,
    RefusalDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallFragment,
    Usage,
    parse_chunk,
)
from agentstream.worker.model.settings import NO_API_KEY, ModelSettings
from agentstream.worker.model.stream import ResponseReader
from agentstream.worker.model.turn import TurnAccumulator

__all__ = [
    "INCOMPLETE_STOPS",
    "NO_API_KEY",
    "Finish",
    "ModelDelta",
    "ModelSettings",
    "OpenAIClient",
    "ReadyToolCall",
    "RefusalDelta",
    "ResponseReader",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallAccumulator",
    "ToolCallFragment",
    "TurnAccumulator",
    "Usage",
    "parse_chunk",
]
