"""The light Python SDK: submit tasks and follow their event streams over HTTP.

Depends on httpx alone and imports nothing of the server (no Redis, arq, FastAPI or
OpenAI), so a service that only consumes agent streams installs and imports little.
"""

from agentstream.sdk.client import (
    DEFAULT_SSE_TIMEOUT,
    DEFAULT_TIMEOUT,
    AgentStreamClient,
    AgentStreamConnectionError,
    AgentStreamError,
    Backoff,
    SSEFrame,
    SSEParser,
)

__all__ = [
    "DEFAULT_SSE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "AgentStreamClient",
    "AgentStreamConnectionError",
    "AgentStreamError",
    "Backoff",
    "SSEFrame",
    "SSEParser",
]
