"""agentstream: durable, resumable streams of LLM agent events on Redis Streams.

The names here are the SDK's and the protocol's; the SDK's load httpx alone::

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
from typing import TYPE_CHECKING, Any

from agentstream.protocol import StreamingMode

if TYPE_CHECKING:
    from agentstream.events import Event, UnknownEvent, dump_event, parse_event
    from agentstream.sdk import (
        AgentMessage,
        AgentStreamClient,
        AgentStreamConnectionError,
        AgentStreamError,
        ChunkMessage,
        HumanMessage,
        Message,
        PendingApproval,
        PendingQuestion,
        TaskMessage,
        TaskResponse,
        ToolMessage,
        TopicType,
    )
    from agentstream.worker.app import AgentConfiguration, App, ToolContext

_SDK = "agentstream.sdk"
_APP = "agentstream.worker.app"

#: public names loaded on first use: name -> the module that defines it. Even the SDK's
#: are lazy: httpx's own ``__init__`` loads its CLI (click, rich, pygments where they are
#: installed), which made ``agentstream --help`` cost 1.2 s before it printed a line.
#: Server-side names (``App``) stay here too, never as imports above, so that
#: ``import agentstream`` loads none of the server's dependencies.
_LAZY: dict[str, str] = {
    "AgentMessage": _SDK,
    "AgentStreamClient": _SDK,
    "AgentStreamConnectionError": _SDK,
    "AgentStreamError": _SDK,
    "ChunkMessage": _SDK,
    "HumanMessage": _SDK,
    "Message": _SDK,
    "PendingApproval": _SDK,
    "PendingQuestion": _SDK,
    "TaskMessage": _SDK,
    "TaskResponse": _SDK,
    "ToolMessage": _SDK,
    "TopicType": _SDK,
    "Event": "agentstream.events",
    "UnknownEvent": "agentstream.events",
    "dump_event": "agentstream.events",
    "parse_event": "agentstream.events",
    "App": _APP,
    "AgentConfiguration": _APP,
    "ToolContext": _APP,
}

__all__ = [
    "AgentConfiguration",
    "AgentMessage",
    "AgentStreamClient",
    "AgentStreamConnectionError",
    "AgentStreamError",
    "App",
    "ChunkMessage",
    "Event",
    "HumanMessage",
    "Message",
    "PendingApproval",
    "PendingQuestion",
    "StreamingMode",
    "TaskMessage",
    "TaskResponse",
    "ToolContext",
    "ToolMessage",
    "TopicType",
    "UnknownEvent",
    "__version__",
    "dump_event",
    "parse_event",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentstream")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "__version__"})
