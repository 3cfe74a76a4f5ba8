"""The metrics of one API process, in the Prometheus text format written by
``prometheus-client``: counters and gauges of requests and live streams, and two latency
histograms measured where the SSE writer hands frames to the socket.

- ``agentstream_sse_delivery_seconds`` (append -> delivery): from the moment Redis appended
  an event (the millisecond part of its cursor, the stream entry id) to the moment its
  frame is written to a client. Only events appended while that client was connected are
  counted: replayed history would measure its age, not the pipeline.
- ``agentstream_sse_first_event_seconds`` (submit -> first event delivered): from the
  task's ``queued`` entry (appended at submit) to the moment the first event after it is
  written to a client that read the task from its start and was connected before the
  worker's first event; one sample per such response.

Both compare the Redis host's clock with the API host's: keep them in sync (NTP).
Each API process keeps and serves its own figures (``/metrics``); with several processes
behind a balancer, scrape each one (Prometheus sums them with ``sum()``).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from agentstream.streams import ReaderHub

__all__ = ["CONTENT_TYPE", "DELIVERY_BUCKETS_S", "FIRST_EVENT_BUCKETS_S", "DeliveryWatch", "Metrics"]

#: the exposition format ``render`` writes
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: append -> delivery on one host is about a millisecond; a slow client or Redis, seconds
DELIVERY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: submit -> first event holds the queue wait and the agent's start: up to minutes
FIRST_EVENT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_QUEUED = b"\nevent: queued\n"


def _appended_ms(frame: bytes) -> int | None:
    """The millisecond part of a frame's ``id: <ms>-<n>`` line (``None``: no cursor)."""
    if not frame.startswith(b"id: "):
        return None
    end = frame.find(b"-", 4, 32)
    if end < 0:
        return None
    try:
        return int(frame[4:end])
    except ValueError:
        return None


class WeightedHistogram:
    """A histogram whose one observation may count for many: a broadcast writes one frame
    to N clients at one moment, and timing it is one bucket lookup, not N."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = [*buckets, math.inf]
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0

    def observe(self, value: float, weight: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += weight
        self.sum += value * weight

    def collect(self) -> Iterator[Metric]:
        running, buckets = 0, []
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), running))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self.sum)


@dataclass(slots=True)
class DeliveryWatch:
    """What one SSE response remembers to time its deliveries."""

    #: frames appended from then on (Unix ms) count as live
    since_ms: float = field(default_factory=lambda: time.time() * 1000)
    #: when the task's ``queued`` entry was appended, while its first event is awaited
    submitted_ms: int | None = None
    #: the first event after ``queued`` was seen (replayed or timed): no more sample
    first_seen: bool = False


class Metrics:
    """Counters and gauges of one API process, and its latency histograms.

    The counters are plain attributes (``+= 1`` on the hot path costs nothing more);
    ``render`` reads them at scrape time. Each instance has its own registry, so several
    apps in one process (tests, the CLI's demo) never mix their figures.
    """

    def __init__(self) -> None:
        self.tasks_submitted = 0
        self.events_delivered = 0
        self.sse_clients = 0
        self.group_streams = 0
        self.slow_client_disconnects = 0
        #: times a client left the broadcast to catch up by XRANGE (its socket was full)
        self.broadcast_leaves = 0
        self.rate_limited = 0
        self.registry = CollectorRegistry()
        self.delivery = WeightedHistogram(
            "agentstream_sse_delivery_seconds",
            "From Redis's append of an event to the write of its SSE frame (events appended "
            "while the client was connected).",
            DELIVERY_BUCKETS_S,
        )
        self.registry.register(self.delivery)
        self.first_event = Histogram(
            "agentstream_sse_first_event_seconds",
            "From a task's submit to the write of its first event after queued, to a client "
            "connected before it.",
            buckets=FIRST_EVENT_BUCKETS_S,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)

    def delivered(self, frames: Sequence[bytes], watch: DeliveryWatch) -> None:
        """``frames`` were just written to one SSE client."""
        self.events_delivered += len(frames)
        now_ms = time.time() * 1000
        for frame in frames:
            appended = _appended_ms(frame)
            if appended is None:
                continue
            if appended >= watch.since_ms - 1:  # the cursor is truncated to the millisecond
                self.delivery.observe(max(0.0, now_ms - appended) / 1000)
            if watch.first_seen:
                continue
            if watch.submitted_ms is None:
                if _QUEUED in frame[:96]:
                    watch.submitted_ms = appended
                else:
                    watch.first_seen = True  # joined after queued: no submit time to go by
            elif _QUEUED not in frame[:96]:
                watch.first_seen = True
                if appended >= watch.since_ms - 1:
                    self.first_event.observe(max(0.0, now_ms - watch.submitted_ms) / 1000)

    def broadcast(self, frames: Sequence[bytes], clients: int) -> None:
        """``frames`` were just written to each of ``clients`` SSE clients of the broadcast
        (live events only: a client joins it at the head of the stream)."""
        self.events_delivered += len(frames) * clients
        if not clients:
            return
        now_ms = time.time() * 1000
        for frame in frames:
            appended = _appended_ms(frame)
            if appended is not None:
                self.delivery.observe(max(0.0, now_ms - appended) / 1000, clients)

    def collect(self, hub: ReaderHub | None = None) -> Iterator[Metric]:
        """The counters and gauges as they are now (hub gauges when ``hub`` is given)."""
        counters = (
            ("agentstream_tasks_submitted", "Tasks created through the API.", self.tasks_submitted),
            ("agentstream_events_delivered", "Events sent to SSE clients.", self.events_delivered),
            ("agentstream_sse_slow_client_disconnects",
             "SSE clients cut off because they fell too far behind.", self.slow_client_disconnects),
            ("agentstream_sse_broadcast_leaves",
             "Times an SSE client left the broadcast to catch up by XRANGE (its socket was full).",
             self.broadcast_leaves),
            ("agentstream_rate_limited", "Submits refused with 429.", self.rate_limited),
        )  # fmt: skip
        for name, help_text, value in counters:
            yield CounterMetricFamily(name, help_text, value=value)
        gauges = [
            ("agentstream_sse_clients", "Live SSE responses.", self.sse_clients),
            ("agentstream_sse_group_streams", "Live consumer-group SSE responses.", self.group_streams),
        ]
        if hub is not None:
            gauges.append(("agentstream_hub_subscriptions", "Live tails subscribed to the reader hub.",
                           hub.subscriptions))  # fmt: skip
            gauges.append(("agentstream_hub_connections", "Blocking Redis connections of the hub.",
                           hub.connections))  # fmt: skip
        for name, help_text, value in gauges:
            yield GaugeMetricFamily(name, help_text, value=value)

    def render(self, hub: ReaderHub | None = None) -> str:
        """The exposition text of everything above, read at scrape time."""
        return generate_latest(_Scrape(self, hub)).decode()


class _Scrape:
    """One scrape: the registry's collectors and the counters of the moment."""

    def __init__(self, metrics: Metrics, hub: ReaderHub | None) -> None:
        self._metrics = metrics
        self._hub = hub

    def collect(self) -> Iterable[Metric]:
        yield from self._metrics.collect(self._hub)
        yield from self._metrics.registry.collect()
