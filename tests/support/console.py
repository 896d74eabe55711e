"""The console over a test's running exchange: its users, an HTTP client, a served instance."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette

from broker.cli.console_command import console_sources, users_path
from broker.console.app import create_app, serve
from broker.console.users import PasswordFile, Principal, Role
from tests.integration.conftest import Exchange

PASSWORD = "correct horse battery"  # one for every test user: what differs is who they are

USERS = [
    Principal("nl-analyst", Role.ANALYST, "NL"),
    Principal("be-analyst", Role.ANALYST, "BE"),
    Principal("nl-liaison", Role.LIAISON, "NL"),
    Principal("auditor", Role.AUDITOR),
    Principal("operator", Role.OPERATOR),
]


def console_for(exchange: Exchange, probes: list[str] | None = None) -> Starlette:
    """The console of ``exchange``'s deployment, with the test users in a 0600 file."""
    users = PasswordFile(users_path(exchange.settings))
    for principal in USERS:
        users.add(principal, PASSWORD)
    sources = console_sources(exchange.settings, exchange.bootstrap, probes or [])
    return create_app(sources, PasswordFile(users_path(exchange.settings)))


@contextlib.asynccontextmanager
async def client(app: Starlette, user: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app in this event loop, logged in as ``user`` if given."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        if user is not None:
            response = await http.post("/login", data={"name": user, "password": PASSWORD})
            assert response.status_code == 303, response.text
        try:
            yield http
        finally:
            await app.state.console.feeds.close()  # no lifespan under ASGITransport


def csrf(page: str) -> str:
    """The form token of a page the console rendered."""
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None
    return match[1]


@dataclass
class Served:
    url: str
    app: Starlette


@contextlib.asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[Served]:
    """The app on a free loopback port in this event loop, until the block ends."""
    stop = asyncio.Event()
    bound: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(app, "127.0.0.1", 0, stop, on_listening=lambda h, p: bound.set_result((h, p)))
    )
    try:
        host, port = await asyncio.wait_for(bound, 15)
        yield Served(f"http://{host}:{port}", app)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
