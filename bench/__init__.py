"""Benchmarks of agentstream side by side with raw Redis and peers (``python -m bench``)."""

from __future__ import annotations

import os
import platform
import statistics
from datetime import UTC, datetime
from typing import Any


def machine() -> dict[str, Any]:
    """The interpreter and machine a result was measured on."""
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


def provenance(quick: bool) -> dict[str, Any]:
    """When and how a result was measured, stored in its JSON so the report can label it."""
    return {
        "quick": quick,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_end": os.getloadavg(),
    }


def spread(values: list[float]) -> dict[str, float]:
    """Median, min, max and count of repeated measurements (each bench's rounds)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
