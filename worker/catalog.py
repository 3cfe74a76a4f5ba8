"""The catalog: which agents and tools the live workers of a queue serve.

Each worker publishes what its App serves (:meth:`App.describe`: agents with kind, model
and tool names; tools with their JSON schemas; a hash of the whole) as one field of the
queue's catalog hash (``Keys.catalog``) when it starts, refreshes it every ``ttl_s / 3``
while alive and removes it when it stops. An entry whose ``expires_at`` passed is a dead
worker's and counts for nothing. The API reads the catalog to list it (``GET /v1/agents``)
and to refuse, at submit, what no live worker serves.

Rules (documented in docs/protocol.md):

- a request is accepted when *every* live worker of the queue serves its agent and tools,
  since any of them may take the job; workers whose catalogs differ (different apps on
  one queue, or a rolling deploy) are a conflict: each such worker logs an error and the
  catalog lists it, and only what all of them serve is accepted. Give different apps
  different queues (``AGENTSTREAM_QUEUE``) to route by queue instead;
- with no live worker, any well-formed request is accepted and waits in the queue: tasks
  submitted before the workers start still run (and fail with a clear error if the
  worker that takes them does not serve their agent).

Light on purpose (Redis, orjson): the API imports it without the agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from agentstream.streams.connection import RedisClient
from agentstream.streams.errors import REDIS_FAILURES
from agentstream.streams.keys import Keys

if TYPE_CHECKING:
    from agentstream.worker.app.core import App
    from agentstream.worker.deps import WorkerDeps

__all__ = [
    "CATALOG_TTL_S",
    "Catalog",
    "CatalogCache",
    "CatalogPublisher",
    "WorkerEntry",
    "catalog_hash",
    "read_catalog",
    "start_publishing",
]

logger = logging.getLogger(__name__)

#: how long a worker's entry counts after its last refresh (refreshed every third of it)
CATALOG_TTL_S = 30.0
#: how long the API trusts a catalog it read: one Redis read per second at most
_CACHE_S = 1.0


def catalog_hash(document: Mapping[str, Any]) -> str:
    """A stable hash of what a worker serves (its agents and tools, not its identity)."""
    body = {"agents": document.get("agents", []), "tools": document.get("tools", [])}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class WorkerEntry:
    """One worker's published catalog."""

    worker_id: str
    hash: str
    expires_at: float
    published_at: float
    app: str | None = None
    agents: tuple[dict[str, Any], ...] = ()
    tools: tuple[dict[str, Any], ...] = ()

    @classmethod
    def parse(cls, worker_id: str, raw: str | bytes) -> WorkerEntry | None:
        """The entry stored under ``worker_id``; None when it is not one of ours."""
        try:
            data = orjson.loads(raw)
            return cls(
                worker_id=worker_id,
                hash=str(data["hash"]),
                expires_at=float(data["expires_at"]),
                published_at=float(data["published_at"]),
                app=data.get("app"),
                agents=tuple(data.get("agents") or ()),
                tools=tuple(data.get("tools") or ()),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def agent(self, name: str) -> dict[str, Any] | None:
        return next((agent for agent in self.agents if agent.get("name") == name), None)


@dataclass(frozen=True, slots=True)
class Catalog:
    """The live workers of one queue and what they serve."""

    queue: str
    workers: tuple[WorkerEntry, ...] = ()

    @property
    def conflicts(self) -> list[str]:
        """One line per group of workers serving something different (empty if none)."""
        groups: dict[str, list[str]] = {}
        for worker in self.workers:
            groups.setdefault(worker.hash, []).append(f"{worker.worker_id} (app {worker.app or 'default'})")
        if len(groups) < 2:
            return []
        return [f"catalog {digest}: {', '.join(ids)}" for digest, ids in groups.items()]

    def agent_names(self) -> list[str]:
        """Agents every live worker serves, in the first worker's order."""
        if not self.workers:
            return []
        first, *rest = self.workers
        return [
            agent["name"] for agent in first.agents if all(w.agent(agent["name"]) is not None for w in rest)
        ]

    def refusal(self, agent: str, tools: Sequence[str] | None) -> str | None:
        """Why a request for ``agent`` with ``tools`` cannot run here, or None when it can
        (always None without live workers: the task waits for one)."""
        if not self.workers:
            return None
        served = self.agent_names()
        if agent not in served:
            return f"no live worker serves agent {agent!r}; agents: {', '.join(served) or 'none'}"
        for worker in self.workers:
            entry = worker.agent(agent) or {}
            offered = list(entry.get("tools") or ())
            if entry.get("builtin") and entry.get("kind") == "llm":
                offered = [str(tool["name"]) for tool in worker.tools]  # the llm kind takes none
            missing = [name for name in tools or () if name not in offered]
            if missing:
                return (
                    f"agent {agent!r} has no tool(s) {', '.join(map(repr, missing))} on worker "
                    f"{worker.worker_id}; its tools: {', '.join(offered) or 'none'}"
                )
        return None

    def view(self) -> dict[str, Any]:
        """The JSON of ``GET /v1/agents``."""
        served = set(self.agent_names())
        agents: dict[str, dict[str, Any]] = {}
        tools: dict[str, dict[str, Any]] = {}
        for worker in self.workers:
            for agent in worker.agents:
                item = agents.setdefault(agent["name"], {**agent, "workers": 0})
                item["workers"] += 1
                item["available"] = agent["name"] in served
            for tool in worker.tools:
                tools.setdefault(tool["name"], {**tool, "workers": 0})["workers"] += 1
        hashes = {worker.hash for worker in self.workers}
        return {
            "queue": self.queue,
            "hash": hashes.pop() if len(hashes) == 1 else None,
            "agents": list(agents.values()),
            "tools": list(tools.values()),
            "workers": [
                {
                    "worker_id": w.worker_id,
                    "app": w.app,
                    "hash": w.hash,
                    "published_at": w.published_at,
                    "expires_at": w.expires_at,
                }
                for w in self.workers
            ],
            "conflicts": self.conflicts,
        }


async def read_catalog(redis: RedisClient, keys: Keys, queue: str, *, now: float | None = None) -> Catalog:
    """The live entries of ``queue``'s catalog (expired ones are left out)."""
    raw = await redis.hgetall(keys.catalog(queue))
    now = time.time() if now is None else now
    entries = (WorkerEntry.parse(str(worker_id), value) for worker_id, value in raw.items())
    live = sorted((e for e in entries if e is not None and e.expires_at > now), key=lambda e: e.worker_id)
    return Catalog(queue=queue, workers=tuple(live))


@dataclass(slots=True)
class CatalogCache:
    """The API's view of the catalog, read from Redis at most once per second."""

    max_age_s: float = _CACHE_S
    _cached: dict[str, tuple[float, Catalog]] = field(default_factory=dict)

    async def get(self, redis: RedisClient, keys: Keys, queue: str) -> Catalog:
        now = time.monotonic()
        hit = self._cached.get(queue)
        if hit is not None and now - hit[0] < self.max_age_s:
            return hit[1]
        catalog = await read_catalog(redis, keys, queue)
        self._cached[queue] = (now, catalog)
        return catalog


class CatalogPublisher:
    """Publishes one worker's catalog while it runs: ``async with CatalogPublisher(...)``.

    Entering publishes once (if Redis is unreachable, the refresh retries) and reports
    a conflict with other live workers as an error in the log; a background task
    refreshes the entry every ``ttl_s / 3`` (failures are logged and retried at the next
    tick); leaving stops it and removes the entry.
    """

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        queue: str,
        worker_id: str,
        document: Mapping[str, Any],
        *,
        ttl_s: float = CATALOG_TTL_S,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("the catalog ttl must be positive")
        self._redis = redis
        self._key = keys.catalog(queue)
        self._keys = keys
        self.queue = queue
        self.worker_id = worker_id
        self.document = dict(document)
        self.hash = catalog_hash(document)
        self.ttl_s = ttl_s
        self._task: asyncio.Task[None] | None = None
        self._reported: frozenset[str] = frozenset()

    async def __aenter__(self) -> CatalogPublisher:
        if self._task is not None:
            raise RuntimeError("this catalog publisher is already running")
        try:
            await self.publish()
        except REDIS_FAILURES as exc:  # Redis may come later: the refresh loop keeps trying
            logger.warning("catalog of worker %s not published yet (%r); retrying", self.worker_id, exc)
        self._task = asyncio.create_task(self._refresh(), name=f"agentstream-catalog-{self.worker_id}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop refreshing and remove this worker's entry (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            async with asyncio.timeout(self.ttl_s / 3):
                await self._redis.hdel(self._key, self.worker_id)
        except REDIS_FAILURES as exc:  # the entry expires by itself
            logger.warning("could not remove worker %s from the catalog: %r", self.worker_id, exc)

    async def publish(self) -> Catalog:
        """Write this worker's entry, drop dead workers' entries, report conflicts."""
        now = time.time()
        entry = {**self.document, "hash": self.hash, "published_at": now, "expires_at": now + self.ttl_s}
        async with asyncio.timeout(self.ttl_s / 3):
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(self._key, self.worker_id, orjson.dumps(entry))
            # The key outlives its last worker by one ttl, then Redis drops it.
            pipe.expire(self._key, int(self.ttl_s * 2) + 1)
            pipe.hgetall(self._key)
            *_, raw = await pipe.execute()
            dead = [
                worker for worker, value in raw.items()
                if (parsed := WorkerEntry.parse(str(worker), value)) is None or parsed.expires_at <= now
            ]  # fmt: skip
            if dead:
                await self._redis.hdel(self._key, *dead)
        catalog = await read_catalog(self._redis, self._keys, self.queue, now=now)
        self._report(catalog)
        return catalog

    def _report(self, catalog: Catalog) -> None:
        conflicts = frozenset(catalog.conflicts)
        if conflicts and conflicts != self._reported:
            logger.error(
                "workers on queue %r serve different catalogs; only what all of them serve is "
                "accepted at submit (give different apps different AGENTSTREAM_QUEUE values): %s",
                self.queue, "; ".join(sorted(conflicts)),
            )  # fmt: skip
        self._reported = conflicts

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                await self.publish()
            except REDIS_FAILURES as exc:
                logger.warning("catalog refresh of worker %s failed (%r); retried", self.worker_id, exc)


async def start_publishing(app: App, deps: WorkerDeps, *, ttl_s: float = CATALOG_TTL_S) -> CatalogPublisher:
    """Publish what ``app`` serves with ``deps`` on the worker's queue (worker startup)."""
    document = app.describe(deps.registry, deps.llm.settings.model)
    publisher = CatalogPublisher(
        deps.redis, deps.config.streams.keys, deps.config.queue_name, deps.worker_id, document, ttl_s=ttl_s
    )
    return await publisher.__aenter__()
