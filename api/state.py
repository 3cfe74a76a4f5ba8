"""The typed state the lifespan hands to every request, and the dependencies reading it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agentstream.api.auth import SESSION_COOKIE, ApiKeys, UiSessions
from agentstream.api.broadcast import Broadcast
from agentstream.api.errors import ApiError, not_found
from agentstream.api.limits import RateLimiter
from agentstream.api.metrics import Metrics
from agentstream.api.queue import JobQueue
from agentstream.api.settings import ApiSettings
from agentstream.api.slots import StreamSlots
from agentstream.api.sse import FrameCache
from agentstream.streams import Reader, ReaderHub, RedisClient, TaskMeta, TaskStore
from agentstream.streams.keys import TASK_ID_PATTERN, scoped_task_id
from agentstream.telemetry.logs import bind_task
from agentstream.worker.catalog import CatalogCache

__all__ = [
    "STATE_KEY",
    "Owned",
    "Services",
    "ServicesDep",
    "Tenant",
    "bearer",
    "owned_task",
    "require_key",
    "services",
    "tenant",
]

STATE_KEY = "services"


@dataclass
class Services:
    """Everything a route may use; built and closed by the app's lifespan."""

    settings: ApiSettings
    redis: RedisClient
    hub: ReaderHub
    reader: Reader
    store: TaskStore
    queue: JobQueue
    keys: ApiKeys
    sessions: UiSessions
    limiter: RateLimiter
    metrics: Metrics
    #: live event streams (the caps); its counts are the metrics' gauges
    slots: StreamSlots
    #: the live task streams, written once per filter to every client that keeps up
    broadcast: Broadcast
    frames: FrameCache = field(default_factory=FrameCache)
    catalog: CatalogCache = field(default_factory=CatalogCache)


async def services(request: Request) -> Services:
    found = getattr(request.state, STATE_KEY, None)
    if not isinstance(found, Services):
        raise RuntimeError("no services in the request state: run the app with its lifespan")
    return found


# The dependencies are ``async def`` although they do not await: FastAPI would run a
# plain ``def`` in its thread pool, a hop per request for nothing.
ServicesDep = Annotated[Services, Depends(services)]


#: the bearer key of a request, or ``None`` (as a dependency: the OpenAPI security scheme)
bearer = HTTPBearer(auto_error=False, description="an API key of AGENTSTREAM_API_KEYS")


_READS = frozenset({"GET", "HEAD"})
#: set on ``request.state`` when the viewer's session cookie, not a key, authenticated it
_BY_SESSION = "authenticated_by_session"


async def tenant(
    request: Request,
    svc: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The caller's tenant: from the bearer key, else, for reads, from the viewer's session
    cookie (401 without either)."""
    if credentials is None and not svc.keys.open_mode and request.method in _READS:
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            found = svc.sessions.authenticate(session)
            setattr(request.state, _BY_SESSION, True)
            return found
    return svc.keys.authenticate(credentials.credentials if credentials else None)


Tenant = Annotated[str, Depends(tenant)]


def require_key(request: Request, what: str) -> None:
    """403 when the viewer's read-only session cookie (not an API key) authenticated the
    request: ``what`` changes state, which only a key may do."""
    if getattr(request.state, _BY_SESSION, False):
        raise ApiError(403, f"{what} needs the API key ('Authorization: Bearer <key>'), not a viewer session")


async def owned_task(task_id: str, owner: Tenant, svc: ServicesDep) -> TaskMeta:
    """The caller's task ``task_id``, or 404. Ids are per tenant: only the caller's own
    keys are looked at (``<tenant>/<task id>``), so other tenants' tasks of the same id
    cannot even be found. ``meta.task_id`` is the key id every streams call takes; show
    clients :func:`~agentstream.streams.keys.public_task_id` of it."""
    if TASK_ID_PATTERN.fullmatch(task_id) is None:
        raise not_found(task_id)
    meta = await svc.store.meta(scoped_task_id(owner, task_id))
    if meta is None or meta.owner != owner:
        raise not_found(task_id)
    bind_task(task_id, attempt=meta.attempt, tenant=owner)
    return meta


Owned = Annotated[TaskMeta, Depends(owned_task)]
