"""Bearer keys, tenants, and the viewer's session cookies.

Each key belongs to one tenant. Keys are kept only as SHA-256 digests and every request
compares its digest against *all* of them with ``hmac.compare_digest``, so the time taken
says nothing about which key (or which prefix of a key) was close. With no keys configured
the API runs in open dev mode as tenant ``default`` and may bind to loopback only.

A browser's ``EventSource`` cannot send an ``Authorization`` header, so the viewer (``/ui``)
trades a key for a session cookie once (:class:`UiSessions`). The cookie holds no key: only
the tenant, an expiry and an HMAC-SHA256 signature by a server secret. It is HttpOnly and
SameSite=Strict, and it authenticates reads only (GET/HEAD): with a cookie a browser can
watch tasks, never submit or cancel one.

**Answering from the viewer** is opt-in per login: a session asked for with
``can_answer`` carries the scope ``answer`` in its signed token, and only such a session
may approve, deny or answer a waiting task, through ``POST /ui/tasks/{id}/input`` alone
(:func:`check_same_origin`, plus a CSRF token: :meth:`UiSessions.csrf_token`, an HMAC of
the session cookie by the server secret, handed to the page by ``GET /ui/session`` and
sent back in ``X-CSRF-Token``, compared with ``hmac.compare_digest``). The cookie alone,
without the token the page read same-origin, cannot answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass

from agentstream.api.errors import ApiError
from agentstream.api.settings import ApiSettings
from agentstream.streams import UsageError

__all__ = [
    "ANSWER_SCOPE",
    "CSRF_HEADER",
    "OPEN_TENANT",
    "SESSION_COOKIE",
    "ApiKeys",
    "Session",
    "UiSessions",
    "check_bind",
    "check_same_origin",
    "is_loopback",
]

OPEN_TENANT = "default"
#: the viewer's session cookie
SESSION_COOKIE = "agentstream_session"
#: the scope of a viewer session that may answer waiting tasks
ANSWER_SCOPE = "answer"
#: the header that carries the viewer's CSRF token
CSRF_HEADER = "X-CSRF-Token"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """The configured keys, as digests."""

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self._digests = [(tenant, _digest(key)) for tenant, key in pairs]

    @property
    def open_mode(self) -> bool:
        return not self._digests

    @property
    def tenants(self) -> frozenset[str]:
        return frozenset(tenant for tenant, _ in self._digests)

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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    """What a valid session token says."""

    tenant: str
    can_answer: bool = False


class UiSessions:
    """Signed session tokens ``<tenant, base64url>.<expiry, unix s>[.answer].<signature>``.

    A token is valid until its expiry, and only while its tenant still has a key: dropping
    a tenant's keys (and restarting) ends its sessions; a new ``secret`` ends them all.
    """

    def __init__(self, secret: bytes, ttl_s: float, tenants: frozenset[str]) -> None:
        if len(secret) < 16:
            raise UsageError("the session secret must have at least 16 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        self._tenants = tenants

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, f"agentstream-ui-v1|{body}".encode(), hashlib.sha256).digest())

    def issue(self, tenant: str, now: float | None = None, *, can_answer: bool = False) -> str:
        """A token for ``tenant``, valid for ``ttl_s`` from ``now``; ``can_answer`` adds
        the scope that lets the viewer answer waiting tasks."""
        expiry = int((time.time() if now is None else now) + self.ttl_s)
        body = f"{_b64(tenant.encode())}.{expiry}" + (f".{ANSWER_SCOPE}" if can_answer else "")
        return f"{body}.{self._sign(body)}"

    def session_of(self, token: str, now: float | None = None) -> Session | None:
        """What a valid, unexpired token says; ``None`` for anything else."""
        body, _, signature = token.rpartition(".")
        if not body or not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        encoded, _, rest = body.partition(".")
        expiry, _, scope = rest.partition(".")
        try:
            tenant = _unb64(encoded).decode()
            expired = int(expiry) <= (time.time() if now is None else now)
        except (ValueError, binascii.Error):
            return None
        if expired or tenant not in self._tenants or scope not in ("", ANSWER_SCOPE):
            return None
        return Session(tenant, can_answer=scope == ANSWER_SCOPE)

    def tenant_of(self, token: str, now: float | None = None) -> str | None:
        """The tenant of a valid, unexpired token; ``None`` for anything else."""
        session = self.session_of(token, now)
        return session.tenant if session is not None else None

    def csrf_token(self, session_token: str) -> str:
        """The CSRF token bound to one session cookie (in open mode, to no session: ``""``)."""
        return _b64(
            hmac.new(self._secret, f"agentstream-csrf-v1|{session_token}".encode(), hashlib.sha256).digest()
        )

    def check_csrf(self, session_token: str, presented: str | None) -> None:
        """:class:`ApiError` 403 unless ``presented`` is the session's CSRF token."""
        expected = self.csrf_token(session_token).encode()
        if not presented or not hmac.compare_digest(presented.encode(), expected):
            raise ApiError(403, f"missing or wrong {CSRF_HEADER}: answer from the viewer page", code="csrf")

    def authenticate(self, token: str) -> str:
        """The tenant of a session cookie, or :class:`ApiError` 401."""
        tenant = self.tenant_of(token)
        if tenant is None:
            raise _unauthorized("the viewer session expired or is invalid: log in again")
        return tenant


def check_same_origin(origin: str | None, fetch_site: str | None, own_origin: str) -> None:
    """:class:`ApiError` 403 unless a browser says the request comes from this origin: a
    ``Sec-Fetch-Site`` other than ``same-origin`` is refused, and so is an ``Origin`` other
    than ``own_origin``; a request that sends neither is refused too (every browser sends
    ``Origin`` on a POST made by ``fetch``)."""
    if fetch_site is not None and fetch_site != "same-origin":
        raise ApiError(403, f"cross-site request refused (Sec-Fetch-Site: {fetch_site})", code="csrf")
    if origin is None and fetch_site is None:
        raise ApiError(403, "request without Origin refused: answer from the viewer page", code="csrf")
    if origin is not None and origin.rstrip("/").lower() != own_origin.rstrip("/").lower():
        raise ApiError(403, f"cross-origin request refused (Origin: {origin})", code="csrf")


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
