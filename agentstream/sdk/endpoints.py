"""One JSON request with its retries, and the URL paths of the API."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from agentstream.sdk.errors import AgentStreamConnectionError, AgentStreamError, Retryable, check, give_up
from agentstream.sdk.stream import StreamOptions

__all__ = ["events_path", "request_json", "seg"]

JsonObject = dict[str, Any]


def seg(value: str) -> str:
    """One URL path segment; refuses what would change the path."""
    if not value or "/" in value:
        raise ValueError(f"invalid path segment {value!r}")
    return quote(value, safe="")


def events_path(task_id: str) -> str:
    """The events endpoint of one task."""
    return f"/v1/tasks/{seg(task_id)}/events"


async def request_json(
    http: httpx.AsyncClient,
    options: StreamOptions,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    retry_server_errors: bool = True,
) -> JsonObject:
    """One JSON request, retried on 429, and on 5xx and dropped connections when
    ``retry_server_errors`` says a repeat is safe (a refused connection always is)."""
    failures = 0
    while True:
        try:
            response = await http.request(method, path, json=json_body, params=params, headers=headers)
            check(response, response.content)
            payload = response.json() if response.content else {}
            return payload if isinstance(payload, dict) else {"value": payload}
        except Retryable as exc:
            if exc.status >= 500 and not retry_server_errors:
                raise AgentStreamError(exc.status, f"http_{exc.status}", exc.reason) from None
            last = exc
        except httpx.TransportError as exc:
            if not retry_server_errors and not isinstance(exc, httpx.ConnectError):
                raise AgentStreamConnectionError(0, "transport_error", repr(exc)) from exc
            last = Retryable(0, repr(exc))
        if failures >= options.max_reconnects:
            raise give_up(last, failures)
        await asyncio.sleep(options.backoff.wait_s(failures, last))
        failures += 1
