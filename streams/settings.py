"""Settings of the streams layer, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import UsageError
from .keys import Keys

__all__ = ["StreamsSettings", "env_flag", "env_integer", "env_number"]


def env_number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    above: float | None = None,
    error: type[Exception] = UsageError,
) -> float:
    """``env[name]`` as a number (unset or empty: ``default``), checked against ``minimum``
    (inclusive) and ``above`` (exclusive); ``error`` says what is wrong and how to fix it.

    The one parser of numeric settings for every process (streams, worker, API)."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise error(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise error(f"{name} must be >= {minimum:g}, got {raw!r}")
    if above is not None and value <= above:
        raise error(f"{name} must be > {above:g}, got {raw!r}")
    return value


def env_integer(
    env: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    error: type[Exception] = UsageError,
) -> int:
    """``env[name]`` as an integer (unset or empty: ``default``), at least ``minimum``."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise error(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise error(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def env_flag(
    env: Mapping[str, str], name: str, default: bool, *, error: type[Exception] = UsageError
) -> bool:
    """``env[name]`` as a boolean: 1/true/yes/on or 0/false/no/off."""
    raw = env.get(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise error(f"{name} must be true or false, got {raw!r}")


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
    #: how long the writers' flusher waits to send many tasks' tokens in one round trip,
    #: only while two or more stream, at least one batch per linger (streams/flusher.py).
    #: Off by default: 2 ms cut the bare writer's CPU per event by a fifth at 50 tasks x
    #: 33 tokens/s but added 2-3 ms to every token's p50 latency to a live tail
    flush_linger_ms: float = 0.0
    #: entries per XRANGE page in replay: 250 replayed 1.4-1.5x faster than 1,000 on the
    #: bench box, for raw XRANGE readers and ours alike (bench/baselines_bench.py)
    page_size: int = 250
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
        if not 0 <= self.flush_linger_ms <= 100:
            raise UsageError(f"flush_linger_ms must be between 0 and 100, got {self.flush_linger_ms}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> StreamsSettings:
        """Read ``REDIS_URL``, ``AGENTSTREAM_PREFIX``, ``AGENTSTREAM_RETENTION_S``,
        ``AGENTSTREAM_MAXLEN``, ``AGENTSTREAM_FEED_MAXLEN``, ``AGENTSTREAM_REDIS_CLUSTER``,
        ``AGENTSTREAM_REDIS_TIMEOUT_S``, ``AGENTSTREAM_BLOCK_MS`` and
        ``AGENTSTREAM_FLUSH_LINGER_MS``; keyword overrides win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "redis_url": env.get("REDIS_URL") or cls.redis_url,
            "cluster": env_flag(env, "AGENTSTREAM_REDIS_CLUSTER", False),
            "prefix": env.get("AGENTSTREAM_PREFIX") or cls.prefix,
            "retention_s": env_integer(env, "AGENTSTREAM_RETENTION_S", cls.retention_s, minimum=1),
            "maxlen": env_integer(env, "AGENTSTREAM_MAXLEN", cls.maxlen, minimum=1),
            "feed_maxlen": env_integer(env, "AGENTSTREAM_FEED_MAXLEN", cls.feed_maxlen, minimum=1),
            "command_timeout_s": env_number(
                env, "AGENTSTREAM_REDIS_TIMEOUT_S", cls.command_timeout_s, above=0
            ),
            "block_ms": env_integer(env, "AGENTSTREAM_BLOCK_MS", cls.block_ms, minimum=10),
            "flush_linger_ms": env_number(env, "AGENTSTREAM_FLUSH_LINGER_MS", cls.flush_linger_ms, minimum=0),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
