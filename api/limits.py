"""Request limits: the per-tenant submit rate (a token bucket) and the request body size."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentstream.api.errors import ApiError, error_body

__all__ = ["BodyLimitMiddleware", "RateLimiter"]

_MAX_TENANTS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """In-process token buckets, one per tenant: ``per_minute`` tokens refilled evenly,
    a burst of up to ``per_minute``. ``per_minute <= 0`` disables the limit.

    Per process: with N API processes a tenant may submit N times the rate.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate_per_s = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, tenant: str) -> float:
        """Take one token: ``0.0`` when allowed, else the seconds until one is available."""
        if self.capacity <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(tenant)
        if bucket is None:
            if len(self._buckets) >= _MAX_TENANTS:
                self._forget_full(now)
            bucket = self._buckets[tenant] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate_per_s)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate_per_s

    def check(self, tenant: str) -> None:
        """Take one token or raise :class:`ApiError` 429 with ``Retry-After``."""
        wait_s = self.acquire(tenant)
        if wait_s > 0:
            raise ApiError(
                429,
                f"submit rate limit of {self.capacity:g}/min reached; retry in {wait_s:.1f}s",
                headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
            )

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: drop those to bound memory.
        full = [
            t
            for t, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate_per_s >= self.capacity
        ]
        for tenant in full:
            del self._buckets[tenant]


class BodyLimitMiddleware:
    """Refuse request bodies above ``max_bytes`` with 413 before anything parses them:
    at once from ``Content-Length``, else while the body arrives (chunked uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            response = JSONResponse(error_body("payload_too_large", self._message()), status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise ApiError(413, self._message())
            return message

        await self.app(scope, limited_receive, send)

    def _message(self) -> str:
        return f"request body larger than {self.max_bytes} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
