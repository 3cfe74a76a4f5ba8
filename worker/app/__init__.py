"""Bring your own agents and tools: the application object a worker serves.

::

    from agentstream.worker.app import App

    app = App()

    @app.tool(description="Add two integers.")
    def add_numbers(a: int, b: int) -> int:
        return a + b

    app.agent("adder", kind="tool", tools=["add_numbers"], system_prompt="You add numbers.")

``AGENTSTREAM_APP=module:attr`` (or ``agentstream worker --app module:attr``) makes a
worker serve it. The names below load on first use, so the tool registry can import the
tool context without pulling in the agents.
"""

from __future__ import annotations

from agentstream._lazy import lazy_exports

_EXPORTS = {
    "App": "agentstream.worker.app.core",
    "AgentSpec": "agentstream.worker.app.core",
    "BUILTIN_KINDS": "agentstream.worker.app.core",
    "AgentConfiguration": "agentstream.worker.app.config",
    "ToolContext": "agentstream.worker.app.context",
    "load_app": "agentstream.worker.app.loader",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
