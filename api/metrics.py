"""Process metrics in the Prometheus text format (hand-written: a few counters and gauges)."""

from __future__ import annotations

from dataclasses import dataclass

from agentstream.streams import ReaderHub

__all__ = ["Metrics"]


@dataclass(slots=True)
class Metrics:
    """Counters and gauges of one API process."""

    tasks_submitted: int = 0
    events_delivered: int = 0
    sse_clients: int = 0
    group_streams: int = 0
    slow_client_disconnects: int = 0
    rate_limited: int = 0

    def render(self, hub: ReaderHub | None = None) -> str:
        """The exposition text; hub gauges are read at scrape time."""
        rows: list[tuple[str, str, str, float]] = [
            ("agentstream_tasks_submitted_total", "counter", "Tasks created through the API.",
             self.tasks_submitted),
            ("agentstream_events_delivered_total", "counter", "Events sent to SSE clients.",
             self.events_delivered),
            ("agentstream_sse_clients", "gauge", "Live SSE responses.", self.sse_clients),
            ("agentstream_sse_group_streams", "gauge", "Live consumer-group SSE responses.",
             self.group_streams),
            ("agentstream_sse_slow_client_disconnects_total", "counter",
             "SSE clients cut off because they fell too far behind.", self.slow_client_disconnects),
            ("agentstream_rate_limited_total", "counter", "Submits refused with 429.", self.rate_limited),
        ]  # fmt: skip
        if hub is not None:
            rows.append(("agentstream_hub_subscriptions", "gauge", "Live tails subscribed to the reader hub.",
                         hub.subscriptions))  # fmt: skip
            rows.append(("agentstream_hub_connections", "gauge", "Blocking Redis connections of the hub.",
                         hub.connections))  # fmt: skip
        lines: list[str] = []
        for name, kind, help_text, value in rows:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
