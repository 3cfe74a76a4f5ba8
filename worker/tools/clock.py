"""The ``current_time`` tool."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentstream.worker.errors import ToolError
from agentstream.worker.tools.registry import tool

__all__ = ["current_time"]


@tool(timeout_s=5.0)
def current_time(timezone: str = "UTC") -> str:
    """The current date and time as ISO 8601, in an IANA timezone such as "Europe/Paris"."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown timezone {timezone!r}; use an IANA name such as 'Europe/Paris'",
            tool_name="current_time",
        ) from None
    return datetime.now(zone).isoformat()
