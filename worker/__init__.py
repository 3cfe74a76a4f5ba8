"""Agents, model client, tools and the arq worker.

The public names below are loaded on first use: the API imports only
:mod:`worker.payload` and :mod:`worker.enqueue`, and must not pull in the agents, the
OpenAI client or the tools by importing this package.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BaseAgent": "worker.agents",
    "LLMAgent": "worker.agents",
    "ToolAgent": "worker.agents",
    "HybridAgent": "worker.agents",
    "build_agent": "worker.agents",
    "ResumeState": "worker.agents",
    "rebuild_resume_state": "worker.agents",
    "WorkflowPlugin": "worker.agents",
    "parse_workflow": "worker.agents",
    "DawpStreamConsumer": "worker.agents",
    "effective_loop_scope": "worker.agents",
    "OpenAIClient": "worker.llm",
    "ModelSettings": "worker.llm",
    "ToolCallAccumulator": "worker.llm",
    "Tool": "worker.tools",
    "ToolRegistry": "worker.tools",
    "ToolSettings": "worker.tools",
    "default_registry": "worker.tools",
    "tool": "worker.tools",
    "InMemoryMemory": "worker.memory",
    "RedisMemory": "worker.memory",
    "ScriptedLLMServer": "worker.scripted_llm",
    "WorkerConfig": "worker.settings",
    "create_worker": "worker.settings",
    "JOB_NAME": "worker.payload",
    "TaskRequest": "worker.payload",
    "enqueue_task": "worker.enqueue",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
