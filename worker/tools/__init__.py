"""Tools the agents can call, their registry, and the built-in tools.

One concept per module:

- :mod:`~agentstream.worker.tools.registry`: :class:`Tool` (a function plus the JSON schema
  the model sees), the ``@tool`` decorator and :class:`ToolRegistry`, whose ``call``
  validates, times out and never raises for a tool's failure (a ``tool_error`` the model
  sees, not a crashed task);
- :mod:`~agentstream.worker.tools.settings`: :class:`ToolSettings`, from the environment
  mapping the worker is given;
- the built-ins: ``calculator`` (:mod:`~agentstream.worker.tools.arithmetic`, safe
  arithmetic on the ``ast``), ``current_time`` (:mod:`~agentstream.worker.tools.clock`) and
  ``http_get`` (:mod:`~agentstream.worker.tools.http_get`, off unless
  ``AGENTSTREAM_HTTP_GET_ALLOW`` names the hosts it may reach), gathered by
  :func:`default_registry` (:mod:`~agentstream.worker.tools.builtin`).

The names below load on first use, so that the worker's configuration can import
:class:`ToolSettings` without pydantic or httpx. (The modules are not named after the
tools they hold: a submodule ``calculator`` would shadow the ``calculator`` tool here.)
"""

from __future__ import annotations

from agentstream._lazy import lazy_exports

_EXPORTS = {
    "Tool": "agentstream.worker.tools.registry",
    "ToolOutcome": "agentstream.worker.tools.registry",
    "ToolRegistry": "agentstream.worker.tools.registry",
    "tool": "agentstream.worker.tools.registry",
    "ToolSettings": "agentstream.worker.tools.settings",
    "calculator": "agentstream.worker.tools.arithmetic",
    "evaluate_arithmetic": "agentstream.worker.tools.arithmetic",
    "current_time": "agentstream.worker.tools.clock",
    "make_http_get": "agentstream.worker.tools.http_get",
    "default_registry": "agentstream.worker.tools.builtin",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
