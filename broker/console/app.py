"""The console as one ASGI application, and serving it on loopback.

:func:`create_app` puts the parts together (pages, static files, the
refusal pages, the protective headers, the host check); :func:`serve`
runs it under uvicorn in the running event loop until ``stop`` is set, so
``ixb console`` and ``ixb demo --console`` can run it beside an enforcer.

Until the identities of the security issue land (mTLS per party), the
console listens on loopback only: :func:`serve` refuses any other address,
and requests naming another host (DNS rebinding) are refused too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from broker.console.feeds import FeedHub
from broker.console.pages import analyst, auditor, liaison, login, operator
from broker.console.sources import ConsoleSources
from broker.console.users import Authenticator
from broker.console.web import (
    HERE,
    ConsoleState,
    SecurityHeaders,
    refused,
    templates,
    unavailable,
)
from broker.errors import ConfigurationError, IxbError

__all__ = ["create_app", "require_loopback", "serve"]

LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


def create_app(sources: ConsoleSources, authenticator: Authenticator) -> Starlette:
    state = ConsoleState(
        sources=sources,
        authenticator=authenticator,
        templates=templates(),
        feeds=FeedHub(sources),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await state.feeds.close()

    app = Starlette(
        routes=[
            *login.routes,
            *analyst.routes,
            *liaison.routes,
            *auditor.routes,
            *operator.routes,
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=[*LOOPBACK_NAMES, "testserver"]),
        ],
        exception_handlers={HTTPException: refused, IxbError: unavailable},
        lifespan=lifespan,
    )
    app.state.console = state
    return app


def require_loopback(host: str) -> None:
    """ConfigurationError unless ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigurationError(
            f"the console listens on loopback only until party identities (mTLS) exist; "
            f"{host!r} is not a loopback address"
        )


async def serve(
    app: Starlette,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    on_listening: Callable[[str, int], None] | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` (0: a free port) until ``stop`` is set."""
    require_loopback(host)
    config = uvicorn.Config(
        app,
        host=host.strip("[]"),
        port=port,
        log_level="warning",
        access_log=False,  # paths name nations and deliveries: structlog records what matters
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind
                    task.result()
                raise ConfigurationError(f"the console could not listen on {host}:{port}")
            await asyncio.sleep(0.05)
        bound = server.servers[0].sockets[0].getsockname()
        if on_listening is not None:
            on_listening(str(bound[0]), int(bound[1]))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
