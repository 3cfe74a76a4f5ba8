"""The light Python SDK: submit tasks and follow their event streams over HTTP.

Depends on httpx and httpx-sse alone and imports nothing of the server (no Redis, arq,
FastAPI or OpenAI), so a service that only consumes agent streams installs and imports
little. pydantic is loaded only when typed events or messages are asked for. One concept
per module:

- :mod:`~agentstream.sdk.client`: :class:`AgentStreamClient`, the requests and streams
- :mod:`~agentstream.sdk.agent`: :class:`RemoteAgent`, an API's agent with the in-process
  agents' ``execute_task_streaming`` and ``process_message_streaming``
- :mod:`~agentstream.sdk.endpoints`: one JSON request with its retries, the URL paths
- :mod:`~agentstream.sdk.errors`: the exceptions, and how an HTTP answer becomes one
- :mod:`~agentstream.sdk.backoff`: exponential backoff with jitter
- :mod:`~agentstream.sdk.sse`: SSE frames (httpx-sse) to event dicts
- :mod:`~agentstream.sdk.resume`: the cursor to resume from and the duplicate filter
- :mod:`~agentstream.sdk.stream`: following one stream across reconnects
- :mod:`~agentstream.sdk.filters`: modes, types and scope as query parameters
- :mod:`~agentstream.sdk.messages`: AWorld's typed messages that ``streaming_run`` yields
- :mod:`~agentstream.sdk.translate`: events to those messages
"""

from agentstream.sdk.agent import RemoteAgent
from agentstream.sdk.backoff import Backoff
from agentstream.sdk.client import DEFAULT_SSE_TIMEOUT, DEFAULT_TIMEOUT, AgentStreamClient
from agentstream.sdk.errors import AgentStreamConnectionError, AgentStreamError, TaskFailed, TaskWaiting
from agentstream.sdk.messages import (
    ActionModel,
    ActionResult,
    AgentMessage,
    Chunk,
    ChunkMessage,
    Constants,
    GroupMessage,
    HumanMessage,
    Message,
    Observation,
    OutputMessage,
    PendingApproval,
    PendingQuestion,
    TaskMessage,
    TaskResponse,
    ToolMessage,
    TopicType,
)
from agentstream.sdk.sse import SSEFrame

__all__ = [
    "DEFAULT_SSE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "ActionModel",
    "ActionResult",
    "AgentMessage",
    "AgentStreamClient",
    "AgentStreamConnectionError",
    "AgentStreamError",
    "Backoff",
    "Chunk",
    "ChunkMessage",
    "Constants",
    "GroupMessage",
    "HumanMessage",
    "Message",
    "Observation",
    "OutputMessage",
    "PendingApproval",
    "PendingQuestion",
    "RemoteAgent",
    "SSEFrame",
    "TaskFailed",
    "TaskMessage",
    "TaskResponse",
    "TaskWaiting",
    "ToolMessage",
    "TopicType",
]
