"""Redis clients for the streams layer, built from :class:`StreamsSettings`.

Clients decode responses to ``str`` (the codec works on text) and carry the settings'
timeouts, so no command can hang forever. A blocking read gets its own socket timeout.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from .settings import StreamsSettings

__all__ = ["RedisClient", "create_redis", "dedicated_connection", "raw_stream_client"]

#: ``redis.asyncio.Redis`` or ``RedisCluster``. Typed ``Any`` on purpose: redis-py 5 annotates
#: its command methods with unions of sync and async results, which make every ``await``
#: an error under strict mypy without adding any safety.
RedisClient: TypeAlias = Any


def _common(settings: StreamsSettings) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": settings.command_timeout_s,
        "socket_connect_timeout": settings.connect_timeout_s,
        "health_check_interval": 30,
    }


def create_redis(settings: StreamsSettings) -> RedisClient:
    """A pooled client for ``settings.redis_url`` (a cluster client when ``cluster``)."""
    if settings.cluster:
        return RedisCluster.from_url(
            settings.redis_url, max_connections=settings.max_connections, **_common(settings)
        )
    # A blocking pool makes a burst wait (up to the command timeout) for a free
    # connection instead of failing with "Too many connections".
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.max_connections,
        timeout=settings.command_timeout_s,
        **_common(settings),
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def dedicated_connection(settings: StreamsSettings, host: str, port: int) -> RedisClient:
    """A single-connection client to one node, for blocking reads that must not hold a
    pooled connection; its socket timeout outlasts ``block_ms``."""
    options = _common(settings)
    options["socket_timeout"] = settings.command_timeout_s + settings.block_ms / 1000
    options["single_connection_client"] = True
    url = settings.redis_url if not settings.cluster else None
    if url is not None:
        return Redis.from_url(url, **options)
    return Redis(host=host, port=port, **options)


def _identity(response: Any, **_: Any) -> Any:
    return response


def raw_stream_client(redis: RedisClient) -> RedisClient:
    """A client on the same connection pool whose XRANGE/XREAD replies stay raw lists.

    redis-py turns every entry into a dict before we decode it again; skipping that halves
    the client CPU of a replay. On a cluster the client is returned unchanged (its replies
    keep redis-py's shape, which the decoders also accept).
    """
    if isinstance(redis, RedisCluster):
        return redis
    raw = Redis(connection_pool=redis.connection_pool)
    for command in ("XRANGE", "XREVRANGE", "XREAD"):
        raw.set_response_callback(command, _identity)
    return raw
