"""What every page shares: the console's state, who is asking, templates and safe headers.

Access is decided in one place, :func:`allow`: a page names the role it is
for and, for a nation's page, the nation; anyone else gets 403 with a page
that names nothing of what was asked for. Someone not logged in is sent to
the login page (or gets 401 for an event stream or a JSON document).

Every response carries a Content-Security-Policy that lets the page load
nothing but this console's own files (no CDN, no fonts, no other origin,
no inline script), so a page cannot make the browser reach off the machine;
and ``no-store``, so a shared machine's cache keeps no report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.console.feeds import FeedHub
from broker.console.sessions import LoginThrottle, Session, Sessions
from broker.console.sources import ConsoleSources
from broker.console.users import Authenticator, Principal, Role

__all__ = [
    "COOKIE",
    "ConsoleState",
    "SecurityHeaders",
    "allow",
    "page",
    "session_of",
    "state_of",
]

log = structlog.get_logger("ixb.console")

COOKIE = "ixb_console"
HERE = Path(__file__).resolve().parent

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'self'; "
    "base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]

# Where each role starts, and the sections it may open (the navigation shows these only).
START = {
    Role.ANALYST: "/analyst",
    Role.LIAISON: "/liaison",
    Role.AUDITOR: "/audit",
    Role.OPERATOR: "/operator",
}


@dataclass
class ConsoleState:
    """The console's parts, built once per process."""

    sources: ConsoleSources
    authenticator: Authenticator
    templates: jinja2.Environment
    feeds: FeedHub
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


def state_of(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def session_of(request: Request) -> Session | None:
    return state_of(request).sessions.get(request.cookies.get(COOKIE))


def allow(request: Request, role: Role, nation: str | None = None) -> Session:
    """The session, if its principal has ``role`` (and acts for ``nation``); else refuse."""
    session = session_of(request)
    if session is None:
        raise HTTPException(401, "log in first")
    principal = session.principal
    if principal.role is not role or (nation is not None and principal.nation != nation):
        log.warning(
            "console_refused",
            user=principal.name,
            role=principal.role.value,
            path=request.url.path,
        )
        raise HTTPException(403, "not yours")
    return session


def templates() -> jinja2.Environment:
    """Autoescaping templates from this package, with the filters the pages use."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["tlp_class"] = _tlp_class
    return environment


def _when(value: dt.datetime | None, precision: str = "minutes") -> str:
    if value is None:
        return "—"
    return value.astimezone(dt.UTC).isoformat(sep=" ", timespec=precision).replace("+00:00", " UTC")


def _tlp_class(marking: str) -> str:
    """``TLP:AMBER+STRICT`` → ``tlp-amber-strict``, for the marking's colours."""
    return "tlp-" + marking.removeprefix("TLP:").lower().replace("+", "-")


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> HTMLResponse:
    """A whole page, with the logged-in principal and the form token in its context."""
    session = session_of(request)
    principal: Principal | None = session.principal if session else None
    body = (
        state_of(request)
        .templates.get_template(template)
        .render(
            principal=principal,
            csrf=session.csrf if session else "",
            start=START.get(principal.role) if principal else "/login",
            path=request.url.path,
            **(context or {}),
        )
    )
    return HTMLResponse(body, status_code=status)


async def refused(request: Request, exc: Exception) -> Response:
    """401 goes to the login page (pages) or stays 401 (streams, JSON); others get a plain page."""
    assert isinstance(exc, HTTPException)
    wants_page = "text/html" in request.headers.get("accept", "") or request.method == "GET"
    if (
        exc.status_code == 401
        and wants_page
        and not request.url.path.endswith((".json", "/events"))
    ):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    titles = {
        401: "Please log in",
        403: "Not yours to see",
        404: "Not found",
        405: "Not allowed",
        400: "Not understood",
    }
    return page(
        request,
        "error.html",
        {"status": exc.status_code, "title": titles.get(exc.status_code, "Refused")},
        status=exc.status_code,
    )


async def unavailable(request: Request, exc: Exception) -> Response:
    """An ixb error behind a page (Kafka unreachable, policy files that do not load): 503.

    The page says so in fixed words; what went wrong is logged by its kind,
    never shown, so no detail of the deployment reaches a browser.
    """
    log.warning("console_unavailable", path=request.url.path, error_kind=type(exc).__name__)
    return page(
        request, "error.html", {"status": 503, "title": "Not available just now"}, status=503
    )


class SecurityHeaders:
    """ASGI middleware: the same protective headers on every response, streams included."""

    __slots__ = ("_app",)

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}  # a response may set its own CSP
                headers += [(k, v) for k, v in _HEADERS if k not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self._app(scope, receive, with_headers)


Handler = Callable[[Request], Awaitable[Response]]
