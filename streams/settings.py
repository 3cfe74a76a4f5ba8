"""Settings of the streams layer, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.errors import UsageError
from streams.keys import Keys

__all__ = ["StreamsSettings"]


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise UsageError(f"{name}={value} must be >= {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise UsageError(f"{name}={value} must be > 0")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise UsageError(f"{name}={raw!r} is not a boolean (use true/false)")


@dataclass(frozen=True)
class StreamsSettings:
    """Everything the streams layer needs to know about its deployment.

    Every network await in ``streams`` uses one of these timeouts.
    """

    redis_url: str = "redis://127.0.0.1:6379/0"
    cluster: bool = False
    prefix: str = "agentstream"
    retention_s: int = 86_400
    #: TTL of an unfinished task, renewed by every attempt, so nothing lives forever
    stale_ttl_s: int = 7 * 86_400
    maxlen: int = 100_000
    feed_maxlen: int = 100_000
    #: socket timeouts for ordinary commands
    command_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    #: how long one blocking XREAD/XREADGROUP waits before it is re-issued
    block_ms: int = 5_000
    #: events per Lua append call at most
    max_batch: int = 256
    #: events a writer buffers before ``append`` waits for the flusher (backpressure)
    max_buffer: int = 10_000
    #: entries per XRANGE page in replay
    page_size: int = 1_000
    #: events a live reader queues before the hub drops it back to XRANGE catch-up
    reader_queue: int = 10_000
    #: streams one hub XREAD watches at most
    hub_shard_size: int = 512
    max_connections: int = 64
    keys: Keys = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", Keys(self.prefix))
        if self.retention_s < 1 or self.maxlen < 1:
            raise UsageError("retention_s and maxlen must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> StreamsSettings:
        """Read ``REDIS_URL``, ``AGENTSTREAM_PREFIX``, ``AGENTSTREAM_RETENTION_S``,
        ``AGENTSTREAM_MAXLEN``, ``AGENTSTREAM_FEED_MAXLEN``, ``AGENTSTREAM_REDIS_CLUSTER``,
        ``AGENTSTREAM_REDIS_TIMEOUT_S``
        and ``AGENTSTREAM_BLOCK_MS``; keyword overrides win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "redis_url": env.get("REDIS_URL") or cls.redis_url,
            "cluster": _bool(env, "AGENTSTREAM_REDIS_CLUSTER", False),
            "prefix": env.get("AGENTSTREAM_PREFIX") or cls.prefix,
            "retention_s": _int(env, "AGENTSTREAM_RETENTION_S", cls.retention_s, 1),
            "maxlen": _int(env, "AGENTSTREAM_MAXLEN", cls.maxlen, 1),
            "feed_maxlen": _int(env, "AGENTSTREAM_FEED_MAXLEN", cls.feed_maxlen, 1),
            "command_timeout_s": _float(env, "AGENTSTREAM_REDIS_TIMEOUT_S", cls.command_timeout_s),
            "block_ms": _int(env, "AGENTSTREAM_BLOCK_MS", cls.block_ms, 10),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
