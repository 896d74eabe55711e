"""Logging in and out, and the start page that sends each role to its own part."""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from broker.console.web import COOKIE, START, page, session_of, state_of

log = structlog.get_logger("ixb.console")

_MAX_FIELD = 256


async def home(request: Request) -> Response:
    session = session_of(request)
    if session is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(START[session.principal.role], status_code=303)


async def login_form(request: Request) -> Response:
    return page(request, "login.html", {"next": _safe_next(request.query_params.get("next"))})


async def login(request: Request) -> Response:
    state = state_of(request)
    form = await request.form()
    name = str(form.get("name", ""))[:_MAX_FIELD].strip()
    password = str(form.get("password", ""))[:_MAX_FIELD]
    target = _safe_next(str(form.get("next", "")))
    if state.throttle.locked(name):
        log.warning("console_login_locked", user=name)
        return _failed(request, target, "Too many wrong passwords: wait a minute and try again.")
    principal = state.authenticator.authenticate(name, password)
    if principal is None:
        state.throttle.failed(name)
        log.warning("console_login_failed", user=name)
        return _failed(request, target, "That name and password do not match.")
    state.throttle.succeeded(name)
    previous = request.cookies.get(COOKIE)
    state.sessions.close(previous)  # a new session at every login: no fixation
    session = state.sessions.open(principal)
    log.info("console_login", user=principal.name, role=principal.role.value)
    response = RedirectResponse(target or START[principal.role], status_code=303)
    response.set_cookie(
        COOKIE, session.token, httponly=True, samesite="strict", path="/", secure=False
    )
    return response


def _failed(request: Request, target: str, message: str) -> Response:
    return page(request, "login.html", {"next": target, "message": message}, status=401)


async def logout(request: Request) -> Response:
    state = state_of(request)
    session = session_of(request)
    form = await request.form()
    if session is not None and session.csrf_matches(str(form.get("csrf", ""))):
        state.sessions.close(session.token)
        log.info("console_logout", user=session.principal.name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _safe_next(target: str | None) -> str:
    """Only a path on this console: never another site (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return ""
    return target[:_MAX_FIELD]


routes = [
    Route("/", home),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
