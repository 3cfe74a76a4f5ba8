"""A live tail's own path (``api.routes.events.LiveTail``): the plain SSE request of a
task's events is served before FastAPI's routing, answers every request as the route
would, and holds none of the framework's frames while it streams; a live stream the route
made lets go of them too (``api.broadcast.LiveHandoff``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.types import ASGIApp, Receive, Scope, Send

from agentstream.api import create_app
from agentstream.api.routes.events import LiveTail
from agentstream.serving import InLoopServer
from agentstream.streams import StreamsSettings
from tests.api.helpers import completed, run_worker, sse_frames, tokens
from tests.api.server import ALICE, BOB, Api, api_settings, serve, submit
from tests.harness import eventually

#: modules whose frames a live stream must not keep (the routing and middleware chain)
CHAIN = ("fastapi.routing", "starlette.routing", "fastapi.middleware", "starlette.middleware",
         "starlette._exception_handler", "fastapi.dependencies", "agentstream.api.limits")  # fmt: skip
#: the app's own entry frames, which the route's streams keep and the live tail's do not
ENTRY = ("fastapi.applications", "starlette.applications")


def url(task_id: str) -> str:
    return f"/v1/tasks/{task_id}/events"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What :meth:`LiveTail.open` did with each request for events: ``stream``,
    ``answered`` (an error) or ``declined`` (the route serves it)."""
    seen: list[str] = []
    original = LiveTail.open

    async def spy(self: LiveTail, scope: Scope, receive: Receive, send: Send, task_id: str) -> Any:
        result = await original(self, scope, receive, send, task_id)
        if scope["path"].endswith("/events"):
            seen.append("answered" if result is True else "declined" if result is False else "stream")
        return result

    monkeypatch.setattr(LiveTail, "open", spy)
    return seen


async def routed_and_plain(
    client: httpx.AsyncClient, path: str, params: dict[str, str], headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    """The same request through the route (``format=agentstream``, which the live tail
    declines) and as it comes."""
    routed = await client.get(path, params={**params, "format": "agentstream"}, headers=headers)
    plain = await client.get(path, params=params, headers=headers)
    return routed, plain


def same_answer(routed: httpx.Response, plain: httpx.Response) -> None:
    assert plain.status_code == routed.status_code, plain.text
    assert plain.content == routed.content
    for name in ("content-type", "retry-after", "www-authenticate"):
        assert plain.headers.get(name) == routed.headers.get(name), name


@pytest.mark.parametrize(
    ("case", "params", "headers", "expected", "status"),
    [
        ("no key", {}, {"Authorization": ""}, "answered", 401),
        ("unknown key", {}, {"Authorization": "Bearer nope"}, "answered", 401),
        ("not a bearer key", {}, {"Authorization": "Basic a2V5LWFsaWNl"}, "answered", 401),
        ("another tenant's task", {}, BOB, "answered", 404),
        ("bad cursor", {"after": "yesterday"}, {}, "answered", 400),
        ("bad Last-Event-ID", {}, {"Last-Event-ID": "12-ab"}, "answered", 400),
        ("bad mode", {"mode": "loud"}, {}, "answered", 400),
        ("bad scope", {"scope": "everywhere"}, {}, "answered", 400),
        ("starting_after not a number", {"starting_after": "x"}, {}, "declined", 400),
        ("negative starting_after", {"starting_after": "-1"}, {}, "declined", 400),
        ("limit out of range", {"limit": "0"}, {}, "declined", 400),
        ("a group without a consumer", {"group": "g"}, {}, None, 400),
    ],
)
async def test_an_error_is_answered_as_the_route_answers_it(
    alice: httpx.AsyncClient,
    opened: list[str],
    case: str,
    params: dict[str, str],
    headers: dict[str, str],
    expected: str | None,
    status: int,
) -> None:
    task_id = await submit(alice)
    routed, plain = await routed_and_plain(alice, url(task_id), params, headers)
    assert routed.status_code == status, routed.text
    same_answer(routed, plain)
    # the routed request is declined (format), the plain one as expected (None: both)
    assert opened == ["declined", expected or "declined"], case


async def test_unknown_tasks_and_ids_that_cannot_be_are_404(
    alice: httpx.AsyncClient, opened: list[str]
) -> None:
    for task_id in ("no-such-task", "bad id!"):
        routed, plain = await routed_and_plain(alice, url(task_id), {}, {})
        assert routed.status_code == 404
        same_answer(routed, plain)
    assert opened == ["declined", "answered"] * 2


async def test_a_finished_stream_read_past_its_end_is_204_from_the_route(
    alice: httpx.AsyncClient, api: Api, opened: list[str]
) -> None:
    task_id = await submit(alice)
    await run_worker(api.services.store, task_id, [*tokens(2), completed()])
    routed, plain = await routed_and_plain(alice, url(task_id), {"after": "$"}, {})
    assert routed.status_code == 204
    same_answer(routed, plain)
    assert opened == ["declined", "declined"]


@pytest.mark.parametrize(("cap", "status"), [("max_sse_clients", 503), ("max_sse_clients_per_tenant", 429)])
async def test_a_full_cap_is_answered_as_the_route_answers_it(
    settings: StreamsSettings, redis: Any, cap: str, status: int
) -> None:
    async with serve(api_settings(settings, **{cap: 1})) as api, api.client() as alice:
        task_id = await submit(alice)
        async with alice.stream("GET", url(task_id)) as held:
            assert held.status_code == 200
            routed, plain = await routed_and_plain(alice, url(task_id), {}, {})
        assert routed.status_code == status and routed.headers["retry-after"] == "1"
        same_answer(routed, plain)


def chain(task: asyncio.Task[Any]) -> list[str]:
    """``module:function`` of each coroutine the task awaits through, outermost first."""
    out, coro = [], task.get_coro()
    while coro is not None and hasattr(coro, "cr_code"):
        out.append(f"{coro.cr_frame.f_globals.get('__name__')}:{coro.cr_code.co_qualname}")
        coro = coro.cr_await
    return out


async def streaming_chain() -> list[str]:
    """The chain of the one request task that runs a live stream."""
    found: list[list[str]] = []

    async def one() -> bool:
        chains = [chain(task) for task in asyncio.all_tasks()]
        found[:] = [c for c in chains if any("LiveStream.run" in frame for frame in c)]
        return len(found) == 1

    await eventually(one)
    return found[0]


@pytest.mark.parametrize("routed", [False, True])
async def test_a_live_stream_keeps_none_of_the_request_chain(
    alice: httpx.AsyncClient, api: Api, opened: list[str], routed: bool
) -> None:
    task_id = await submit(alice)
    params = {"format": "agentstream"} if routed else {}
    async with alice.stream("GET", url(task_id), params=params) as response:
        frames = sse_frames(response)
        async with contextlib.aclosing(frames):
            assert (await anext(frames)).event == "queued"
            frames_of_it = await streaming_chain()
            await run_worker(api.services.store, task_id, [*tokens(3), completed()])
            rest = [frame.event async for frame in frames]
    assert rest == ["token"] * 3 + ["completed"]
    modules = [frame.split(":")[0] for frame in frames_of_it]
    assert not [m for m in modules if m.startswith(CHAIN)], frames_of_it
    if routed:
        assert opened == ["declined"]
    else:
        assert opened == ["stream"]
        assert not [m for m in modules if m.startswith(ENTRY)], frames_of_it


class Recording:
    """A middleware that notes the paths it sees."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def with_middleware(settings: StreamsSettings, seen: list[str]) -> AsyncIterator[Api]:
    config = api_settings(settings)
    app = create_app(config)
    app.add_middleware(Recording, seen=seen)
    async with InLoopServer(app, lifespan="on", log_level="warning", http="h11", ws="none") as server:
        yield Api(server.url, app, config)


async def test_another_middleware_sees_live_tails_through_the_route(
    settings: StreamsSettings, redis: Any, opened: list[str]
) -> None:
    """A middleware the live tail does not know of (CORS, auth, ...) turns its path off:
    live tails take the route, through that middleware."""
    seen: list[str] = []
    async with with_middleware(settings, seen) as api, api.client(ALICE) as alice:
        task_id = await submit(alice)
        await run_worker(api.services.store, task_id, [*tokens(2), completed()])
        async with alice.stream("GET", url(task_id)) as response:
            events = [frame.event async for frame in sse_frames(response)]
    assert events == ["queued", "token", "token", "completed"]
    assert url(task_id) in seen and opened == []


async def test_tails_set_up_at_most_as_many_at_once_as_redis_has_connections() -> None:
    """The others wait their turn as long as for a pooled connection, then fail as that
    wait does (answered 503 by the app's handler for Redis errors)."""
    streams = SimpleNamespace(max_connections=2, command_timeout_s=1.0)  # a margin for a busy box
    svc: Any = SimpleNamespace(settings=SimpleNamespace(streams=streams))
    tail = LiveTail({})
    first, second = await tail._turn(svc), await tail._turn(svc)
    third = asyncio.create_task(tail._turn(svc))
    await asyncio.sleep(0.05)
    assert not third.done()
    with pytest.raises(RedisConnectionError, match="No connection available"):
        await third
    first.give_back()
    first.give_back()  # once only
    second.give_back()
    assert [await tail._turn(svc), await tail._turn(svc)]  # both turns were given back
    with pytest.raises(RedisConnectionError):
        await tail._turn(svc)


async def test_a_tail_gives_its_turn_back_after_its_first_read(settings: StreamsSettings, redis: Any) -> None:
    """Two turns (a pool of two connections) and three live tails held open: each got its
    stream going, so none kept its turn past its first read."""
    small = dataclasses.replace(settings, max_connections=2)
    async with serve(api_settings(small)) as api, api.client() as alice:
        task_id = await submit(alice)
        async with contextlib.AsyncExitStack() as held:
            for _ in range(3):
                response = await held.enter_async_context(alice.stream("GET", url(task_id)))
                frames = sse_frames(response)
                held.push_async_callback(frames.aclose)  # type: ignore[attr-defined]
                assert (await anext(frames)).event == "queued"
            await eventually(lambda: _members(api, 3))


async def _members(api: Api, n: int) -> bool:
    return api.services.broadcast.members == n


async def test_with_fastapis_telemetry_on_live_tails_take_the_route(
    alice: httpx.AsyncClient, api: Api, opened: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its spans follow the route: a tail in front of it would have none."""
    monkeypatch.setattr(type(api.app), "_telemetry_on", lambda self: True)
    task_id = await submit(alice)
    await run_worker(api.services.store, task_id, [*tokens(2), completed()])
    async with alice.stream("GET", url(task_id)) as response:
        events = [frame.event async for frame in sse_frames(response)]
    assert events == ["queued", "token", "token", "completed"] and opened == []
