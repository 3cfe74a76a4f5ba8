"""The HTTP routes, one module per resource: tasks, events, groups and health."""

from agentstream.api.routes import events, groups, health, tasks

__all__ = ["events", "groups", "health", "tasks"]
