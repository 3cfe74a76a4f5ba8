"""How long to wait before a retry: exponential backoff with jitter, and ``Retry-After``."""

from __future__ import annotations

import random
from dataclasses import dataclass

from agentstream.sdk.errors import Retryable

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: try ``n`` waits ``initial_s * multiplier**n``, capped
    at ``max_s``, then scaled by a random factor in ``[1 - jitter, 1]`` so that many clients
    dropped together do not come back together."""

    initial_s: float = 0.2
    max_s: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < self.initial_s or self.multiplier < 1:
            raise ValueError("Backoff needs 0 <= initial_s <= max_s and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("Backoff.jitter must be within [0, 1]")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        base = min(self.max_s, self.initial_s * self.multiplier ** min(attempt, 64))
        return base * (1 - self.jitter * random.random())

    def wait_s(self, attempt: int, failure: Retryable) -> float:
        """The delay before retry ``attempt`` after ``failure``: at least what the server
        asked for with ``Retry-After``, though never more than six times ``max_s``."""
        delay = self.delay(attempt)
        if failure.retry_after_s is not None:
            delay = max(delay, min(failure.retry_after_s, self.max_s * 6))
        return delay
