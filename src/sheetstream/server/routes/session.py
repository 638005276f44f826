"""``/session``: the page's sign-in. ``POST`` exchanges a token for a session cookie (HttpOnly, SameSite=Strict,
Secure over HTTPS, signed), ``GET`` says who is signed in and gives the page its CSRF token, ``DELETE`` signs
out (the session ends on the server: its cookie no longer works anywhere)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ...access import Identity
from ...errors import Forbidden, UnsupportedMediaType
from ..auth import SESSION_COOKIE, SESSION_SECONDS, Gate, same_origin
from ..deps import Caller, GateDep, SettingsDep

router = APIRouter()


class SignIn(BaseModel):
    token: str


def describe(identity: Identity, gate: Gate, tables: tuple[str, ...]) -> dict:
    return {
        "name": identity.name,
        "kind": identity.kind,
        "admin": identity.admin,
        "auth": gate.access.auth,
        "grants": {table: identity.grants.on(table) for table in tables if identity.grants.on(table)},
        "csrf": gate.csrf_token(identity) if identity.ambient else None,
    }


@router.get("/session")
async def who_am_i(caller: Caller, gate: GateDep, settings: SettingsDep) -> dict:
    """Who is calling, what they may do on each served table, and (for the page) the CSRF token."""
    return describe(caller, gate, settings.tables)


@router.post("/session")
async def sign_in(request: Request, body: SignIn, gate: GateDep, settings: SettingsDep) -> JSONResponse:
    """Exchange ``{"token": ...}`` for a session cookie. JSON only (a cross-site form cannot send it), and only
    from this server's own page."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("send {\"token\": \"...\"} as application/json")
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site") in ("same-site", "cross-site") or (origin and not same_origin(origin, request)):
        raise Forbidden("refused: sign in from this server's own page", reason="csrf")
    if not gate.access.auth:
        return JSONResponse(describe(await run_in_threadpool(gate.identify, request), gate, settings.tables))
    token = await run_in_threadpool(gate.token_identity, body.token.strip())
    cookie, session = gate.open_session(token)
    response = JSONResponse(describe(session, gate, settings.tables))
    response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_SECONDS, path="/", httponly=True, samesite="strict",
                        secure=gate.secure(request))
    return response


@router.delete("/session")
async def sign_out(request: Request, caller: Caller, gate: GateDep) -> JSONResponse:
    """End the session on the server (its cookie is refused from now on, by every instance), and drop the cookie."""
    if caller.kind == "session":
        await run_in_threadpool(gate.end_session, caller, request.cookies[SESSION_COOKIE])
    response = JSONResponse({"signed_out": caller.name})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=gate.secure(request))
    return response

