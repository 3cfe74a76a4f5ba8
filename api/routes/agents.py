"""The catalog of agents and tools the live workers serve (``GET /v1/agents``), and the
submit-time check against it.

The catalog is the same for every tenant: it describes the deployment, not anyone's data
(see :mod:`agentstream.worker.catalog` for how workers publish it and what it accepts).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from agentstream.api.errors import ApiError
from agentstream.api.schemas import error_responses
from agentstream.api.state import Services, ServicesDep, Tenant
from agentstream.worker.catalog import read_catalog
from agentstream.worker.payload import TaskRequest

__all__ = ["AgentCatalog", "check_served", "router"]

router = APIRouter(prefix="/v1/agents", tags=["agents"])


class AgentCatalog(BaseModel):
    """What the live workers of this API's queue serve."""

    queue: str
    hash: str | None = Field(description="the catalog hash when every live worker serves the same")
    agents: list[dict[str, Any]] = Field(
        description="name, kind, model, tools, max_iterations, description, builtin; `workers` serving "
        "it and `available` (every live worker serves it, so a submit is accepted)"
    )
    tools: list[dict[str, Any]] = Field(description="name, description, parameters (JSON schema), timeout_s")
    workers: list[dict[str, Any]] = Field(description="the live workers: id, app, hash, times")
    conflicts: list[str] = Field(description="groups of workers serving different catalogs")


@router.get(
    "", response_model=AgentCatalog, summary="List agents and tools", responses=error_responses(401, 503)
)
async def list_agents(owner: Tenant, svc: ServicesDep) -> AgentCatalog:
    """The agents and tools the live workers serve. Empty while no worker runs: tasks
    submitted then are accepted and wait for one."""
    catalog = await read_catalog(svc.redis, svc.settings.streams.keys, svc.queue.name)
    return AgentCatalog(**catalog.view())


async def check_served(svc: Services, request: TaskRequest) -> None:
    """Raise 422 naming what exists when no live worker serves the request's agent or
    tools (nothing is refused while no worker is live)."""
    catalog = await svc.catalog.get(svc.redis, svc.settings.streams.keys, svc.queue.name)
    refusal = catalog.refusal(request.agent, request.tools)
    if refusal is not None:
        raise ApiError(422, refusal)
