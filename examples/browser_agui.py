"""A task as AG-UI events over SSE, with a reconnect in the middle of a message.

    python examples/browser_agui.py

Starts a self-contained stack in this process (a real Redis in a temporary folder, the
scripted model, an arq worker and the API on loopback), submits a ReAct task, and reads
``GET /v1/tasks/{id}/events?format=ag-ui`` with plain httpx, as any AG-UI client would:

- every frame is validated by the ``ag-ui-protocol`` package's own models;
- half-way through the first text message the connection is dropped, and a new one is
  opened with ``Last-Event-ID``: it starts with ``RUN_STARTED`` and the start events of
  what was open (same ids), then the message continues where it stopped;
- the text of each message, the tool call and the run's result are assembled from both
  connections, and must read as if there had been one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from ag_ui.core import (
    BaseEvent,
    Event,
    EventType,
    RunFinishedEvent,
    TextMessageContentEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from pydantic import TypeAdapter

from agentstream.cli.embedded import EmbeddedRedis
from agentstream.cli.stack import running_stack
from agentstream.sdk import AgentStreamClient
from agentstream.sdk.sse import aiter_frames
from agentstream.worker.scripted_llm import ScriptedLLMServer

AG_UI: TypeAdapter[BaseEvent] = TypeAdapter(Event)


@contextlib.asynccontextmanager
async def local_stack() -> AsyncIterator[tuple[str, str]]:
    """Redis, model, worker and API in this process; yields ``(api_url, api_key)``."""
    with tempfile.TemporaryDirectory() as data_dir:
        async with (
            EmbeddedRedis(data_dir) as redis_url,
            ScriptedLLMServer(token_delay_s=0.02) as model,
            # env={}: this shell's AGENTSTREAM_* settings do not leak into the example
            running_stack(redis_url, env={}, model_base_url=model.base_url) as stack,
        ):
            yield stack


@dataclass
class Frame:
    id: str | None  # `<cursor>` or `<cursor>:<k>`; none on the frames of a resume prelude
    event: BaseEvent


async def agui_frames(
    http: httpx.AsyncClient, task_id: str, last_event_id: str | None = None
) -> AsyncIterator[Frame]:
    """One SSE connection, each frame validated as an AG-UI event."""
    headers = {"accept": "text/event-stream"}
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id
    params = {"format": "ag-ui"}
    async with http.stream("GET", f"/v1/tasks/{task_id}/events", params=params, headers=headers) as response:
        response.raise_for_status()
        async for frame in aiter_frames(response):
            # the frame's own `id:` line; a prelude frame has none (it inherits no cursor)
            yield Frame(frame.id if frame.new_id else None, AG_UI.validate_json(frame.data))


@dataclass
class Transcript:
    """What an AG-UI client assembles: text per message, tool calls, the run's result."""

    messages: dict[str, str] = field(default_factory=dict)
    tool_calls: dict[str, list[str]] = field(default_factory=dict)
    result: object = None

    def add(self, event: BaseEvent) -> None:
        match event:
            case TextMessageStartEvent():
                self.messages.setdefault(event.message_id, "")  # a re-opened message keeps its text
            case TextMessageContentEvent():
                self.messages[event.message_id] += event.delta
            case ToolCallStartEvent():
                self.tool_calls.setdefault(event.tool_call_id, [event.tool_call_name, "", ""])
            case ToolCallArgsEvent():
                self.tool_calls[event.tool_call_id][1] += event.delta
            case ToolCallResultEvent():
                self.tool_calls[event.tool_call_id][2] = event.content
            case RunFinishedEvent():
                self.result = event.result


def names(frames: list[Frame]) -> str:
    return " ".join(frame.event.type.value for frame in frames)


async def main() -> None:
    async with local_stack() as (api_url, api_key):
        async with AgentStreamClient(api_url, api_key) as client:
            task = await client.submit("[narrate] What is 17 * 23?", agent="hybrid", session_id="thread-42")
        task_id = task["task_id"]
        transcript = Transcript()
        headers = {"authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as http:
            # Connection 1: leave after the second piece of the first text message.
            first: list[Frame] = []
            async with contextlib.aclosing(agui_frames(http, task_id)) as frames:
                async for frame in frames:
                    first.append(frame)
                    transcript.add(frame.event)
                    if [f.event.type for f in first].count(EventType.TEXT_MESSAGE_CONTENT) == 2:
                        break
            started = first[0].event
            last_id = next(f.id for f in reversed(first) if f.id is not None)
            message_id = first[-1].event.message_id
            print(f"run: thread {started.thread_id}, run {started.run_id}")
            print(f"connection 1: {names(first)}")
            print(f"  dropped inside message {message_id} after {transcript.messages[message_id]!r}")

            # Connection 2: what a browser's EventSource does on its own, by Last-Event-ID.
            second = [frame async for frame in agui_frames(http, task_id, last_event_id=last_id)]
            for frame in second:
                transcript.add(frame.event)
            prelude = [f for f in second if f.id is None]
            reopened = [f for f in prelude if getattr(f.event, "message_id", None) == message_id]
            continued = next(f.event for f in second if f.id is not None)
            print(f"connection 2 (Last-Event-ID: {last_id}): re-opened with {names(prelude)}")
            more = len(second) - len(prelude) - 1
            delta = getattr(continued, "delta", "")
            print(
                f"  same message re-opened: {bool(reopened)}; it continues with {continued.type.value} "
                f"{delta!r}; then {more} more frames, ending {second[-1].event.type.value}"
            )

        total = len(first) + len(second)
        print(f"every frame valid AG-UI: {total} frames")
        print(f"messages: {' | '.join(transcript.messages.values())}")
        for name, arguments, result in transcript.tool_calls.values():
            print(f"tool call: {name}({json.loads(arguments)}) -> {result}")
        print(f"RUN_FINISHED result: {transcript.result}")


if __name__ == "__main__":
    asyncio.run(main())
