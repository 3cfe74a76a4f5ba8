"""The live viewer: ``/ui`` (static HTML, CSS and JS modules, no build step) and its
session cookie (``/ui/session``), since a browser's ``EventSource`` cannot send a bearer
key; and the one write a viewer may make, answering a waiting task
(``POST /ui/tasks/{task_id}/input``), for a session that asked for it at login
(:mod:`agentstream.api.auth` has the rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from agentstream.api.auth import CSRF_HEADER, OPEN_TENANT, SESSION_COOKIE, check_same_origin
from agentstream.api.errors import ApiError
from agentstream.api.routes.inputs import InputAccepted, TaskInput, task_input
from agentstream.api.schemas import error_responses
from agentstream.api.state import Services, ServicesDep, Tenant, owned_task

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
    can_answer: bool = Field(
        default=False, description="let this session approve, deny and answer waiting tasks (else read-only)"
    )


class UiSession(BaseModel):
    tenant: str
    open_mode: bool = Field(description="no API keys configured: no login needed")
    expires_in_s: float | None = Field(default=None, description="lifetime of the new session cookie")
    can_answer: bool = Field(default=False, description="the session may answer waiting tasks")
    csrf_token: str | None = Field(
        default=None, description=f"with can_answer: send it as {CSRF_HEADER} when answering"
    )


def _answering(svc: Services, cookie: str | None) -> tuple[bool, str | None]:
    """Whether the viewer with ``cookie`` may answer, and its CSRF token if so."""
    if svc.keys.open_mode:
        return True, svc.sessions.csrf_token("")
    session = svc.sessions.session_of(cookie) if cookie else None
    if session is None or not session.can_answer or cookie is None:
        return False, None
    return True, svc.sessions.csrf_token(cookie)


@router.get("/ui", include_in_schema=False)
async def viewer() -> FileResponse:
    """The viewer's page."""
    return FileResponse(_FILES / "index.html", media_type="text/html", headers=_HEADERS)


@router.get("/ui/session", response_model=UiSession, summary="The viewer's session")
async def current_session(owner: Tenant, svc: ServicesDep, request: Request) -> UiSession:
    """Who the cookie (or bearer key) authenticates, and whether it may answer waiting
    tasks (then with its CSRF token); 401 when nobody."""
    can_answer, csrf = _answering(svc, request.cookies.get(SESSION_COOKIE))
    return UiSession(tenant=owner, open_mode=svc.keys.open_mode, can_answer=can_answer, csrf_token=csrf)


@router.post(
    "/ui/session",
    response_model=UiSession,
    summary="Log the viewer in",
    responses=error_responses(401, 422),
)
async def log_in(body: UiLogin, request: Request, response: Response, svc: ServicesDep) -> UiSession:
    """Trade an API key for an HttpOnly, SameSite=Strict session cookie that holds the
    tenant and an expiry, signed by the server (never the key). Read-only: the cookie
    authenticates GET requests only; with ``can_answer`` it may also answer waiting tasks
    from the viewer page (``POST /ui/tasks/{id}/input``, with the CSRF token this returns).
    In open mode no cookie is needed or set."""
    if svc.keys.open_mode:
        can_answer, csrf = _answering(svc, None)
        return UiSession(tenant=OPEN_TENANT, open_mode=True, can_answer=can_answer, csrf_token=csrf)
    owner = svc.keys.tenant_of(body.api_key.strip())
    if owner is None:
        raise ApiError(401, "unknown API key")
    token = svc.sessions.issue(owner, can_answer=body.can_answer)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(svc.sessions.ttl_s),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    can_answer, csrf = _answering(svc, token)
    return UiSession(
        tenant=owner, open_mode=False, expires_in_s=svc.sessions.ttl_s, can_answer=can_answer, csrf_token=csrf
    )


@router.post(
    "/ui/tasks/{task_id}/input",
    response_model=InputAccepted,
    summary="Answer a waiting task from the viewer",
    responses=error_responses(400, 401, 403, 404, 409, 503),
)
async def answer_from_viewer(
    task_id: str,
    body: TaskInput,
    request: Request,
    response: Response,
    svc: ServicesDep,
    csrf_token: Annotated[str | None, Header(alias=CSRF_HEADER)] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> InputAccepted:
    """What ``POST /v1/tasks/{id}/input`` does, for the viewer page: a same-origin JSON
    POST (``Origin``/``Sec-Fetch-Site`` checked), by a session that may answer (logged in
    with ``can_answer``), carrying that session's CSRF token. 403 otherwise: the read-only
    cookie, or the cookie alone, cannot answer."""
    check_same_origin(
        request.headers.get("origin"), request.headers.get("sec-fetch-site"),
        f"{request.url.scheme}://{request.url.netloc}",
    )  # fmt: skip
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ApiError(415, "send the answer as application/json")
    cookie = "" if svc.keys.open_mode else request.cookies.get(SESSION_COOKIE, "")
    owner = OPEN_TENANT
    if not svc.keys.open_mode:
        session = svc.sessions.session_of(cookie) if cookie else None
        if session is None:
            raise ApiError(401, "sign in to the viewer first")
        if not session.can_answer:
            raise ApiError(403, "this viewer session is read-only: sign in again with answering allowed")
        owner = session.tenant
    svc.sessions.check_csrf(cookie, csrf_token)
    meta = await owned_task(task_id, owner, svc)
    return await task_input(body, meta, svc, request, response, idempotency_key=idempotency_key)


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
