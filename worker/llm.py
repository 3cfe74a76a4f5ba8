"""The model client's former home, kept so `agentstream.worker.llm` imports go on working.

Everything lives in :mod:`agentstream.worker.model` now; import from there.
"""

from agentstream.worker.model import (
    NO_API_KEY,
    Finish,
    ModelDelta,
    ModelSettings,
    OpenAIClient,
    ReadyToolCall,
    RefusalDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallAccumulator,
    ToolCallFragment,
    TurnAccumulator,
    Usage,
    parse_chunk,
)

__all__ = [
    "NO_API_KEY",
    "Finish",
    "ModelDelta",
    "ModelSettings",
    "OpenAIClient",
    "ReadyToolCall",
    "RefusalDelta",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallAccumulator",
    "ToolCallFragment",
    "TurnAccumulator",
    "Usage",
    "parse_chunk",
]
