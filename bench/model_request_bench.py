"""CPU the model client spends per request before the first token (issue 14, the worker).

Run: ``python -m bench.model_request_bench [--requests 200] [--rounds 5]``. A loopback HTTP
server in a child process (``agentstream.worker.scripted.recording``) answers every ``/chat/completions`` with a one-token SSE stream;
this process streams ``--requests`` turns through two clients, interleaved over the
rounds, for a short prompt (2 messages) and an agent's history (31 messages: 15 tool calls
and their results, 5 tools):

- **SDK create**: the openai SDK's own ``chat.completions.with_streaming_response.create``
  with every field as an argument (what the client did before: the SDK walks the request
  against its TypedDicts in Python on each call), the body read as ours is;
- **agentstream**: ``OpenAIClient.stream_chat``, which hands the history, the tools and the
  options to the SDK as ``extra_body`` (sent as they are).

Both use the SDK's aiohttp transport. Figures: this process's CPU per request (the server's
is its own), median (min-max) over the rounds; the ratio is paired within each round.
Writes ``bench/results/model_request.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from pathlib import Path
from typing import Any

import openai

from agentstream.worker.model import ModelSettings, OpenAIClient
from bench import provenance, spread
from bench.procs import read_line, spawn, stop_child

RESULTS = Path(__file__).parent / "results"


def history(turns: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a research agent."}]
    if not turns:
        return [*messages, {"role": "user", "content": "hello"}], None
    for i in range(turns):
        call = {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "search", "arguments": '{"q": "x"}'},
        }
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": "result " * 50},
        ]
    schema = {
        "type": "object",
        "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["q"],
    }
    tools = [
        {
            "type": "function",
            "function": {"name": f"tool_{i}", "description": "A tool.", "parameters": schema},
        }
        for i in range(5)
    ]
    return messages, tools


async def sdk_create(sdk: openai.AsyncOpenAI, messages: list[dict[str, Any]], tools: Any) -> None:
    kwargs: dict[str, Any] = {"model": "m", "messages": messages, "stream": True}
    kwargs["stream_options"] = {"include_usage": True}
    if tools:
        kwargs["tools"] = tools
    async with sdk.chat.completions.with_streaming_response.create(**kwargs) as response:
        async for _ in response.http_response.aiter_raw():
            pass


async def ours(client: OpenAIClient, messages: list[dict[str, Any]], tools: Any) -> None:
    async for _ in client.stream_chat(messages, tools):
        pass


async def timed(n: int, call: Any) -> float:
    """CPU us per request over ``n`` requests, one after the other."""
    cpu0 = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - cpu0) / n * 1e6


async def run(requests: int, rounds: int) -> dict[str, Any]:
    proc = await spawn("-m", "agentstream.worker.scripted.recording")
    try:
        base_url = f"http://127.0.0.1:{int(await read_line(proc, 20))}/v1"
        settings = ModelSettings(base_url=base_url, model="m", max_retries=0)
        sdk = openai.AsyncOpenAI(
            api_key="x", base_url=base_url, max_retries=0, http_client=openai.DefaultAioHttpClient()
        )
        out: dict[str, Any] = {}
        async with OpenAIClient(settings) as client:
            for name, turns in (("2 messages", 0), ("31 messages, 5 tools", 15)):
                messages, tools = history(turns)
                await sdk_create(sdk, messages, tools)  # warm-up: connections, imports
                await ours(client, messages, tools)
                theirs_us, ours_us = [], []
                theirs = functools.partial(sdk_create, sdk, messages, tools)
                mine = functools.partial(ours, client, messages, tools)
                for _ in range(rounds):
                    theirs_us.append(await timed(requests, theirs))
                    ours_us.append(await timed(requests, mine))
                out[name] = {
                    "sdk_create_cpu_us": spread(theirs_us),
                    "agentstream_cpu_us": spread(ours_us),
                    "ratio": spread([o / t for o, t in zip(ours_us, theirs_us, strict=True)]),
                    "saved_us": spread([t - o for o, t in zip(ours_us, theirs_us, strict=True)]),
                }
        await sdk.close()
    finally:
        await stop_child(proc)
    return {"requests": requests, "rounds": rounds, "prompts": out}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per client per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="30 requests, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 30, 2
    results = asyncio.run(run(args.requests, args.rounds)) | provenance(args.quick)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "model_request.json").write_text(json.dumps(results, indent=2))
    for name, r in results["prompts"].items():
        t, o, x = r["sdk_create_cpu_us"], r["agentstream_cpu_us"], r["ratio"]
        print(f"{name}: SDK create {t['median']:.0f} us ({t['min']:.0f}-{t['max']:.0f}), agentstream "
              f"{o['median']:.0f} us ({o['min']:.0f}-{o['max']:.0f}) per request; ratio {x['median']:.2f}x "
              f"({x['min']:.2f}-{x['max']:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
