"""The scripted server's quirks of deployed servers, as the wire shows them (raw SSE over
httpx, and the openai SDK), and how directives are chosen per request, model and route."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from agentstream.worker.scripted import Directives, ScriptedLLMServer, parse_directives
from agentstream.worker.scripted.directives import UnknownDirective, merge_directives, parse_route_directives
from agentstream.worker.scripted.planner import REFUSAL

CALCULATOR = {
    "type": "function",
    "function": {"name": "calculator", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[ScriptedLLMServer]:
    async with ScriptedLLMServer() as server:
        yield server


async def raw_stream(base_url: str, text: str, **body: Any) -> list[str]:
    """The ``data:`` payloads of one streamed response, as sent."""
    request = {"model": "scripted", "messages": [{"role": "user", "content": text}], "stream": True, **body}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{base_url}/chat/completions", json=request)
    assert response.status_code == 200, response.text
    return [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]


def chunks(payloads: list[str]) -> list[dict[str, Any]]:
    return [json.loads(p) for p in payloads if p != "[DONE]"]


def finishes(payloads: list[str]) -> list[str]:
    return [
        c["choices"][0]["finish_reason"]
        for c in chunks(payloads)
        if c["choices"] and c["choices"][0]["finish_reason"]
    ]


def joined(payloads: list[str], key: str) -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks(payloads) if c["choices"])


def tool_parts(payloads: list[str]) -> list[dict[str, Any]]:
    return [
        p for c in chunks(payloads) if c["choices"] for p in c["choices"][0]["delta"].get("tool_calls", ())
    ]


# --------------------------------------------------------------------------- stops


async def test_length_cuts_the_reply_in_half(llm: ScriptedLLMServer) -> None:
    payloads = await raw_stream(llm.base_url, "[length] a b c d")

    assert joined(payloads, "content") == "Turn 1: you said"  # 4 of its 8 words
    assert finishes(payloads) == ["length"]
    assert payloads[-1] == "[DONE]"


async def test_max_tokens_stops_with_length(llm: ScriptedLLMServer) -> None:
    short = await raw_stream(llm.base_url, "a b c d", max_tokens=2)
    newer = await raw_stream(llm.base_url, "a b c d", max_completion_tokens=3)
    enough = await raw_stream(llm.base_url, "a b", max_tokens=50)

    assert (joined(short, "content"), finishes(short)) == ("Turn 1:", ["length"])
    assert (joined(newer, "content"), finishes(newer)) == ("Turn 1: you", ["length"])
    assert finishes(enough) == ["stop"]


async def test_length_cuts_tool_call_arguments(llm: ScriptedLLMServer) -> None:
    payloads = await raw_stream(llm.base_url, "[length] 17 * 23", tools=[CALCULATOR])

    arguments = "".join(p["function"].get("arguments", "") for p in tool_parts(payloads))
    assert arguments and arguments != '{"expression": "17 * 23"}'
    assert finishes(payloads) == ["length"]


async def test_content_filter_stops_the_reply(llm: ScriptedLLMServer) -> None:
    payloads = await raw_stream(llm.base_url, "[content-filter] x y z")

    assert finishes(payloads) == ["content_filter"]
    assert joined(payloads, "content") == "Turn 1: you"


async def test_refuse_streams_a_refusal(llm: ScriptedLLMServer) -> None:
    payloads = await raw_stream(llm.base_url, "[refuse] do it")

    assert joined(payloads, "refusal") == REFUSAL
    assert joined(payloads, "content") == ""
    assert finishes(payloads) == ["stop"]


async def test_non_streamed_replies_carry_the_same_quirks(llm: ScriptedLLMServer) -> None:
    async with AsyncOpenAI(base_url=llm.base_url, api_key="x", max_retries=0) as client:
        refused = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "[refuse]"}]
        )
        cut = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "[length] a b c d"}]
        )
        calls = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "[same-index] 1+2 and 3+4"}], tools=[CALCULATOR]
        )

    assert (refused.choices[0].message.refusal, refused.choices[0].message.content) == (REFUSAL, None)
    assert (cut.choices[0].message.content, cut.choices[0].finish_reason) == ("Turn 1: you said", "length")
    tool_calls = calls.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in tool_calls if c.type == "function"] == [
        {"expression": "1+2"},
        {"expression": "3+4"},
    ]


# --------------------------------------------------------------------------- tool calls


async def test_same_index_puts_every_call_at_index_zero_one_after_the_other(llm: ScriptedLLMServer) -> None:
    parts = tool_parts(await raw_stream(llm.base_url, "[same-index] 1+2 and 3+4", tools=[CALCULATOR]))

    assert {p["index"] for p in parts} == {0}
    ids = [p["id"] for p in parts if "id" in p]
    assert len(ids) == len(set(ids)) == 2
    first_of_second = next(i for i, p in enumerate(parts) if p.get("id") == ids[1])
    assert all("id" not in p for p in parts[1:first_of_second])  # the first call, then the second


async def test_no_index_sends_each_call_whole_without_index(llm: ScriptedLLMServer) -> None:
    parts = tool_parts(await raw_stream(llm.base_url, "[no-index] 1+2 and 3+4", tools=[CALCULATOR]))

    assert len(parts) == 2
    assert all("index" not in p and p["id"] for p in parts)
    assert [json.loads(p["function"]["arguments"]) for p in parts] == [
        {"expression": "1+2"},
        {"expression": "3+4"},
    ]


# --------------------------------------------------------------------------- endings


async def test_no_finish_sends_no_finish_reason_but_done(llm: ScriptedLLMServer) -> None:
    payloads = await raw_stream(llm.base_url, "[no-finish] hi")

    assert finishes(payloads) == []
    assert payloads[-1] == "[DONE]"
    assert joined(payloads, "content") == "Turn 1: you said hi."


async def test_no_done_ends_the_body_without_done(llm: ScriptedLLMServer) -> None:
    payloads = await raw_stream(llm.base_url, "[no-done] hi")

    assert "[DONE]" not in payloads
    assert finishes(payloads) == ["stop"]


# --------------------------------------------------------------------------- usage and options


async def test_every_chunk_carries_the_running_usage_with_details(llm: ScriptedLLMServer) -> None:
    payloads = await raw_stream(llm.base_url, "[think] hi", stream_options={"include_usage": True})

    usages = [c["usage"] for c in chunks(payloads)]
    final = usages[-1]
    assert all(u is not None for u in usages)
    assert [u["completion_tokens"] for u in usages] == sorted(u["completion_tokens"] for u in usages)
    assert final["completion_tokens_details"]["reasoning_tokens"] == len(
        joined(payloads, "reasoning_content").split()
    )
    assert final["prompt_tokens_details"] == {"cached_tokens": 0}  # one message: nothing to reuse


async def test_reject_stream_options_answers_400_only_when_it_is_sent(llm: ScriptedLLMServer) -> None:
    base_url = llm.base_url_with("reject-stream-options")
    async with AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
    payloads = await raw_stream(base_url, "hi")

    assert caught.value.param == "stream_options"
    assert "stream_options" in caught.value.message
    assert joined(payloads, "content") == "Turn 1: you said hi."


# --------------------------------------------------------------------------- choosing directives


async def test_directives_may_come_from_the_route_and_the_model_name(llm: ScriptedLLMServer) -> None:
    by_route = await raw_stream(llm.base_url_with("length"), "a b c d")
    by_model = await raw_stream(llm.base_url, "a b c d", model="scripted[content-filter]")
    async with httpx.AsyncClient(timeout=10) as http:
        unknown = await http.post(
            f"{llm.base_url_with('sometimes')}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )

    assert finishes(by_route) == ["length"]
    assert finishes(by_model) == ["content_filter"]
    assert unknown.status_code == 404
    assert "sometimes" in unknown.json()["error"]["message"]


def test_the_message_wins_over_the_model_name_over_the_route() -> None:
    route = parse_route_directives("slow:5+length+fail:500")
    model = parse_directives("scripted[slow:7]")[0]
    message = parse_directives("[slow:9] hi")[0]

    assert route == Directives(slow_ms=5, length=True, fail_status=500)
    assert merge_directives(route, model, message) == Directives(slow_ms=9, length=True, fail_status=500)
    assert merge_directives(route, model) == Directives(slow_ms=7, length=True, fail_status=500)
    with pytest.raises(UnknownDirective):
        parse_route_directives("length+bogus")
