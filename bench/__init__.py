"""Benchmarks of agentstream side by side with raw Redis and peers (``python -m bench``)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any


def provenance(quick: bool) -> dict[str, Any]:
    """When and how a result was measured, stored in its JSON so the report can label it."""
    return {
        "quick": quick,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_end": os.getloadavg(),
    }
