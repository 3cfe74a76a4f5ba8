"""The live viewer: ``/ui`` (static HTML, CSS and JS modules, no build step) and its
session cookie (``/ui/session``), since a browser's ``EventSource`` cannot send a bearer
key."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from agentstream.api.auth import OPEN_TENANT, SESSION_COOKIE
from agentstream.api.errors import ApiError
from agentstream.api.schemas import error_responses
from agentstream.api.state import ServicesDep, Tenant

__all__ = ["router"]

router = APIRouter(tags=["ui"])

_FILES = Path(__file__).resolve().parent.parent / "ui"
_ASSETS = {"app.js": "text/javascript", "transcript.js": "text/javascript", "modes.js": "text/javascript",
           "style.css": "text/css"}  # fmt: skip
# The page runs only its own files and talks only to its own origin; nothing from a
# task's events can become markup (the script writes text nodes), and this says so twice.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class UiLogin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, max_length=4096, description="a key of AGENTSTREAM_API_KEYS")


class UiSession(BaseModel):
    tenant: str
    open_mode: bool = Field(description="no API keys configured: no login needed")
    expires_in_s: float | None = Field(default=None, description="lifetime of the new session cookie")


@router.get("/ui", include_in_schema=False)
async def viewer() -> FileResponse:
    """The viewer's page."""
    return FileResponse(_FILES / "index.html", media_type="text/html", headers=_HEADERS)


@router.get("/ui/session", response_model=UiSession, summary="The viewer's session")
async def current_session(owner: Tenant, svc: ServicesDep) -> UiSession:
    """Who the cookie (or bearer key) authenticates; 401 when nobody."""
    return UiSession(tenant=owner, open_mode=svc.keys.open_mode)


@router.post(
    "/ui/session",
    response_model=UiSession,
    summary="Log the viewer in",
    responses=error_responses(401, 422),
)
async def log_in(body: UiLogin, request: Request, response: Response, svc: ServicesDep) -> UiSession:
    """Trade an API key for an HttpOnly, SameSite=Strict session cookie that holds the
    tenant and an expiry, signed by the server (never the key). Read-only: the cookie
    authenticates GET requests only. In open mode no cookie is needed or set."""
    if svc.keys.open_mode:
        return UiSession(tenant=OPEN_TENANT, open_mode=True)
    owner = svc.keys.tenant_of(body.api_key.strip())
    if owner is None:
        raise ApiError(401, "unknown API key")
    response.set_cookie(
        SESSION_COOKIE,
        svc.sessions.issue(owner),
        max_age=int(svc.sessions.ttl_s),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return UiSession(tenant=owner, open_mode=False, expires_in_s=svc.sessions.ttl_s)


@router.delete("/ui/session", status_code=204, summary="Log the viewer out")
async def log_out(request: Request) -> Response:
    """Drop the session cookie (idempotent)."""
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.get("/ui/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """The page's scripts and style sheet; nothing else is served from the folder."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, f"no viewer file {name!r}")
    return FileResponse(_FILES / name, media_type=media_type, headers=_HEADERS)
