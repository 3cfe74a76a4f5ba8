"""Bearer keys and tenants.

Each key belongs to one tenant. Keys are kept only as SHA-256 digests and every request
compares its digest against *all* of them with ``hmac.compare_digest``, so the time taken
says nothing about which key (or which prefix of a key) was close. With no keys configured
the API runs in open dev mode as tenant ``default`` and may bind to loopback only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from api.errors import ApiError
from api.settings import ApiSettings
from streams import UsageError

__all__ = ["OPEN_TENANT", "ApiKeys", "check_bind", "is_loopback"]

OPEN_TENANT = "default"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The configured keys, as digests."""

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self._digests = [(tenant, _digest(key)) for tenant, key in pairs]

    @property
    def open_mode(self) -> bool:
        return not self._digests

    def tenant_of(self, key: str) -> str | None:
        """The tenant of ``key``, ``None`` for an unknown key. Constant time in the key."""
        presented = _digest(key)
        found: str | None = None
        for tenant, digest in self._digests:
            if hmac.compare_digest(presented, digest) and found is None:
                found = tenant
        return found

    def authenticate(self, key: str | None) -> str:
        """The tenant of a bearer key, or :class:`ApiError` 401 (any key in open mode)."""
        if self.open_mode:
            return OPEN_TENANT
        if not key or not key.strip():
            raise _unauthorized("missing bearer key: send 'Authorization: Bearer <key>'")
        tenant = self.tenant_of(key.strip())
        if tenant is None:
            raise _unauthorized("unknown API key")
        return tenant


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` and ``::1``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: ApiSettings) -> None:
    """Refuse to serve the open dev mode (no API keys) on anything but loopback.

    The CLI calls it before starting uvicorn; :class:`UsageError` says what to do.
    """
    if settings.open_mode and not is_loopback(host):
        raise UsageError(
            f"refusing to bind {host!r} without API keys: anyone could submit and read tasks. "
            "Set AGENTSTREAM_API_KEYS='tenant:key,...' or bind to 127.0.0.1."
        )
