"""The SDK against the SSE stub: resumption across random drops, duplicates, rate limits,
errors and gaps, over real HTTP on loopback."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from agentstream.protocol import StreamingMode
from agentstream.sdk import (
    AgentStreamClient,
    AgentStreamConnectionError,
    AgentStreamError,
    Backoff,
    ChunkMessage,
    TaskMessage,
    TopicType,
)
from tests.sdk.conftest import FAST
from tests.sdk.conftest import stub_client as _client
from tests.sdk.stub import Stub
from tests.sdk.stub import finished_task as _finished_task


async def test_resumes_across_random_drops_without_duplicates_or_gaps(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.drop_max = 5
    _finished_task(state, "t1", 200)
    async with _client(url, max_reconnects=3) as client:
        seen = [event async for event in client.events("t1")]
    assert [e["seq"] for e in seen] == list(range(1, 203))
    assert seen[-1]["type"] == "completed"
    resumed = [c["last_event_id"] for c in state.connections[1:]]
    assert len(resumed) > 20, "the stub should have dropped the stream many times"
    assert all(resumed), "every reconnect resumes with Last-Event-ID"
    assert state.connections[0]["last_event_id"] is None


async def test_live_tail_with_drops_while_the_task_runs(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.drop_max = 4
    async with _client(url) as client:
        task = await client.submit("hello", agent="llm")
        text = ""
        seqs = []
        async for event in client.events(task["task_id"]):
            seqs.append(event["seq"])
            text += event.get("content", "")
    assert seqs == [*range(1, 32), 33]  # core mode leaves out `result` (seq 32)
    assert text == "".join(f"w{i} " for i in range(30))


async def test_duplicates_from_the_server_are_dropped_by_cursor(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.drop_max, state.overlap = 6, 3
    _finished_task(state, "t1", 60)
    async with _client(url) as client:
        seqs = [event["seq"] async for event in client.events("t1")]
    assert seqs == list(range(1, 63))


async def test_after_resumes_from_a_cursor_and_mode_filters(stub: tuple[Stub, str]) -> None:
    state, url = stub
    task = _finished_task(state, "t1", 10)
    async with _client(url) as client:
        later = [e async for e in client.events("t1", after=task.events[4]["id"], mode=StreamingMode.ALL)]
        chunks = [e["type"] async for e in client.events("t1", mode="chunk")]
    assert [e["seq"] for e in later] == list(range(6, 13))
    assert state.connections[0]["last_event_id"] == task.events[4]["id"]
    assert chunks == ["token"] * 10 + ["completed"]


async def test_not_found_raises_at_once(stub: tuple[Stub, str]) -> None:
    state, url = stub
    async with _client(url) as client:
        with pytest.raises(AgentStreamError) as caught:
            [e async for e in client.events("missing")]
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert "no task missing" in caught.value.message
    assert len(state.connections) == 1


async def test_unauthorised_raises_without_retry(stub: tuple[Stub, str]) -> None:
    state, url = stub
    _finished_task(state, "t1", 1)
    async with AgentStreamClient(url, "wrong", backoff=FAST) as client:
        with pytest.raises(AgentStreamError) as caught:
            [e async for e in client.events("t1")]
    assert caught.value.status == 401
    assert len(state.connections) == 1


async def test_rate_limit_is_retried_with_backoff(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.rate_limit_first = 2
    _finished_task(state, "t1", 3)
    async with _client(url) as client:
        seqs = [e["seq"] async for e in client.events("t1")]
    assert seqs == [1, 2, 3, 4, 5]
    assert len(state.connections) == 3


async def test_rate_limit_gives_up_after_max_reconnects(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.rate_limit_first = 100
    _finished_task(state, "t1", 3)
    async with _client(url, max_reconnects=2) as client:
        with pytest.raises(AgentStreamError) as caught:
            [e async for e in client.events("t1")]
    assert caught.value.status == 429
    assert len(state.connections) == 3


async def test_a_server_that_stays_down_ends_in_a_connection_error(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.down = True
    async with _client(url, max_reconnects=3) as client:
        with pytest.raises(AgentStreamConnectionError) as caught:
            [e async for e in client.events("t1")]
    assert caught.value.status == 503
    assert len(state.connections) == 4


async def test_unreachable_server_ends_in_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with _client(f"http://127.0.0.1:{port}", max_reconnects=1) as client:
        with pytest.raises(AgentStreamConnectionError) as caught:
            [e async for e in client.events("t1")]
        assert caught.value.status == 0
        with pytest.raises(AgentStreamConnectionError):
            await client.get("t1")


async def test_gap_frame_is_yielded_once_as_an_event(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.gap_before, state.drop_max = "1700000000000005-0", 3
    _finished_task(state, "t1", 8)
    async with _client(url) as client:
        seen = [e async for e in client.events("t1", after="1-0")]
    assert seen[0] == {"type": "gap", "first_cursor": "1700000000000005-0"}
    assert [e["type"] for e in seen].count("gap") == 1
    assert [e["seq"] for e in seen[1:]] == list(range(1, 11))


async def test_streaming_run_submits_and_streams_chunks(stub: tuple[Stub, str]) -> None:
    state, url = stub
    async with _client(url) as client:
        events = [
            e
            async for e in client.streaming_run(
                input="hi", agent="llm", streaming_mode=StreamingMode.CHUNK, task_id="mine", max_iterations=3,
                raw=True,
            )
        ]  # fmt: skip
    # chunk mode plus the task's `result` and the waits for a person, asked of the server
    # as mode=all narrowed by types=
    assert [e["type"] for e in events] == ["token"] * 30 + ["result", "completed"]
    assert state.connections[0]["mode"] == "all"
    assert state.connections[0]["types"] == (
        "approval_required,input_required,refusal,result,thinking_token,token,tool_call_delta"
    )
    assert state.bodies[0]["body"] == {"input": "hi", "agent": "llm", "task_id": "mine", "max_iterations": 3}


async def test_streaming_run_yields_typed_chunks_then_the_task_response(stub: tuple[Stub, str]) -> None:
    _, url = stub
    async with _client(url) as client:
        messages = [m async for m in client.streaming_run("hi", agent="llm", streaming_mode="chunk")]
    *chunks, last = messages
    assert all(isinstance(m, ChunkMessage) for m in chunks)
    assert "".join(m.payload.content for m in chunks) == "".join(f"w{i} " for i in range(30))
    assert isinstance(last, TaskMessage) and last.topic == TopicType.TASK_RESPONSE
    assert (last.payload.success, last.payload.answer, last.payload.msg) == (True, "done", None)


async def test_submit_sends_the_idempotency_key(stub: tuple[Stub, str]) -> None:
    state, url = stub
    async with _client(url) as client:
        created = await client.submit(
            "x", idempotency_key="k-1", metadata={"a": 1}, tools=["calculator"], workflow="# W\n1. plan"
        )
    assert created["status"] == "queued"
    assert state.bodies[0]["headers"]["idempotency-key"] == "k-1"
    assert state.bodies[0]["body"]["tools"] == ["calculator"]
    assert state.bodies[0]["body"]["workflow"] == "# W\n1. plan"


async def test_group_events_pass_group_and_consumer_and_ack(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.drop_max = 4
    _finished_task(state, "t1", 12)
    async with _client(url) as client:
        ids = [e["id"] async for e in client.group_events("t1", "billing", "c1")]
        acked = await client.ack("t1", "billing", ids)
    assert len(ids) == 14 and len(set(ids)) == 14
    assert acked == 14
    assert {(c["group"], c["consumer"]) for c in state.connections} == {("billing", "c1")}
    assert state.bodies[-1] == {"ack": "billing", "ids": ids}


async def test_closed_client_refuses_use(stub: tuple[Stub, str]) -> None:
    _, url = stub
    client = _client(url)
    async with client:
        pass
    with pytest.raises(RuntimeError, match="closed AgentStreamClient"):
        await client.get("t1")


def test_sse_read_timeout_must_cover_two_pings() -> None:
    with pytest.raises(ValueError, match="twice the server ping"):
        AgentStreamClient("http://x", sse_timeout=httpx.Timeout(5.0))


def test_backoff_grows_with_jitter_and_caps() -> None:
    backoff = Backoff(initial_s=0.1, max_s=1.0, jitter=0.5)
    for attempt, base in [(0, 0.1), (1, 0.2), (3, 0.8), (10, 1.0)]:
        delay = backoff.delay(attempt)
        assert base * 0.5 <= delay <= base


class _CountingTransport(httpx.AsyncBaseTransport):
    """Counts the responses whose body is still open."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.open = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.open += 1
        body, outer = response.stream, self

        class Counted(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in body:  # type: ignore[union-attr]
                    yield chunk

            async def aclose(self) -> None:
                outer.open -= 1
                await body.aclose()  # type: ignore[union-attr]

        return httpx.Response(response.status_code, headers=response.headers, stream=Counted())

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_leaving_the_loop_closes_the_response_at_once(stub: tuple[Stub, str]) -> None:
    state, url = stub
    _finished_task(state, "t1", 50)
    transport = _CountingTransport()
    async with _client(url, transport=transport) as client:
        for typed in (False, True):
            async with contextlib.aclosing(client.events("t1", typed=typed)) as events:
                async for event in events:
                    if (event["seq"] if isinstance(event, dict) else event.seq) == 3:
                        break
            assert transport.open == 0
        async with contextlib.aclosing(client.streaming_run("hi", agent="llm")) as messages:
            async for _message in messages:
                break
        assert transport.open == 0
