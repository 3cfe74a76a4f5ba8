"""agentstream: durable, resumable streams of LLM agent events on Redis Streams.

The names here are the SDK's and the protocol's, and importing them loads httpx alone::

    from agentstream import AgentStreamClient, StreamingMode

Heavier names are loaded on first use (PEP 562): the typed events (pydantic) and, as the
server side grows public names, those of its subpackages. The subpackages:

- :mod:`agentstream.sdk`: the client (re-exported here) and AWorld's typed messages
- :mod:`agentstream.events`: the typed event models (pydantic only)
- :mod:`agentstream.protocol`: categories, streaming modes, cursor order (no dependency)
- :mod:`agentstream.streams`: the core (codec, writer, readers, groups; Redis)
- :mod:`agentstream.worker`: agents, model client, tools and the arq worker
- :mod:`agentstream.api`: the HTTP service (FastAPI)
- :mod:`agentstream.cli`: the ``agentstream`` command, the one composition root
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from agentstream.protocol import StreamingMode
from agentstream.sdk import (
    AgentMessage,
    AgentStreamClient,
    AgentStreamConnectionError,
    AgentStreamError,
    ChunkMessage,
    Message,
    TaskMessage,
    TaskResponse,
    ToolMessage,
    TopicType,
)

if TYPE_CHECKING:
    from agentstream.events import Event, UnknownEvent, dump_event, parse_event

try:
    __version__ = version("agentstream")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

#: public names loaded on first use: name -> the module that defines it. Server-side
#: names go here too (e.g. ``"App": "agentstream.worker.app"``), never as imports above,
#: so that ``import agentstream`` keeps loading none of the server's dependencies.
_LAZY: dict[str, str] = {
    "Event": "agentstream.events",
    "UnknownEvent": "agentstream.events",
    "dump_event": "agentstream.events",
    "parse_event": "agentstream.events",
}

__all__ = [
    "AgentMessage",
    "AgentStreamClient",
    "AgentStreamConnectionError",
    "AgentStreamError",
    "ChunkMessage",
    "Event",
    "Message",
    "StreamingMode",
    "TaskMessage",
    "TaskResponse",
    "ToolMessage",
    "TopicType",
    "UnknownEvent",
    "__version__",
    "dump_event",
    "parse_event",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
