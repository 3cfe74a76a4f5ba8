"""The typed state the lifespan hands to every request, and the dependencies reading it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from agentstream.api.auth import SESSION_COOKIE, ApiKeys, UiSessions
from agentstream.api.errors import not_found
from agentstream.api.limits import RateLimiter
from agentstream.api.metrics import Metrics
from agentstream.api.queue import JobQueue
from agentstream.api.settings import ApiSettings
from agentstream.api.sse import FrameCache
from agentstream.streams import Reader, ReaderHub, RedisClient, TaskMeta, TaskStore
from agentstream.streams.keys import TASK_ID_PATTERN, scoped_task_id
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

__all__ = ["STATE_KEY", "Owned", "Services", "ServicesDep", "Tenant", "owned_task", "services", "tenant"]

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
    metrics: Metrics = field(default_factory=Metrics)
    frames: FrameCache = field(default_factory=FrameCache)


async def services(request: Request) -> Services:
    found = getattr(request.state, STATE_KEY, None)
    if not isinstance(found, Services):
        raise RuntimeError("no services in the request state: run the app with its lifespan")
    return found


# The dependencies are ``async def`` although they do not await: FastAPI would run a
# plain ``def`` in its thread pool, a hop per request for nothing.
ServicesDep = Annotated[Services, Depends(services)]


_bearer = HTTPBearer(auto_error=False, description="an API key of AGENTSTREAM_API_KEYS")


_READS = frozenset({"GET", "HEAD"})


async def tenant(
    request: Request,
    svc: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's tenant: from the bearer key, else, for reads, from the viewer's session
    cookie (401 without either)."""
    if credentials is None and not svc.keys.open_mode and request.method in _READS:
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            return svc.sessions.authenticate(session)
    return svc.keys.authenticate(credentials.credentials if credentials else None)


Tenant = Annotated[str, Depends(tenant)]


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
    return meta


Owned = Annotated[TaskMeta, Depends(owned_task)]
