"""Slots of live event streams: a cap for the process, one per tenant, one for group streams.

A route takes a slot *before* its first await and the response gives it back when it
ends, so the check and the count are one step on the event loop: a burst of requests can
never overshoot a cap (they could while the count was kept by the responses alone, which
start only after the route's awaits: 33 group streams of 32 were seen). The per-tenant cap
keeps one tenant from taking every slot of the process and starving the others.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from agentstream.api.errors import ApiError, unavailable
from agentstream.api.metrics import Metrics

__all__ = ["Slot", "StreamSlots"]


@dataclass(eq=False, slots=True)
class Slot:
    """One live stream's place; :meth:`release` is idempotent."""

    pool: StreamSlots
    tenant: str
    group: bool
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.pool._give_back(self)


@dataclass(slots=True)
class StreamSlots:
    """Counts live SSE responses (the metrics' gauges are these counts)."""

    metrics: Metrics
    max_total: int
    max_per_tenant: int
    max_group: int
    _by_tenant: Counter[str] = field(default_factory=Counter)

    def take(self, tenant: str, *, group: bool = False) -> Slot:
        """A slot for a new stream of ``tenant``, or :class:`ApiError`: 503 when the
        process is full, 429 when this tenant holds its share (``Retry-After`` on both)."""
        metrics = self.metrics
        if metrics.sse_clients >= self.max_total:
            raise unavailable("too many live event streams; retry shortly")
        if self._by_tenant[tenant] >= self.max_per_tenant:
            raise ApiError(
                429,
                f"this tenant already has {self.max_per_tenant} live event streams (the limit); "
                "close some or retry shortly",
                headers={"Retry-After": "1"},
            )
        if group and metrics.group_streams >= self.max_group:
            raise unavailable("too many live consumer-group streams; retry shortly")
        metrics.sse_clients += 1
        metrics.group_streams += group
        self._by_tenant[tenant] += 1
        return Slot(self, tenant, group)

    def held_by(self, tenant: str) -> int:
        """Live streams of ``tenant``."""
        return self._by_tenant[tenant]

    def _give_back(self, slot: Slot) -> None:
        self.metrics.sse_clients -= 1
        self.metrics.group_streams -= slot.group
        self._by_tenant[slot.tenant] -= 1
        if self._by_tenant[slot.tenant] <= 0:
            del self._by_tenant[slot.tenant]
