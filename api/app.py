"""The FastAPI application: ``create_app(settings)`` and its lifespan.

Nothing connects at import time or in ``create_app``: the lifespan builds the Redis client,
the reader hub, the reader, the task store and the arq pool, hands them to every request
as typed :class:`~api.state.Services`, and closes them in reverse order on shutdown.
The live viewer (``/ui``) is static files served by the same app: no build step.
A plain live tail of a task's events is served in front of FastAPI's middleware and
routing (:class:`~agentstream.api.routes.events.LiveTail`) while the app has no
middleware that should see it.
"""

from __future__ import annotations

import dataclasses
import gc
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from agentstream.api.auth import ApiKeys, UiSessions
from agentstream.api.broadcast import SERVER_SEND, Broadcast, LiveHandoff
from agentstream.api.errors import install_error_handlers
from agentstream.api.limits import BodyLimitMiddleware, RateLimiter
from agentstream.api.metrics import Metrics
from agentstream.api.queue import JobQueue
from agentstream.api.routes import agents, agui, events, groups, health, inputs, responses, tasks, ui
from agentstream.api.settings import ApiSettings
from agentstream.api.slots import StreamSlots
from agentstream.api.sse import OPTIONS_STATE_KEY, FrameCache, SseOptions
from agentstream.api.state import STATE_KEY, Services
from agentstream.streams import Reader, ReaderHub, TaskStore, create_redis

__all__ = ["create_app", "open_services"]

#: entries per XRANGE page a live client reads (and may hold while it is slow)
TAIL_PAGE = 100
#: entries the hub queues for one live client before it falls back to XRANGE
TAIL_QUEUE = 1_000


@asynccontextmanager
async def open_services(settings: ApiSettings) -> AsyncIterator[Services]:
    """Build every client the routes use; close them all on exit."""
    async with AsyncExitStack() as stack:
        redis = create_redis(settings.streams)
        stack.push_async_callback(redis.aclose)
        # Each live SSE client may sit on one decoded page and one hub queue while its
        # socket is slow: keep both small, so a client that stops reading costs little.
        reading = dataclasses.replace(
            settings.streams,
            page_size=min(settings.streams.page_size, TAIL_PAGE),
            reader_queue=min(settings.streams.reader_queue, TAIL_QUEUE),
        )
        linger_s = settings.hub_linger_ms / 1000
        hub = await stack.enter_async_context(ReaderHub(redis, reading, linger_s=linger_s))
        queue = await stack.enter_async_context(JobQueue(settings))
        keys = ApiKeys(settings.api_keys)
        secret = settings.ui_secret.encode() if settings.ui_secret else secrets.token_bytes(32)
        metrics = Metrics()
        slots = StreamSlots(
            metrics,
            max_total=settings.max_sse_clients,
            max_per_tenant=settings.max_sse_clients_per_tenant,
            max_group=settings.max_group_streams,
        )
        reader = Reader(redis, reading, hub)
        frames = FrameCache()
        pace = {"ping_interval_s": settings.ping_interval_s, "slow_client_s": settings.sse_slow_client_s}
        broadcast = await stack.enter_async_context(Broadcast(hub, reader, frames, metrics, **pace))
        yield Services(
            settings=settings,
            redis=redis,
            hub=hub,
            reader=reader,
            store=TaskStore(redis, settings.streams),
            queue=queue,
            keys=keys,
            sessions=UiSessions(secret, settings.ui_session_s, keys.tenants),
            limiter=RateLimiter(settings.rate_limit_per_min),
            metrics=metrics,
            slots=slots,
            broadcast=broadcast,
            frames=frames,
        )


#: user middleware a live tail may pass by (:class:`~api.routes.events.LiveTail`): a
#: request without a body goes through it untouched
_BODY_ONLY = (BodyLimitMiddleware,)


class _App(FastAPI):
    _live_tail: events.LiveTail | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The server's own send, before any middleware wraps it: live event streams reach
        # the connection's transport through it (api.broadcast).
        scope[SERVER_SEND] = send
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        tail = self._live_tail
        task_id = tail.task_id(scope) if tail is not None and scope["type"] == "http" else None
        if tail is not None and task_id is not None and not self._telemetry_on():
            opened = await tail.open(scope, receive, send, task_id)
            if opened is True:
                return
            if opened is not False:
                await opened.run(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _telemetry_on(self) -> bool:
        # FastAPI's native OpenTelemetry spans requests from its routing on: with it on,
        # live tails take the route, so their spans stay what they were.
        native = getattr(self, "_native_telemetry", None)
        return native is not None and bool(native.enabled())

    def build_middleware_stack(self) -> ASGIApp:
        # A live tail stands in front of the app's middleware only while that middleware
        # has nothing to do with a request without a body; any other added turns it off.
        plain = not self.root_path and all(m.cls in _BODY_ONLY for m in self.user_middleware)
        self._live_tail = events.LiveTail(self.exception_handlers) if plain else None
        # A live stream the route made runs in the outermost layer, once the chain let go.
        return LiveHandoff(super().build_middleware_stack())


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The HTTP service (PROTOCOL section 6). ``settings`` defaults to ``ApiSettings.from_env()``."""
    settings = settings or ApiSettings.from_env()
    sse = SseOptions(max_duration_s=settings.sse_max_duration_s, retry_ms=settings.sse_retry_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with open_services(settings) as svc:
            app.state.services = svc  # for tests and tools holding the app, not for routes
            # What exists now lives as long as the process; keep it out of the collector's
            # full passes, which otherwise stall every live stream (a 108 ms pause was seen).
            gc.collect()
            gc.freeze()
            yield {STATE_KEY: svc, OPTIONS_STATE_KEY: sse}

    app = _App(
        title="agentstream",
        version="1",
        summary="Durable, resumable streams of LLM agent events",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    for module in (tasks, inputs, agents, events, groups, health, ui, agui, responses):
        app.include_router(module.router)
    return app
