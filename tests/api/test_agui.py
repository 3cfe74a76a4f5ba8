"""``format=ag-ui``: a task as AG-UI events, every frame validated by the ``ag-ui-protocol``
models, properly nested, and resumable from any frame id to what a one-go reader renders."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from ag_ui.core import (
    PROTOCOL_VERSION,
    BaseEvent,
    CustomEvent,
    Event,
    EventType,
    ReasoningMessageContentEvent,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)
from ag_ui.encoder import EventEncoder
from pydantic import TypeAdapter

from agentstream.api.dialects.agui import AgUiTranslator
from agentstream.api.dialects.agui_frames import ResumePoint, frame_ids
from agentstream.streams import InvalidCursor, StreamsSettings
from tests.api.helpers import Frame, completed, key_id, read_sse, result, run_worker, sse_frames, tokens
from tests.api.server import Api, submit

AG_UI: TypeAdapter[BaseEvent] = TypeAdapter(Event)
T = EventType


def url(task_id: str) -> str:
    return f"/v1/tasks/{task_id}/events"


def hybrid_run() -> list[dict[str, Any]]:
    """What a HybridAgent writes for a two-iteration run: reasoning, text, two streamed
    tool calls (the second one's id only known when the turn ends), a result and an error."""
    calc = {"index": 0, "tool_call_id": "call_calc", "tool_name": "calculator"}
    search = {"index": 1, "tool_name": "search"}
    ready = [
        {**calc, "parameters": {"expr": "6*7"}},
        {"index": 1, "tool_call_id": "call_gen", "tool_name": "search", "parameters": {"q": "x"}},
    ]
    return [
        {"type": "started", "agent": "hybrid"},
        {"type": "iteration_start", "iteration": 1, "max_iterations": 3, "remaining": 2},
        {"type": "thinking_token", "content": "The user "},
        {"type": "thinking_token", "content": "wants math."},
        *tokens(4),
        {**calc, "type": "tool_call_delta", "arguments_delta": '{"ex', "arguments": '{"ex'},
        {**search, "type": "tool_call_delta", "arguments_delta": '{"q"', "arguments": '{"q"'},
        {**calc, "type": "tool_call_delta", "arguments_delta": 'pr": ', "arguments": '{"expr": '},
        {**calc, "type": "tool_call_delta", "arguments_delta": '"6*7"}', "arguments": '{"expr": "6*7"}'},
        {**search, "type": "tool_call_delta", "arguments_delta": ': "x"}', "arguments": '{"q": "x"}'},
        {"type": "usage", "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        {"type": "tool_calls_ready", "tool_calls": ready},
        {"type": "thought", "content": "w0 w1 w2 w3 ", "iteration": 1},
        {"type": "action", "tool_name": "calculator", "tool_call_id": "call_calc",
         "parameters": {"expr": "6*7"}, "iteration": 1},
        {"type": "tool_call", "tool_name": "calculator", "tool_call_id": "call_calc", "parameters": {"expr": "6*7"}},
        {"type": "tool_call", "tool_name": "search", "tool_call_id": "call_gen", "parameters": {"q": "x"}},
        {"type": "tool_result", "tool_name": "calculator", "tool_call_id": "call_calc", "result": 42,
         "success": True},
        {"type": "tool_error", "tool_name": "search", "tool_call_id": "call_gen", "error": "search is down"},
        {"type": "observation", "content": "calculator: 42", "iteration": 1, "has_error": True},
        {"type": "iteration_start", "iteration": 2, "max_iterations": 3, "remaining": 1},
        *tokens(3, start=10),
        {"type": "usage", "prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23},
        {"type": "thought", "content": "w10 w11 w12 ", "iteration": 2},
        {**result("w10 w11 w12 "), "usage": {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38}},
        completed(),
    ]  # fmt: skip


def parse(frames: Iterable[Frame]) -> list[BaseEvent]:
    """Every frame through the package's own event union (raises on anything invalid)."""
    events = []
    for frame in frames:
        assert frame.event is None, "AG-UI frames carry no event name"
        assert frame.data is not None
        events.append(AG_UI.validate_json(frame.data))
    return events


_PAIRS = {
    T.TEXT_MESSAGE_START: ("text", T.TEXT_MESSAGE_END),
    T.TOOL_CALL_START: ("tool", T.TOOL_CALL_END),
    T.STEP_STARTED: ("step", T.STEP_FINISHED),
    T.REASONING_START: ("reasoning", T.REASONING_END),
    T.REASONING_MESSAGE_START: ("reasoning_message", T.REASONING_MESSAGE_END),
}
_ENDS = {end: kind for kind, end in _PAIRS.values()}
_INSIDE = {
    T.TEXT_MESSAGE_CONTENT: "text",
    T.TOOL_CALL_ARGS: "tool",
    T.REASONING_MESSAGE_CONTENT: "reasoning_message",
}


def _block_id(event: BaseEvent) -> str:
    for name in ("message_id", "tool_call_id", "step_name"):
        value = getattr(event, name, None)
        if isinstance(value, str):
            return value
    raise AssertionError(f"no id on {event!r}")


def check_nesting(events: Sequence[BaseEvent], *, ended: bool = True) -> None:
    """One run, opened first; every start closed once, contents only inside their block,
    a text message never open beside another one or a tool call; all closed at the end."""
    assert events and events[0].type == T.RUN_STARTED
    open_: set[tuple[str, str]] = set()
    for i, event in enumerate(events):
        kind = event.type
        assert i == 0 or kind != T.RUN_STARTED, "one RUN_STARTED per response"
        if kind in (T.RUN_FINISHED, T.RUN_ERROR):
            assert not open_, f"{kind} with {open_} still open"
            assert i == len(events) - 1, "nothing after the run ended"
        elif kind in _PAIRS:
            block = (_PAIRS[kind][0], _block_id(event))
            assert block not in open_, f"{block} opened twice"
            if kind in (T.TEXT_MESSAGE_START, T.TOOL_CALL_START):
                assert not any(k in ("text", "tool") for k, _ in open_), f"{kind} inside {open_}"
            open_.add(block)
        elif kind in _ENDS:
            block = (_ENDS[kind], _block_id(event))
            assert block in open_, f"{kind} of {block}, which is not open"
            open_.remove(block)
        elif kind in _INSIDE:
            assert (_INSIDE[kind], _block_id(event)) in open_, f"{kind} outside its block"
        elif kind == T.TOOL_CALL_RESULT:
            assert ("tool", _block_id(event)) not in open_, "a result of a call still streaming"
    if ended:
        assert events[-1].type in (T.RUN_FINISHED, T.RUN_ERROR)


@dataclass
class Rendered:
    """What a frontend builds from AG-UI events: text by message, arguments by call."""

    text: dict[str, str] = field(default_factory=dict)
    reasoning: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    end: BaseEvent | None = None


def render(events: Iterable[BaseEvent]) -> Rendered:
    view = Rendered()
    for event in events:
        match event:
            case TextMessageContentEvent(message_id=mid, delta=delta):
                view.text[mid] = view.text.get(mid, "") + delta
            case ReasoningMessageContentEvent(message_id=mid, delta=delta):
                view.reasoning[mid] = view.reasoning.get(mid, "") + delta
            case ToolCallStartEvent(tool_call_id=cid, tool_call_name=name):
                view.names[cid] = name
            case ToolCallArgsEvent(tool_call_id=cid, delta=delta):
                view.args[cid] = view.args.get(cid, "") + delta
            case ToolCallResultEvent(tool_call_id=cid, content=content):
                assert isinstance(content, str)
                view.results[cid] = content
            case RunFinishedEvent() | RunErrorEvent():
                view.end = event
    return view


async def agui(
    client: httpx.AsyncClient,
    task_id: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> list[Frame]:
    return await read_sse(client, url(task_id), params={"format": "ag-ui", **(params or {})}, headers=headers)


async def finished_task(client: httpx.AsyncClient, api: Api, events: list[dict[str, Any]]) -> str:
    task_id = await submit(client)
    await run_worker(api.services.store, task_id, events)
    return task_id


async def cursors(api: Api, task_id: str) -> list[str]:
    return [cursor async for cursor, _ in api.services.reader.replay(key_id(task_id))]


def translate(events: Iterable[Mapping[str, Any]]) -> list[BaseEvent]:
    """The pure translator over ``events`` (seqs from 1)."""
    translator = AgUiTranslator("thread", "run")
    stamp = "2026-11-21T13:08:00.123456+00:00"
    return [
        e
        for seq, event in enumerate(events, 1)
        for e in translator.feed({**event, "seq": seq, "timestamp": stamp})
    ]


def test_calls_that_never_streamed_are_announced_whole() -> None:
    """A ToolAgent-like stream without deltas: a ``tool_call`` announces the call, a result
    of a call never announced still opens and closes it first."""
    events = translate([
        {"type": "queued"},
        {"type": "tool_call", "tool_name": "calc", "tool_call_id": "c1", "parameters": {"a": 1}},
        {"type": "tool_result", "tool_name": "calc", "tool_call_id": "c1", "result": {"x": [1, 2]}, "success": True},
        {"type": "tool_error", "tool_name": "web", "tool_call_id": "c2", "error": "offline"},
        {"type": "token", "content": ""},  # nothing to say: no frame, no message
        {**result(), "output": {"x": 1}},
        completed(),
        {"type": "token", "content": "late"},  # nothing after the end
    ])  # fmt: skip
    check_nesting(events)
    assert [e.type for e in events] == [
        T.RUN_STARTED, T.TOOL_CALL_START, T.TOOL_CALL_ARGS, T.TOOL_CALL_END, T.TOOL_CALL_RESULT,
        T.TOOL_CALL_START, T.TOOL_CALL_END, T.TOOL_CALL_RESULT, T.CUSTOM, T.RUN_FINISHED,
    ]  # fmt: skip
    view = render(events)
    assert view.args == {"c1": '{"a":1}'} and view.results == {"c1": '{"x":[1,2]}', "c2": "offline"}
    assert isinstance(view.end, RunFinishedEvent) and view.end.result == {"x": 1}
    assert events[0].timestamp == 1795266480123


def test_frame_ids_and_resume_points() -> None:
    assert frame_ids("5-1", 3) == ["5-1:0", "5-1:1", "5-1"]
    assert frame_ids("5-1", 1) == ["5-1"] and frame_ids("5-1", 0) == []
    assert ResumePoint.parse("5-1:1") == ResumePoint("5-1", 1)
    assert ResumePoint.parse("5") == ResumePoint("5-0")
    assert ResumePoint.parse(None).fresh and ResumePoint.parse("0").fresh
    assert not ResumePoint.parse("0-0:0").fresh
    for bad in ("5-1:", "5-1:-1", "5-1:a", "$:0", "x:1", "5-1:1234567"):
        with pytest.raises(InvalidCursor):
            ResumePoint.parse(bad)


async def test_a_hybrid_run_as_ag_ui_events(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await finished_task(alice, api, hybrid_run())
    frames = await agui(alice, task_id)
    events = parse(frames)
    check_nesting(events)
    assert [e.type for e in events] == [
        T.RUN_STARTED,  # queued
        T.CUSTOM,  # started
        T.STEP_STARTED,
        T.REASONING_START, T.REASONING_MESSAGE_START, T.REASONING_MESSAGE_CONTENT,
        T.REASONING_MESSAGE_CONTENT,
        T.REASONING_MESSAGE_END, T.REASONING_END, T.TEXT_MESSAGE_START, T.TEXT_MESSAGE_CONTENT,
        T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_CONTENT,
        T.TEXT_MESSAGE_END, T.TOOL_CALL_START, T.TOOL_CALL_ARGS,  # calc has its id: it starts
        T.TOOL_CALL_ARGS,  # search has none yet: held (no frame); then calc's next delta
        T.TOOL_CALL_ARGS,
        T.CUSTOM,  # usage
        T.TOOL_CALL_END, T.TOOL_CALL_START, T.TOOL_CALL_ARGS, T.TOOL_CALL_END,  # ready: search starts late
        T.CUSTOM,  # thought; action and tool_call of announced calls add nothing
        T.TOOL_CALL_RESULT, T.TOOL_CALL_RESULT,
        T.CUSTOM,  # observation
        T.STEP_FINISHED, T.STEP_STARTED,
        T.TEXT_MESSAGE_START, T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_CONTENT, T.TEXT_MESSAGE_CONTENT,
        T.TEXT_MESSAGE_END, T.CUSTOM,  # usage
        T.CUSTOM, T.CUSTOM,  # thought, result
        T.STEP_FINISHED, T.RUN_FINISHED,
    ]  # fmt: skip
    view = render(events)
    assert list(view.text.values()) == ["w0 w1 w2 w3 ", "w10 w11 w12 "]
    assert list(view.reasoning.values()) == ["The user wants math."]
    assert view.names == {"call_calc": "calculator", "call_gen": "search"}
    assert view.args == {"call_calc": '{"expr": "6*7"}', "call_gen": '{"q": "x"}'}
    assert view.results == {"call_calc": "42", "call_gen": "search is down"}
    assert isinstance(view.end, RunFinishedEvent) and view.end.result == "w10 w11 w12 "
    assert view.end.usage is not None and view.end.usage[0].total_tokens == 38
    # ids are deterministic and tie things together
    stored = await cursors(api, task_id)
    first, text_start, calc_start = events[0], events[9], events[15]
    assert isinstance(first, RunStartedEvent) and (first.run_id, first.thread_id) == (task_id, task_id)
    assert first.protocol_version == PROTOCOL_VERSION
    assert isinstance(text_start, TextMessageStartEvent) and text_start.message_id == f"{task_id}-msg-6"
    assert (
        isinstance(calc_start, ToolCallStartEvent) and calc_start.parent_message_id == text_start.message_id
    )
    error = next(e for e in events if isinstance(e, ToolCallResultEvent) and e.tool_call_id == "call_gen")
    assert error.metadata == {"agentstream": {"error": True}}
    # frame ids: every frame keeps its event's cursor; the last of a group is the bare cursor
    ids = [f.id for f in frames]
    assert all(i is not None for i in ids)
    bare = [i for i in ids if i is not None and ":" not in i]
    assert set(bare) <= set(stored) and len(bare) == len(set(bare))
    for i, frame_id in enumerate(ids):
        assert frame_id is not None
        cursor, _, k = frame_id.partition(":")
        if k:
            assert ids[i + 1] in (f"{cursor}:{int(k) + 1}", cursor)
    assert ids[-1] == stored[-1]


async def test_a_chat_run_passes_the_package_encoder_byte_for_byte(
    alice: httpx.AsyncClient, api: Api
) -> None:
    task_id = await finished_task(alice, api, [*tokens(2), result(), completed()])
    response = await alice.get(url(task_id), params={"format": "ag-ui"})
    assert response.headers["content-type"].startswith("text/event-stream")
    body = response.content.decode()
    blocks = [b for b in body.split("\n\n") if b]
    encoder = EventEncoder()
    for block in blocks:
        id_line, data = block.split("\n", 1)
        assert id_line.startswith("id: ")
        assert encoder.encode(AG_UI.validate_json(data.removeprefix("data: "))) == data + "\n\n"


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            [{"type": "error", "error": "the model exploded", "error_type": "model_error", "retryable": False},
             {**result("the model exploded"), "success": False}, completed("failed")],
            ("RUN_ERROR", "the model exploded", "model_error"),
        ),
        (
            [{**result("no final answer within 3 iterations"), "success": False, "reason": "max_iterations"},
             completed("failed")],
            ("RUN_ERROR", "no final answer within 3 iterations", "failed"),
        ),
        (
            [{"type": "cancelled", "reason": "user asked"}, completed("cancelled")],
            ("RUN_FINISHED", "cancelled", "user asked"),
        ),
    ],
)  # fmt: skip
async def test_a_run_that_did_not_succeed(
    alice: httpx.AsyncClient, api: Api, tail: list[dict[str, Any]], expected: tuple[str, str, str]
) -> None:
    task_id = await finished_task(alice, api, [*tokens(3), *tail])
    events = parse(await agui(alice, task_id))
    check_nesting(events)
    end = events[-1]
    kind, first, second = expected
    assert end.type == kind
    if isinstance(end, RunErrorEvent):
        assert (end.message, end.code) == (first, second)
    else:
        assert isinstance(end, RunFinishedEvent) and end.outcome is not None
        assert end.outcome.type == first
        assert end.metadata == {"agentstream": {"status": "cancelled", "reason": second}}
    assert render(events).text == {f"{task_id}-msg-2": "w0 w1 w2 "}


async def test_retry_closes_what_the_failed_attempt_left_open(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await submit(alice)
    store = api.services.store
    await run_worker(store, task_id, [{"type": "iteration_start", "iteration": 1}, *tokens(2)])
    await run_worker(store, task_id, [{"type": "retry", "attempt": 2, "reason": "worker lost"}, *tokens(1, 5),
                                      result(), completed()])  # fmt: skip
    events = parse(await agui(alice, task_id))
    check_nesting(events)
    kinds = [e.type for e in events]
    retry = kinds.index(T.CUSTOM)
    assert kinds[retry - 2 : retry + 1] == [T.TEXT_MESSAGE_END, T.STEP_FINISHED, T.CUSTOM]
    custom = events[retry]
    assert isinstance(custom, CustomEvent) and custom.name == "agentstream.retry"
    assert custom.value["attempt"] == 2 and custom.value["seq"] == 5
    assert list(render(events).text.values()) == ["w0 w1 ", "w5 "]


def _reconnected(one_go: list[Frame], upto: int, resumed: list[Frame]) -> None:
    """A client that had ``one_go[:upto]`` and reconnected: the resumed response is a valid
    AG-UI stream by itself, sends exactly the frames it had not seen plus a prelude without
    ids, and the two responses together render what the one-go reader rendered."""
    seen = one_go[:upto]
    if one_go[upto - 1].id == one_go[-1].id:
        assert resumed == []
        return
    resumed_events = parse(resumed)
    check_nesting(resumed_events)
    assert [f for f in resumed if f.id is not None] == one_go[upto:]
    prelude = [e for f, e in zip(resumed, resumed_events, strict=True) if f.id is None]
    assert prelude[0].type == T.RUN_STARTED
    assert all(e.type in (T.RUN_STARTED, *_PAIRS) for e in prelude)
    assert render([*parse(seen), *resumed_events]) == render(parse(one_go))


async def test_resuming_from_every_frame_id_reopens_what_was_open(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await finished_task(alice, api, hybrid_run())
    one_go = await agui(alice, task_id)
    reopened: set[EventType] = set()
    for upto in range(1, len(one_go) + 1):
        frame_id = one_go[upto - 1].id
        assert frame_id is not None
        resumed = await agui(alice, task_id, headers={"Last-Event-ID": frame_id})
        _reconnected(one_go, upto, resumed)
        reopened |= {e.type for f, e in zip(resumed, parse(resumed), strict=True) if f.id is None}
    # mid-message, mid-reasoning, mid-tool-call and mid-step were all resumed
    assert reopened == {
        T.RUN_STARTED, T.STEP_STARTED, T.TEXT_MESSAGE_START, T.TOOL_CALL_START,
        T.REASONING_START, T.REASONING_MESSAGE_START,
    }  # fmt: skip
    # the query parameter works the same, and an id without a sub-index is a plain cursor
    mid_call = next(i for i, f in enumerate(one_go) if f.id and ":" in f.id and i > 15)
    by_query = await agui(alice, task_id, params={"after": one_go[mid_call].id or ""})
    _reconnected(one_go, mid_call + 1, by_query)


async def test_starting_after_and_dollar_resume_ag_ui_too(alice: httpx.AsyncClient, api: Api) -> None:
    task_id = await finished_task(alice, api, hybrid_run())
    one_go = await agui(alice, task_id)
    stored = await cursors(api, task_id)
    seq = 8  # the third text token: mid-message
    upto = max(i for i, f in enumerate(one_go) if f.id == stored[seq - 1]) + 1
    resumed = await agui(alice, task_id, params={"starting_after": str(seq)})
    _reconnected(one_go, upto, resumed)
    assert await agui(alice, task_id, params={"after": "$"}) == []
    assert await agui(alice, task_id, headers={"Last-Event-ID": stored[-1]}) == []


async def test_a_client_dropping_at_random_while_the_worker_writes(
    alice: httpx.AsyncClient, api: Api
) -> None:
    """Reconnecting from its last id at random frames, mid-group included, a live client
    ends up rendering exactly what a one-go reader rendered, each response valid AG-UI."""
    task_id = await submit(alice)
    rng = random.Random(6)
    run = hybrid_run()
    events = [*run[:-3], *tokens(150, start=20), *run[-3:]]

    async def produce() -> None:
        attempt = await api.services.store.open_attempt(key_id(task_id))
        async with api.services.store.writer(attempt) as writer:
            for i, event in enumerate(events):
                await writer.append(event)
                if i % 4 == 0:
                    await asyncio.sleep(0.002)

    one_go = asyncio.create_task(agui(alice, task_id))
    worker = asyncio.create_task(produce())
    seen: list[BaseEvent] = []
    last: str | None = None
    connections = 0
    done = False
    while not done:
        take = rng.randint(1, 25)
        headers = {"Last-Event-ID": last} if last is not None else {}
        response_frames: list[Frame] = []
        params = {"format": "ag-ui"}
        async with alice.stream("GET", url(task_id), params=params, headers=headers) as response:
            assert response.status_code == 200
            frames = sse_frames(response)
            async with contextlib.aclosing(frames):  # type: ignore[type-var]
                async for frame in frames:
                    if frame.comment is not None:
                        continue
                    response_frames.append(frame)
                    if frame.id is not None:
                        last = frame.id
                    take -= 1
                    kind = parse([frame])[0].type
                    if kind in (T.RUN_FINISHED, T.RUN_ERROR):
                        done = True
                    if take == 0 or done:
                        break
        parsed = parse(response_frames)
        check_nesting(parsed, ended=False)
        seen += parsed
        connections += 1
        assert connections < 400
    await worker
    full = parse(await asyncio.wait_for(one_go, 10))
    check_nesting(full)
    assert render(seen) == render(full)
    assert len(render(full).text) == 3 and connections > 5


async def test_a_trimmed_stream_says_so_and_still_resumes(
    alice: httpx.AsyncClient, api: Api, settings: StreamsSettings, redis: Any
) -> None:
    task_id = await finished_task(alice, api, [*tokens(60), result(), completed()])
    await redis.xtrim(settings.keys.events(key_id(task_id)), maxlen=20, approximate=False)
    frames = await agui(alice, task_id)
    events = parse(frames)
    check_nesting(events)
    assert [(f.id, e.type) for f, e in zip(frames[:2], events, strict=False)] == [
        (None, T.RUN_STARTED),
        (None, T.CUSTOM),
    ]
    gap = events[1]
    assert isinstance(gap, CustomEvent) and gap.name == "agentstream.gap" and gap.value["first_seq"] == 44
    assert render(events).text == {f"{task_id}-msg-44": "".join(f"w{i} " for i in range(42, 60))}
    # a reader whose id fell out of retention hears of the gap after the prelude
    old = await cursors(api, task_id)
    resumed = parse(await agui(alice, task_id, params={"after": "1-0"}))
    assert [e.type for e in resumed[:2]] == [T.RUN_STARTED, T.CUSTOM]
    # one still held resumes exactly
    _reconnected(frames, 10, await agui(alice, task_id, headers={"Last-Event-ID": frames[9].id or ""}))
    assert frames[9].id in old


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"format": "a2a"}, {}),
        ({"format": "ag-ui", "mode": "chunk"}, {}),
        ({"format": "ag-ui", "types": "token"}, {}),
        ({"format": "ag-ui", "group": "g", "consumer": "c"}, {}),
        ({"format": "ag-ui"}, {"Accept": "application/json"}),
        ({"format": "ag-ui"}, {"Last-Event-ID": "12-0:x"}),
        ({"format": "ag-ui", "after": "$:1"}, {}),
        ({"format": "ag-ui", "after": "12-0:1:2"}, {}),
        ({"after": "12-0:1"}, {}),  # sub-ids are AG-UI's only
    ],
)
async def test_bad_ag_ui_requests_are_400(
    alice: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str]
) -> None:
    task_id = await submit(alice)
    response = await alice.get(url(task_id), params=params, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"


def test_a_run_that_leaves_context_and_tools_out_becomes_a_task_without_instructions() -> None:
    """Found by the schema fuzzer: ``context`` and ``tools`` may be absent (the model gives
    ``None``), which made the route answer 500."""
    from ag_ui.core import RunAgentInput

    from agentstream.api.routes.agui import context_text, task_for_run

    run = RunAgentInput.model_validate(
        {"threadId": "th", "runId": "run-1", "messages": [{"id": "m", "role": "user", "content": "hi"}]}
    )
    assert run.context is None and run.tools is None
    assert context_text(run) is None
    assert task_for_run(run).input == "hi"
