"""The ``http_get`` tool: off unless ``AGENTSTREAM_HTTP_GET_ALLOW`` names the hosts it may
reach; every connection (redirects included) goes through a backend that resolves, vets
and connects in one step."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any, Literal

import httpcore
import httpx

from agentstream.worker.errors import HttpGetRefused, ToolError
from agentstream.worker.tools.registry import Tool, tool
from agentstream.worker.tools.settings import ToolSettings, normalise_host

__all__ = ["make_http_get"]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _allow_match(host: str, allow: tuple[str, ...]) -> Literal["explicit", "public"] | None:
    """How `host` is allowed: named explicitly, only if public (`*`), or not at all."""
    wildcard = False
    for entry in allow:
        if entry == "*":
            wildcard = True
        elif host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return "explicit"
    return "public" if wildcard else None


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, vets and connects in one step, so the address checked is the address
    used: a DNS answer that changes between check and connect cannot reach a private
    network (DNS rebinding). Every redirect hop goes through here too."""

    def __init__(self, allow: tuple[str, ...], resolve_timeout_s: float) -> None:
        self._allow = allow
        self._resolve_timeout_s = resolve_timeout_s
        self._inner = httpcore.AnyIOBackend()

    async def vet(self, host: str, port: int) -> list[str]:
        """The addresses `host` may be reached at; raises `HttpGetRefused`."""
        host = normalise_host(host)
        match = _allow_match(host, self._allow)
        if match is None:
            raise HttpGetRefused(
                f"host {host!r} is not allowed; allowed hosts: {', '.join(self._allow)} "
                "(AGENTSTREAM_HTTP_GET_ALLOW)"
            )
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._resolve_timeout_s):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise ToolError(f"cannot resolve {host!r}: {exc}", tool_name="http_get") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if match == "public":
            for address in addresses:
                if not _is_public(address):
                    raise HttpGetRefused(
                        f"host {host!r} resolves to the non-public address {address}; "
                        "list the host explicitly in AGENTSTREAM_HTTP_GET_ALLOW to allow it"
                    )
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.vet(host, port)
        failure: Exception = ToolError(f"no address for {host!r}", tool_name="http_get")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise HttpGetRefused("http_get does not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: _GuardedBackend) -> None:
        super().__init__(trust_env=False)
        # httpx has no public hook for the network backend; replacing the pool it built is
        # the only way to make every connection go through the vetting backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=backend,
        )


def make_http_get(settings: ToolSettings) -> Tool:
    """The `http_get` tool, limited by `settings` (see `ToolSettings`)."""
    allow = settings.http_get_allow
    limit = settings.http_get_max_bytes
    timeout = httpx.Timeout(settings.http_get_timeout_s)

    async def http_get(url: str) -> dict[str, Any]:
        """Fetch a web page or API response over HTTP(S) GET and return its text.

        Only allow-listed hosts can be fetched; long bodies are truncated.
        """
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https"):
            raise HttpGetRefused(f"only http and https URLs are allowed, got {url!r}")
        backend = _GuardedBackend(allow, settings.http_get_timeout_s)
        try:
            async with httpx.AsyncClient(
                transport=_GuardedTransport(backend),
                timeout=timeout,
                follow_redirects=True,
                max_redirects=5,
                trust_env=False,
                headers={"accept-encoding": "identity"},  # no decompression bombs
            ) as client:
                return await _fetch(client, parsed, limit)
        except httpx.HTTPError as exc:
            raise ToolError(f"GET {url} failed: {type(exc).__name__}: {exc}", tool_name="http_get") from None

    return tool(timeout_s=settings.http_get_timeout_s)(http_get)


async def _fetch(client: httpx.AsyncClient, url: httpx.URL, limit: int) -> dict[str, Any]:
    body = bytearray()
    truncated = False
    async with client.stream("GET", url) as response:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                del body[limit:]
                truncated = True
                break
        try:
            text = body.decode(response.encoding or "utf-8", errors="replace")
        except LookupError:
            text = body.decode("utf-8", errors="replace")
        return {
            "url": str(response.url),
            "status": response.status_code,
            "content_type": response.headers.get("content-type", ""),
            "text": text,
            "truncated": truncated,
        }
