"""Probes and metrics: ``/healthz`` (alive), ``/readyz`` (Redis and queue), ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from redis.exceptions import RedisError

from agentstream.api.schemas import HealthResponse, ReadyResponse
from agentstream.api.state import ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthResponse, summary="Liveness")
async def healthz() -> HealthResponse:
    """The process serves requests (no dependency is checked)."""
    return HealthResponse(status="ok")


async def _probe(check: Awaitable[object], timeout_s: float) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            await check
    except TimeoutError:
        return f"timeout after {timeout_s}s"
    except (RedisError, OSError) as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    summary="Readiness",
    responses={503: {"model": ReadyResponse, "description": "Redis or the queue unreachable"}},
)
async def readyz(svc: ServicesDep) -> PlainTextResponse | ReadyResponse:
    """Redis answers PING and the arq queue is readable, each within the probe timeout."""
    timeout = svc.settings.probe_timeout_s
    redis_check, queue_check = await asyncio.gather(
        _probe(svc.redis.ping(), timeout), _probe(svc.queue.ping(), timeout)
    )
    checks = {"redis": redis_check, "queue": queue_check}
    ready = all(value == "ok" for value in checks.values())
    body = ReadyResponse(status="ready" if ready else "unavailable", checks=checks)
    if ready:
        return body
    return PlainTextResponse(body.model_dump_json(), status_code=503, media_type="application/json")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4"}},
)
async def metrics(svc: ServicesDep) -> PlainTextResponse:
    return PlainTextResponse(svc.metrics.render(svc.hub), media_type="text/plain; version=0.0.4")
