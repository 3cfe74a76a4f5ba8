"""The agents: the in-process API of PROTOCOL section 4.

::

    agent = HybridAgent(agent_id="a1", name="My Agent", llm_client=OpenAIClient(), tools=["calculator"])
    await agent.initialize()
    async for event in agent.execute_task_streaming({"description": "..."}, {}):
        ...

:func:`build_agent` makes the agent a :class:`~worker.payload.TaskRequest` asks for;
:func:`rebuild_resume_state` lets a retried attempt continue where the last one stopped.
"""

from __future__ import annotations

from agentstream.streams.events import effective_loop_scope
from agentstream.worker.agents.base import BaseAgent
from agentstream.worker.agents.hybrid import HybridAgent
from agentstream.worker.agents.llm import LLMAgent
from agentstream.worker.agents.resume import ResumeState, rebuild_resume_state
from agentstream.worker.agents.tool import ToolAgent
from agentstream.worker.agents.workflow import DawpStreamConsumer, WorkflowPlugin, parse_workflow
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.llm import OpenAIClient
from agentstream.worker.memory import ConversationMemory
from agentstream.worker.payload import TaskRequest
from agentstream.worker.tools import ToolRegistry

__all__ = [
    "BaseAgent",
    "DawpStreamConsumer",
    "HybridAgent",
    "LLMAgent",
    "ResumeState",
    "ToolAgent",
    "WorkflowPlugin",
    "build_agent",
    "effective_loop_scope",
    "parse_workflow",
    "rebuild_resume_state",
]

_AGENTS: dict[str, type[BaseAgent]] = {"llm": LLMAgent, "tool": ToolAgent, "hybrid": HybridAgent}


def build_agent(
    request: TaskRequest,
    *,
    llm_client: OpenAIClient,
    registry: ToolRegistry,
    memory: ConversationMemory | None = None,
    agent_id: str | None = None,
) -> BaseAgent:
    """The agent ``request`` asks for: its kind, tools (all of ``registry`` when not
    given), model, iteration budget and workflow. Unknown tools raise
    ``ConfigurationError`` at ``initialize``.
    """
    if request.agent not in _AGENTS:
        raise ConfigurationError(f"unknown agent kind {request.agent!r}; expected llm, tool or hybrid")
    cls = _AGENTS[request.agent]
    tools = request.tools if request.tools is not None else registry.names()
    workflow = None
    if request.workflow:
        boundary = request.stream_boundary_events
        workflow = WorkflowPlugin(parse_workflow(request.workflow), stream_boundary_events=boundary)
    agent_id = agent_id or f"{request.agent}-agent"
    return cls(
        agent_id=agent_id,
        name=agent_id,
        llm_client=llm_client,
        tools=tools if request.agent != "llm" else [],
        registry=registry,
        max_iterations=request.max_iterations,
        model=request.model,
        memory=memory,
        workflow=workflow,
        system_prompt=request.instructions,
    )
