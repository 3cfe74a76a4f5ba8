"""The registry of built-in tools."""

from __future__ import annotations

from agentstream.worker.tools.arithmetic import calculator
from agentstream.worker.tools.clock import current_time
from agentstream.worker.tools.http_get import make_http_get
from agentstream.worker.tools.registry import ToolRegistry
from agentstream.worker.tools.settings import ToolSettings

__all__ = ["default_registry"]


def default_registry(settings: ToolSettings | None = None) -> ToolRegistry:
    """A registry with the built-ins; ``http_get`` only when ``settings`` enables it.

    Without ``settings`` the defaults apply (``http_get`` off): the environment is read
    only where the caller says so (``ToolSettings.from_env(os.environ)``).
    """
    settings = settings if settings is not None else ToolSettings()
    registry = ToolRegistry([calculator, current_time], default_timeout_s=settings.default_timeout_s)
    if settings.http_get_enabled:
        registry.register(make_http_get(settings))
    return registry
