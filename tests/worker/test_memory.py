"""Conversation memory: in process, and in a real Redis where it outlives one agent."""

from __future__ import annotations

from typing import Any

import pytest

from agentstream.streams import StreamsSettings
from agentstream.worker.agents import HybridAgent, LLMAgent
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.llm import OpenAIClient
from agentstream.worker.memory import ConversationMemory, InMemoryMemory, RedisMemory


def msg(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content}


async def test_in_memory_keeps_the_latest_messages_per_sender() -> None:
    memory = InMemoryMemory(max_messages=3)
    await memory.append("a", [msg("user", "1"), msg("assistant", "2")])
    await memory.append("a", [msg("user", "3"), msg("assistant", "4")])
    await memory.append("b", [msg("user", "x")])

    assert [m["content"] for m in await memory.load("a")] == ["2", "3", "4"]
    assert await memory.load("b") == [msg("user", "x")]
    await memory.clear("a")
    assert await memory.load("a") == []
    assert isinstance(memory, ConversationMemory)


async def test_redis_memory_round_trips_trims_and_expires(redis: Any, settings: StreamsSettings) -> None:
    memory = RedisMemory(redis, settings.keys, "agent-1", max_messages=3, ttl_s=60)
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]}
    await memory.append("user-123", [msg("user", "hi"), call])
    await memory.append("user-123", [msg("tool", "7"), msg("assistant", "é ✓")])

    key = settings.keys.memory("agent-1", "user-123")
    assert key.startswith(f"{settings.prefix}:memory:")
    assert await memory.load("user-123") == [call, msg("tool", "7"), msg("assistant", "é ✓")]
    assert 0 < await redis.ttl(key) <= 60
    await memory.append("user-123", [])  # nothing to do, nothing sent
    await memory.clear("user-123")
    assert await memory.load("user-123") == []
    assert not await redis.exists(key)


async def test_redis_memory_refuses_bad_configuration(redis: Any, settings: StreamsSettings) -> None:
    with pytest.raises(ConfigurationError):
        RedisMemory(redis, settings.keys, "agent", max_messages=0)
    with pytest.raises(Exception, match="agent"):
        RedisMemory(redis, settings.keys, "bad agent id")


async def test_a_conversation_continues_across_agents_sharing_redis(
    redis: Any, settings: StreamsSettings, llm_client: OpenAIClient
) -> None:
    def agent() -> LLMAgent:  # a fresh agent per message, as a worker would build per task
        return LLMAgent(agent_id="a1", llm_client=llm_client, memory=RedisMemory(redis, settings.keys, "a1"))

    first = "".join([t async for t in agent().process_message_streaming("Hello", sender_id="user-123")])
    second = "".join([t async for t in agent().process_message_streaming("Again", sender_id="user-123")])

    assert (first, second) == ("Turn 1: you said Hello.", "Turn 2: you said Again.")


async def test_trimmed_history_never_starts_with_an_orphan_tool_message(
    redis: Any, settings: StreamsSettings, llm_client: OpenAIClient
) -> None:
    memory = RedisMemory(redis, settings.keys, "a1", max_messages=4)
    agent = HybridAgent(agent_id="a1", llm_client=llm_client, tools=["calculator"], memory=memory)
    await agent.execute_task({"description": "What is 2 + 2?"}, {"sender_id": "s"})
    # user, assistant(tool call), tool, assistant: trimming to 4 after the next task would
    # cut before the tool message; the agent then starts history at a user message.
    await agent.execute_task({"description": "Next"}, {"sender_id": "s"})
    result = await agent.execute_task({"description": "Third"}, {"sender_id": "s"})

    assert result["output"] == "Turn 2: you said Third."
