"""The real ``openai`` SDK against ``/v1/responses``: the API, a real worker and the scripted
model in this loop. Every event must parse into the SDK's own class for its type."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.responses import Response

from agentstream.streams import StreamsSettings
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.api.dialect_stack import dialect_stack
from tests.api.openai_events import collect, numbers, typed
from tests.api.server import Api

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")

MATH = "What is 17 * 23?"


@pytest.fixture
async def stack(settings: StreamsSettings, redis: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    async with ScriptedLLMServer() as llm, dialect_stack(settings, llm, monkeypatch) as api:
        yield api


@pytest.fixture
async def clients(stack: Api) -> AsyncIterator[Callable[..., AsyncOpenAI]]:
    """``sdk(key)``: an ``AsyncOpenAI`` client of the API for a tenant key, closed after."""
    made: list[AsyncOpenAI] = []

    def sdk(key: str = "key-alice") -> AsyncOpenAI:
        made.append(AsyncOpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0, timeout=30.0))
        return made[-1]

    yield sdk
    for client in made:
        await client.close()


async def test_a_background_stream_resumes_with_no_gap_and_no_repeat(
    clients: Callable[..., AsyncOpenAI],
) -> None:
    client = clients()
    stream = await client.responses.create(
        model="hybrid", input=f"[slow:20] {MATH}", background=True, stream=True
    )
    first = await collect(stream, limit=6)
    await stream.close()  # the consumer goes away mid-run
    response_id = first[0].response.id
    resumed = await client.responses.retrieve(
        response_id, stream=True, starting_after=first[-1].sequence_number
    )
    rest = await collect(resumed)
    whole = await collect(await client.responses.retrieve(response_id, stream=True))
    assert [e.to_dict() for e in first + rest] == [e.to_dict() for e in whole]
    assert numbers(whole) == sorted(set(numbers(whole)))
    kinds = [e.type for e in whole]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for expected in ("response.function_call_arguments.delta", "response.function_call_arguments.done",
                     "response.output_text.delta", "response.output_text.done", "response.content_part.done"):  # fmt: skip
        assert expected in kinds
    final = await client.responses.retrieve(response_id)
    assert isinstance(final, Response) and final.status == "completed"
    assert "391" in final.output_text
    assert final.model_dump() == whole[-1].response.model_dump()
    calls = [item for item in final.output if item.type == "function_call"]
    outputs = [item for item in final.output if item.type == "function_call_output"]
    assert [c.name for c in calls] == ["calculator"] and calls[0].status == "completed"
    assert [o.call_id for o in outputs] == [calls[0].call_id] and "391" in str(outputs[0].output)
    assert final.usage is not None and final.usage.total_tokens > 0
    # resuming inside one stored event's group, and after the last event
    seqs = [e.sequence_number // 1000 for e in whole]
    biggest = max(seqs, key=seqs.count)
    group = [e for e in whole if e.sequence_number // 1000 == biggest]
    assert len(group) > 2
    middle = await collect(
        await client.responses.retrieve(response_id, stream=True, starting_after=group[0].sequence_number)
    )
    after = whole.index(group[0]) + 1
    assert [e.to_dict() for e in middle] == [e.to_dict() for e in whole[after:]]
    tail = await client.responses.retrieve(response_id, stream=True, starting_after=whole[-1].sequence_number)
    assert await collect(tail) == []


async def test_a_response_without_background_waits_and_continues_a_conversation(
    clients: Callable[..., AsyncOpenAI],
) -> None:
    client = clients()
    first = await client.responses.create(model="llm", input="hello there", instructions="Be brief.")
    assert first.status == "completed" and first.output_text == "Turn 1: you said hello there."
    assert first.instructions == "Be brief." and first.model == "llm"
    second = await client.responses.create(
        model="llm",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "and again"}]}],
        previous_response_id=first.id,
        metadata={"ticket": "42"},
    )
    assert second.output_text == "Turn 2: you said and again."
    assert second.metadata == {"ticket": "42"}


async def test_background_create_answers_at_once_and_cancel_stops_the_run(
    clients: Callable[..., AsyncOpenAI],
) -> None:
    client = clients()
    created = await client.responses.create(model="llm", input="[slow:100] [tokens:200] go", background=True)
    assert created.status in ("queued", "in_progress") and created.background
    stream = await client.responses.retrieve(created.id, stream=True)
    started = []
    async with asyncio.timeout(30):
        async for event in stream:
            started.append(typed(event))
            if event.type == "response.output_text.delta":
                break
    await stream.close()
    cancelled = await client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    events = await collect(await client.responses.retrieve(created.id, stream=True))
    assert events[-1].type == "response.incomplete" and events[-1].response.status == "cancelled"
    message = next(item for item in events[-1].response.output if item.type == "message")
    assert message.status == "incomplete"
    assert (await client.responses.retrieve(created.id)).status == "cancelled"
    again = await client.responses.cancel(created.id)  # idempotent
    assert again.status == "cancelled"


async def test_another_tenant_gets_404_and_bad_requests_are_refused(
    clients: Callable[..., AsyncOpenAI],
) -> None:
    alice, bob = clients(), clients("key-bob")
    created = await alice.responses.create(model="llm", input="mine", background=True)
    for call in (
        bob.responses.retrieve(created.id),
        bob.responses.retrieve(created.id, stream=True),
        bob.responses.cancel(created.id),
        bob.responses.create(model="llm", input="x", previous_response_id=created.id),
    ):
        with pytest.raises(openai.NotFoundError):
            await call
    with pytest.raises(openai.UnprocessableEntityError, match="no-such-agent"):
        await alice.responses.create(model="no-such-agent", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="temperature"):
        await alice.responses.create(model="llm", input="x", temperature=0.2)
    with pytest.raises(openai.UnprocessableEntityError, match="user text"):
        await alice.responses.create(model="llm", input=[{"role": "system", "content": "only rules"}])
    with pytest.raises(openai.AuthenticationError):
        await clients("wrong").responses.retrieve(created.id)


async def test_the_sdk_stream_helper_accumulates_and_resumes(clients: Callable[..., AsyncOpenAI]) -> None:
    """``responses.stream()`` checks item identities and ordering as it accumulates."""
    client = clients()
    seen: list[Any] = []
    async with client.responses.stream(model="hybrid", input=f"[slow:20] {MATH}", background=True) as stream:
        async for event in stream:
            seen.append(event)
            if len(seen) == 8:
                break
    response_id = seen[0].response.id
    after = seen[-1].sequence_number
    async with client.responses.stream(response_id=response_id, starting_after=after) as stream:
        final = await stream.get_final_response()
    assert final.status == "completed" and final.output_text == "The answer is 391."
    async with client.responses.stream(model="llm", input="hi") as stream:
        assert (await stream.get_final_response()).output_text == "Turn 1: you said hi."
