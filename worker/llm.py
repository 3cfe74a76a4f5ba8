"""The model client's former home, kept so `agentstream.worker.llm` imports go on working.

Everything lives in :mod:`agentstream.worker.model` now (deltas, the client, the
accumulators); import from there.
"""

from agentstream.worker.model import (
    ModelDelta,
    ModelSettings,
    OpenAIClient,
    ReadyToolCall,
    ToolCallAccumulator,
    TurnAccumulator,
)

__all__ = [
    "ModelDelta",
    "ModelSettings",
    "OpenAIClient",
    "ReadyToolCall",
    "ToolCallAccumulator",
    "TurnAccumulator",
]
