"""Settings of the HTTP service, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentstream.streams import StreamsSettings, UsageError
from agentstream.streams.keys import validate_tenant
from agentstream.streams.settings import env_number
from agentstream.worker.enqueue import resolve_queue_name

__all__ = ["ApiSettings", "parse_api_keys"]


def parse_api_keys(raw: str) -> tuple[tuple[str, str], ...]:
    """``"tenant:key,tenant2:key2"`` → ``(("tenant", "key"), ("tenant2", "key2"))``."""
    pairs: list[tuple[str, str]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        tenant, sep, key = item.partition(":")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not tenant or not key:
            raise UsageError("AGENTSTREAM_API_KEYS must look like 'tenant:key,tenant2:key2'")
        pairs.append((tenant, key))
    return tuple(pairs)


@dataclass(frozen=True)
class ApiSettings:
    """Everything the HTTP service needs; every network await uses one of these timeouts
    (or the Redis client's own, from ``streams``)."""

    streams: StreamsSettings = field(default_factory=StreamsSettings)
    #: ``(tenant, key)`` pairs; empty means open dev mode (tenant ``default``, loopback only)
    api_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    #: Redis URL of the arq queue (defaults to the streams Redis; arq cannot use a Cluster)
    queue_url: str | None = None
    #: the arq queue; ``None``: the worker's default, ``<prefix>:queue`` (both must agree)
    queue_name: str | None = None
    #: submits per minute and tenant (token bucket); 0 disables the limit
    rate_limit_per_min: float = 120
    #: request bodies above this are refused with 413 before they are parsed
    max_body_bytes: int = 1_048_576
    #: seconds of silence after which an SSE stream sends a ``: ping`` comment
    ping_interval_s: float = 15.0
    #: frames queued per SSE client between the stream and the socket
    sse_buffer: int = 64
    #: a client whose buffer stays full this long is disconnected (it resumes by cursor)
    sse_slow_client_s: float = 10.0
    #: each SSE response ends (between frames) after this long and the client resumes by
    #: cursor, so long-lived streams rebalance across API processes; 0: no limit
    sse_max_duration_s: float = 0.0
    #: the ``retry:`` reconnection delay sent at the start of each SSE response; 0: none
    #: is sent and browsers wait their default (about 3 s)
    sse_retry_ms: int = 0
    #: the reader hub pauses this long after each batch it delivered, so the entries of
    #: many trickling streams gather into fewer reads and writes (API CPU per delivery
    #: 16 -> 12 us at 500 clients, one run on a busy 2-core box); a delivery waits at most
    #: this much longer; 0: no pause
    hub_linger_ms: int = 10
    #: live SSE responses at most (503 beyond)
    max_sse_clients: int = 10_000
    #: live SSE responses of one tenant at most (429 beyond), so that one tenant cannot
    #: take every slot of the process
    max_sse_clients_per_tenant: int = 1_000
    #: live consumer-group SSE responses at most: each holds a pooled Redis connection
    max_group_streams: int = 32
    #: a group consumer claims entries idle this long in a dead consumer
    group_min_idle_ms: int = 30_000
    group_max_deliveries: int = 5
    #: consumer groups one task's stream may have (409 for one more): every read through a
    #: new group name creates a group
    max_groups_per_task: int = 16
    #: a connection whose request headers are not complete this long after it opened (or
    #: after its previous response) is closed (slowloris)
    header_timeout_s: float = 10.0
    #: a request body that has not fully arrived this long after its headers is refused:
    #: the connection is closed
    body_timeout_s: float = 30.0
    #: timeout of each readiness probe
    probe_timeout_s: float = 2.0
    #: recent entries scanned backwards for a task's ``result``/``error``
    result_scan: int = 100
    #: task-feed entries one ``GET /v1/tasks`` scans at most (all tenants share the feed)
    task_list_scan: int = 5_000
    #: signs the viewer's session cookies; ``None``: a random secret per process (sessions
    #: end with it, and several API processes need one shared secret)
    ui_secret: str | None = field(default=None, repr=False)
    #: lifetime of a viewer session cookie
    ui_session_s: float = 8 * 3600

    def __post_init__(self) -> None:
        for tenant, _ in self.api_keys:
            validate_tenant(tenant)  # part of every Redis key of its tasks: {<tenant>/<task id>}
        if min(self.sse_buffer, self.max_sse_clients, self.max_sse_clients_per_tenant) < 1:
            raise UsageError("sse_buffer, max_sse_clients and max_sse_clients_per_tenant must be >= 1")
        if self.max_group_streams < 1 or self.max_groups_per_task < 1:
            raise UsageError("max_group_streams and max_groups_per_task must be >= 1")
        if self.header_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise UsageError("header_timeout_s and body_timeout_s must be > 0")
        if self.ping_interval_s <= 0 or self.sse_slow_client_s <= 0:
            raise UsageError("ping_interval_s and sse_slow_client_s must be > 0")
        if self.sse_max_duration_s < 0 or self.sse_retry_ms < 0 or self.hub_linger_ms < 0:
            raise UsageError(
                "sse_max_duration_s, sse_retry_ms and hub_linger_ms must be >= 0 (0 turns them off)"
            )
        if self.ui_secret is not None and len(self.ui_secret) < 16:
            raise UsageError("AGENTSTREAM_UI_SECRET must have at least 16 characters")
        if self.ui_session_s <= 0 or self.task_list_scan < 1:
            raise UsageError("ui_session_s must be > 0 and task_list_scan >= 1")

    @property
    def open_mode(self) -> bool:
        """No API keys: every request is tenant ``default`` (bind to loopback only)."""
        return not self.api_keys

    @property
    def resolved_queue_url(self) -> str:
        return self.queue_url or self.streams.redis_url

    @property
    def resolved_queue_name(self) -> str:
        return self.queue_name or resolve_queue_name(self.streams.keys, {})

    @property
    def group_block_ms(self) -> int:
        """Blocking XREADGROUP time of a group stream: it runs on a pooled connection, so it
        must end well within the socket timeout of ordinary commands."""
        return max(10, min(self.streams.block_ms, int(self.streams.command_timeout_s * 500)))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ApiSettings:
        """Read the streams settings plus ``AGENTSTREAM_API_KEYS``, ``AGENTSTREAM_RATE_LIMIT``
        (submits/min), ``AGENTSTREAM_QUEUE_URL``, ``AGENTSTREAM_QUEUE`` (as the worker reads it),
        ``AGENTSTREAM_SSE_PING_S``, ``AGENTSTREAM_SSE_BUFFER``, ``AGENTSTREAM_SSE_SLOW_CLIENT_S``,
        ``AGENTSTREAM_SSE_MAX_DURATION_S``, ``AGENTSTREAM_SSE_RETRY_MS``, ``AGENTSTREAM_HUB_LINGER_MS``,
        ``AGENTSTREAM_MAX_SSE_CLIENTS``, ``AGENTSTREAM_MAX_SSE_CLIENTS_PER_TENANT``,
        ``AGENTSTREAM_MAX_GROUP_STREAMS``, ``AGENTSTREAM_MAX_GROUPS_PER_TASK``,
        ``AGENTSTREAM_HEADER_TIMEOUT_S``,
        ``AGENTSTREAM_BODY_TIMEOUT_S``, ``AGENTSTREAM_MAX_BODY_BYTES``,
        ``AGENTSTREAM_GROUP_MIN_IDLE_MS``, ``AGENTSTREAM_UI_SECRET`` and
        ``AGENTSTREAM_UI_SESSION_S``; keyword overrides win."""
        env = os.environ if env is None else env
        streams = StreamsSettings.from_env(env)
        values: dict[str, Any] = {
            "streams": streams,
            "api_keys": parse_api_keys(env.get("AGENTSTREAM_API_KEYS", "")),
            "queue_url": env.get("AGENTSTREAM_QUEUE_URL") or None,
            "queue_name": resolve_queue_name(streams.keys, env),
            "rate_limit_per_min": env_number(env, "AGENTSTREAM_RATE_LIMIT", cls.rate_limit_per_min),
            "ping_interval_s": env_number(env, "AGENTSTREAM_SSE_PING_S", cls.ping_interval_s, minimum=0.01),
            "sse_buffer": int(env_number(env, "AGENTSTREAM_SSE_BUFFER", cls.sse_buffer, minimum=1)),
            "sse_slow_client_s": env_number(
                env, "AGENTSTREAM_SSE_SLOW_CLIENT_S", cls.sse_slow_client_s, minimum=0.01
            ),
            "sse_max_duration_s": env_number(env, "AGENTSTREAM_SSE_MAX_DURATION_S", cls.sse_max_duration_s),
            "sse_retry_ms": int(env_number(env, "AGENTSTREAM_SSE_RETRY_MS", cls.sse_retry_ms)),
            "hub_linger_ms": int(env_number(env, "AGENTSTREAM_HUB_LINGER_MS", cls.hub_linger_ms)),
            "max_sse_clients": int(
                env_number(env, "AGENTSTREAM_MAX_SSE_CLIENTS", cls.max_sse_clients, minimum=1)
            ),
            "max_sse_clients_per_tenant": int(
                env_number(
                    env, "AGENTSTREAM_MAX_SSE_CLIENTS_PER_TENANT", cls.max_sse_clients_per_tenant, minimum=1
                )
            ),
            "max_group_streams": int(
                env_number(env, "AGENTSTREAM_MAX_GROUP_STREAMS", cls.max_group_streams, minimum=1)
            ),
            "max_groups_per_task": int(
                env_number(env, "AGENTSTREAM_MAX_GROUPS_PER_TASK", cls.max_groups_per_task, minimum=1)
            ),
            "header_timeout_s": env_number(
                env, "AGENTSTREAM_HEADER_TIMEOUT_S", cls.header_timeout_s, minimum=0.1
            ),
            "body_timeout_s": env_number(env, "AGENTSTREAM_BODY_TIMEOUT_S", cls.body_timeout_s, minimum=0.1),
            "max_body_bytes": int(
                env_number(env, "AGENTSTREAM_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024)
            ),
            "group_min_idle_ms": int(env_number(env, "AGENTSTREAM_GROUP_MIN_IDLE_MS", cls.group_min_idle_ms)),
            "ui_secret": env.get("AGENTSTREAM_UI_SECRET") or None,
            "ui_session_s": env_number(env, "AGENTSTREAM_UI_SESSION_S", cls.ui_session_s, minimum=1),
        }
        values.update(overrides)
        return cls(**values)
