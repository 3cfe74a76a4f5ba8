"""What every job of one worker process shares (:class:`WorkerDeps`, built once at
startup), and how a task's agent is made from its request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agentstream.streams import Reader, TaskStore
from agentstream.streams.connection import RedisClient
from agentstream.worker.agents import build_agent
from agentstream.worker.config import WorkerConfig
from agentstream.worker.llm import OpenAIClient
from agentstream.worker.memory import RedisMemory
from agentstream.worker.payload import TaskRequest
from agentstream.worker.tools import ToolRegistry

__all__ = ["AgentFactory", "TaskAgent", "WorkerDeps", "build_task_agent"]


class TaskAgent(Protocol):
    """What the runner needs of an agent (``worker.agents``' agents all qualify)."""

    async def initialize(self) -> None: ...

    def stream_task(self, task: dict[str, Any], context: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Protocol events; ``timestamp`` in integer microseconds (or ISO 8601, or absent:
        stamped when appended)."""
        ...


#: builds the agent of one task; tests substitute their own
AgentFactory = Callable[[TaskRequest, "WorkerDeps"], TaskAgent]


def build_task_agent(request: TaskRequest, deps: WorkerDeps) -> TaskAgent:
    """The agent ``request`` asks for, sharing the worker's model client and tools; with a
    ``session_id``, its conversation memory lives in Redis (one per agent kind and session)."""
    agent_id = f"{request.agent}-agent"
    memory = None
    if request.session_id:
        memory = RedisMemory(deps.redis, deps.config.streams.keys, agent_id)
    return build_agent(request, llm_client=deps.llm, registry=deps.registry, memory=memory, agent_id=agent_id)


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    """What every job of one worker process shares, built once in ``on_startup``."""

    config: WorkerConfig
    redis: RedisClient
    store: TaskStore
    reader: Reader
    llm: OpenAIClient
    registry: ToolRegistry
    #: ``host:pid:random``, recorded as the lease owner of the tasks this worker runs
    worker_id: str
    agent_factory: AgentFactory = build_task_agent

    async def aclose(self) -> None:
        """Close the model client and the Redis connections."""
        try:
            await self.llm.aclose()
        finally:
            await self.redis.aclose()
