"""What an operator sees of the API and worker processes: log setup with the task in
scope (:mod:`agentstream.telemetry.logs`) and optional OpenTelemetry tracing
(:mod:`agentstream.telemetry.tracing`).

A leaf: it imports nothing of the project, so ``streams``, ``worker`` and ``api`` all may
import it. Metrics live with their process (``api.metrics``, ``worker.metrics``).
"""

from __future__ import annotations

from agentstream.telemetry.logs import LogSettings, bind_task, configure_logging, task_scope
from agentstream.telemetry.tracing import extract_context, inject_context, span, start_span, tracing_enabled

__all__ = [
    "LogSettings",
    "bind_task",
    "configure_logging",
    "extract_context",
    "inject_context",
    "span",
    "start_span",
    "task_scope",
    "tracing_enabled",
]
