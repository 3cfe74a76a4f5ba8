"""How fast work arrives, to decide whether a short wait would gather a batch (pure).

The reader hub lingers after a read, and the writers' flusher before a round trip, only
while items come fast enough that the wait gathers several of them: a trickle (one task's
tokens, tens of ms apart) is never held back, since there a wait only adds latency.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["STALE_LINGERS", "Pace"]

#: how many lingers without a round before the measured rate no longer counts
STALE_LINGERS = 10


@dataclass(slots=True)
class Pace:
    """A moving rate of items per second, fed with the items of each round and its time."""

    #: the wait being considered; 0 never waits
    linger_s: float
    #: wait only while at least this many items, on average, arrive in one linger
    batch: float
    rate: float = 0.0
    at: float = 0.0

    def observe(self, items: int, now: float) -> None:
        """Count ``items`` handled in the round that ends at ``now`` (loop time, s)."""
        elapsed, self.at = now - self.at, now
        if not self.linger_s:
            return
        # A round right after another must not read as an infinite rate.
        instant = items / max(elapsed, self.linger_s / 10)
        self.rate = instant if self.rate == 0.0 else 0.75 * self.rate + 0.25 * instant

    def busy(self, now: float) -> bool:
        """Whether a linger starting at ``now`` would gather :attr:`batch` items on average.

        A rate last seen more than :data:`STALE_LINGERS` lingers ago is a burst that ended:
        the next item after a pause is never held back."""
        if not self.linger_s or now - self.at > STALE_LINGERS * self.linger_s:
            return False
        return self.rate * self.linger_s >= self.batch
