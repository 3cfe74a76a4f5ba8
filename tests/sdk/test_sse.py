"""SSE reading: httpx-sse's WHATWG decoder as the SDK uses it, and the last-event-id rule
end to end (a frame without ``id:`` keeps the id of the frame before it)."""

from __future__ import annotations

import httpx
import pytest

from agentstream.sdk import AgentStreamError
from agentstream.sdk.sse import SSEFrame, aiter_frames, frame_to_event
from tests.sdk.conftest import stub_client
from tests.sdk.stub import Stub, finished_task


async def frames_of(body: bytes, content_type: str = "text/event-stream") -> list[SSEFrame]:
    response = httpx.Response(200, headers={"content-type": content_type}, content=body)
    return [frame async for frame in aiter_frames(response)]


async def test_frames_comments_and_multiline_data() -> None:
    body = b': ping\n\nid: 5-0\nevent: token\ndata: {"a":\ndata: 1}\n\nretry: 300\ndata:plain\n\n'
    assert await frames_of(body) == [
        SSEFrame("token", '{"a":\n1}', "5-0", new_id=True),
        SSEFrame("message", "plain", "5-0", new_id=False),
    ]


async def test_a_frame_without_id_keeps_the_earlier_id() -> None:
    """WHATWG: the last event id is the connection's, not the frame's; only ``id:`` moves it
    (an empty ``id:`` clears it)."""
    body = (b"id: 7-0\nevent: token\ndata: {}\n\n"
            b"event: gap\ndata: {}\n\n"
            b": ping\n\n"
            b"data: {}\n\n"
            b"id: 8-0\ndata: {}\n\n"
            b"id\ndata: {}\n\n")  # fmt: skip
    frames = await frames_of(body)
    assert [(f.id, f.new_id) for f in frames] == [
        ("7-0", True), ("7-0", False), ("7-0", False), ("8-0", True), (None, True),
    ]  # fmt: skip


async def test_lines_split_across_chunks_and_crlf() -> None:
    async def chunks() -> object:
        for piece in (b"id: 1-0\r", b"\nevent: tok", b'en\r\ndata: {"x"', b": 1}\r\n\r\n"):
            yield piece

    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=chunks())  # type: ignore[arg-type]
    assert [f async for f in aiter_frames(response)] == [SSEFrame("token", '{"x": 1}', "1-0")]


def test_only_a_frame_that_set_its_id_names_a_cursor() -> None:
    own = frame_to_event(SSEFrame("notice", '{"text": "x"}', "7-0", new_id=True))
    inherited = frame_to_event(SSEFrame("notice", '{"text": "x"}', "7-0", new_id=False))
    stored = frame_to_event(SSEFrame("token", '{"type": "token", "id": "9-0"}', "7-0", new_id=False))
    gap = frame_to_event(SSEFrame("gap", '"3-0"', "7-0", new_id=False))
    assert own == {"type": "notice", "text": "x", "id": "7-0"}
    assert inherited == {"type": "notice", "text": "x"}
    assert stored["id"] == "9-0"  # the event's own cursor, from its JSON
    assert gap == {"type": "gap", "first_cursor": "3-0"}


async def test_an_idless_frame_is_delivered_and_the_cursor_stays(stub: tuple[Stub, str]) -> None:
    """Through the client: the frame without ``id:`` after seq 4 inherits seq 4's id, yet
    it is yielded (not dropped as a repeat of seq 4); the server then drops the
    connection, and the client resumes with seq 4's cursor: nothing lost or repeated."""
    state, url = stub
    task = finished_task(state, "t1", 10)
    state.idless_after, state.drop_after_idless = 4, True
    async with stub_client(url) as client:
        seen = [e async for e in client.events("t1", mode="all")]
    assert [e.get("seq") for e in seen] == [1, 2, 3, 4, None, *range(5, 13)]
    assert seen[4] == {"type": "notice", "text": "no id"}
    assert [c["last_event_id"] for c in state.connections] == [None, task.events[3]["id"]]


async def test_a_response_that_is_no_event_stream_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/html"}, content=b"<html>login</html>")

    client = stub_client("http://stub", transport=httpx.MockTransport(handler))
    async with client:
        with pytest.raises(AgentStreamError) as caught:
            [e async for e in client.events("t1")]
    assert caught.value.code == "not_event_stream"
