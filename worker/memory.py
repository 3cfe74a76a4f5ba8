"""Multi-turn conversation memory: the messages one sender exchanged with one agent.

``RedisMemory`` is what the worker uses, so a conversation continues across tasks and
workers; ``InMemoryMemory`` serves in-process use and tests. Both keep at most
``max_messages`` (the oldest go first); the agent drops a leading orphan tool message
that trimming may leave behind.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import orjson

from agentstream.streams.connection import RedisClient
from agentstream.streams.keys import Keys
from agentstream.worker.errors import ConfigurationError

__all__ = ["DEFAULT_MEMORY_TTL_S", "ConversationMemory", "InMemoryMemory", "RedisMemory"]

#: a conversation idle this long is forgotten
DEFAULT_MEMORY_TTL_S = 7 * 86_400


@runtime_checkable
class ConversationMemory(Protocol):
    """Where an agent keeps conversations, per ``sender_id`` (OpenAI message dicts)."""

    async def load(self, sender_id: str) -> list[dict[str, Any]]:
        """The remembered messages, oldest first."""
        ...

    async def append(self, sender_id: str, messages: list[dict[str, Any]]) -> None:
        """Remember ``messages`` after the ones already kept."""
        ...

    async def clear(self, sender_id: str) -> None:
        """Forget the conversation."""
        ...


def _check_max(max_messages: int) -> int:
    if max_messages < 1:
        raise ConfigurationError(f"max_messages must be >= 1, got {max_messages}")
    return max_messages


class InMemoryMemory:
    """Conversations in a dict of this process: lost on restart, not shared."""

    def __init__(self, max_messages: int = 200) -> None:
        self.max_messages = _check_max(max_messages)
        self._conversations: dict[str, list[dict[str, Any]]] = {}

    async def load(self, sender_id: str) -> list[dict[str, Any]]:
        return [dict(message) for message in self._conversations.get(sender_id, [])]

    async def append(self, sender_id: str, messages: list[dict[str, Any]]) -> None:
        kept = self._conversations.setdefault(sender_id, [])
        kept.extend(dict(message) for message in messages)
        del kept[: max(0, len(kept) - self.max_messages)]

    async def clear(self, sender_id: str) -> None:
        self._conversations.pop(sender_id, None)


class RedisMemory:
    """Conversations in Redis lists, one orjson entry per message.

    The key (``keys.memory(agent_id, sender_id)``) expires ``ttl_s`` after the last
    append. Commands use the client's own timeouts (see ``streams.create_redis``).
    """

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        agent_id: str,
        max_messages: int = 200,
        ttl_s: int = DEFAULT_MEMORY_TTL_S,
    ) -> None:
        if ttl_s < 1:
            raise ConfigurationError(f"ttl_s must be >= 1, got {ttl_s}")
        self._redis = redis
        self._keys = keys
        self.agent_id = agent_id
        self.max_messages = _check_max(max_messages)
        self.ttl_s = ttl_s
        keys.memory(agent_id, "check")  # an invalid agent id fails here, not at first use

    def _key(self, sender_id: str) -> str:
        return self._keys.memory(self.agent_id, sender_id)

    async def load(self, sender_id: str) -> list[dict[str, Any]]:
        raw = await self._redis.lrange(self._key(sender_id), -self.max_messages, -1)
        return [orjson.loads(item) for item in raw]

    async def append(self, sender_id: str, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        key = self._key(sender_id)
        # One round trip (a MULTI on a single Redis); the key's hash tag keeps it in one
        # slot on a cluster. Trim and TTL go with the push so the list never outgrows them.
        async with self._redis.pipeline() as pipe:
            pipe.rpush(key, *(orjson.dumps(message) for message in messages))
            pipe.ltrim(key, -self.max_messages, -1)
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def clear(self, sender_id: str) -> None:
        await self._redis.delete(self._key(sender_id))
