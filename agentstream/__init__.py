"""agentstream: durable, resumable streams of LLM agent events on Redis Streams.

The names here are the SDK's and the protocol's, and importing them loads httpx alone::

    from agentstream import AgentStreamClient, StreamingMode

The server side lives in subpackages, each imported only when asked for:

- :mod:`agentstream.streams`: the core (event model, codec, writer, readers, groups)
- :mod:`agentstream.worker`: agents, model client, tools and the arq worker
- :mod:`agentstream.api`: the HTTP service (FastAPI)
- :mod:`agentstream.cli`: the ``agentstream`` command, the one composition root
- :mod:`agentstream.sdk`: the client (re-exported here)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from agentstream.protocol import StreamingMode
from agentstream.sdk import (
    AgentStreamClient,
    AgentStreamConnectionError,
    AgentStreamError,
)

try:
    __version__ = version("agentstream")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AgentStreamClient",
    "AgentStreamConnectionError",
    "AgentStreamError",
    "StreamingMode",
    "__version__",
]
