"""Agents, model client, tools and the arq worker.

The public names below are loaded on first use: the API imports only
:mod:`worker.payload` and :mod:`worker.enqueue`, and must not pull in the agents, the
OpenAI client or the tools by importing this package.
"""

from __future__ import annotations

from agentstream._lazy import lazy_exports

_EXPORTS = {
    "App": "agentstream.worker.app",
    "AgentConfiguration": "agentstream.worker.app",
    "ToolContext": "agentstream.worker.app",
    "BaseAgent": "agentstream.worker.agents",
    "LLMAgent": "agentstream.worker.agents",
    "ToolAgent": "agentstream.worker.agents",
    "HybridAgent": "agentstream.worker.agents",
    "build_agent": "agentstream.worker.agents",
    "ResumeState": "agentstream.worker.agents",
    "rebuild_resume_state": "agentstream.worker.agents",
    "WorkflowPlugin": "agentstream.worker.agents",
    "parse_workflow": "agentstream.worker.agents",
    "DawpStreamConsumer": "agentstream.worker.agents",
    "effective_loop_scope": "agentstream.worker.agents",
    "OpenAIClient": "agentstream.worker.llm",
    "ModelSettings": "agentstream.worker.llm",
    "ToolCallAccumulator": "agentstream.worker.llm",
    "Tool": "agentstream.worker.tools",
    "ToolRegistry": "agentstream.worker.tools",
    "ToolSettings": "agentstream.worker.tools",
    "default_registry": "agentstream.worker.tools",
    "tool": "agentstream.worker.tools",
    "InMemoryMemory": "agentstream.worker.memory",
    "RedisMemory": "agentstream.worker.memory",
    "ScriptedLLMServer": "agentstream.worker.scripted_llm",
    "WorkerConfig": "agentstream.worker.config",
    "ENV_VARS": "agentstream.worker.config",
    "create_worker": "agentstream.worker.settings",
    "JOB_NAME": "agentstream.worker.payload",
    "TaskRequest": "agentstream.worker.payload",
    "enqueue_task": "agentstream.worker.enqueue",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
