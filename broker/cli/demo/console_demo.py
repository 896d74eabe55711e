"""``ixb demo --console``: after the scenario, the console on it, until Ctrl-C.

The scenario's broker, keys and topics stay up; an enforcer runs again (it
resumes where the scenario's left off, releases the embargoed report when
due and serves its metrics on a free port for the operator's page), and a
new scenario report is published every :data:`TRICKLE_S` seconds so the
feeds move while someone watches. Console users are made for the demo: an
analyst and a liaison officer per nation, an auditor and an operator, all
with one password (:func:`demo_password`), printed with the address.

``ixb demo`` without ``--console`` exits when the scenario is done and
ends with :func:`print_console_hint`: where the console would be, a login
to try and how to serve it. The password is made once per ``IXB_HOME`` and
kept there (0600), so the login ``make demo`` prints is the one
``make console`` accepts; it guards a console on loopback over a throwaway
scenario, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import secrets
import signal
import uuid
from pathlib import Path

from rich.console import Console

from broker.app.assembly import open_publisher
from broker.app.enforcer_process import run_enforcer
from broker.app.settings import Settings
from broker.cli.console_command import DEFAULT_PORT, console_sources, users_path
from broker.cli.demo.scenario import NATIONS, build
from broker.console.app import create_app, serve
from broker.console.users import PasswordFile, Principal, Role
from broker.errors import ConfigurationError

__all__ = ["demo_password", "print_console_hint", "serve_demo_console"]

TRICKLE_S = 20.0


def demo_password(home: Path) -> str:
    """The demo console's password: made at first use, then read from ``home`` (0600)."""
    path = home / "console" / "demo-password"
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = ""
    except OSError as exc:
        raise ConfigurationError(f"cannot read the demo console's password file {path}") from exc
    if kept:
        return kept
    password = secrets.token_urlsafe(12)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(password + "\n")
    except OSError as exc:
        raise ConfigurationError(f"cannot keep the demo console's password in {path}") from exc
    return password


def print_console_hint(console: Console, password: str) -> None:
    """How to see what ``ixb demo`` just did in the browser console (it does not serve it)."""
    console.rule("[bold]The console")
    console.print(
        "[bold]make console[/bold] (or [bold]ixb demo --console[/bold]) plays this scenario "
        f"again and serves the browser console on [bold]http://127.0.0.1:{DEFAULT_PORT}/[/bold] "
        "(a free port if that one is taken; it says which) until Ctrl-C"
    )
    _print_login(console, password)


def _print_login(console: Console, password: str) -> None:
    console.print(
        f"log in as [bold]be-analyst[/bold] with password [bold]{password}[/bold] "
        "(or nl-analyst, de-analyst, …, nl-liaison, auditor, operator: the same password)"
    )


def _users(settings: Settings, password: str) -> PasswordFile:
    users = PasswordFile(users_path(settings))
    for nation in NATIONS:
        users.add(Principal(f"{nation.lower()}-analyst", Role.ANALYST, nation), password)
        users.add(Principal(f"{nation.lower()}-liaison", Role.LIAISON, nation), password)
    users.add(Principal("auditor", Role.AUDITOR), password)
    users.add(Principal("operator", Role.OPERATOR), password)
    return users


async def _trickle(settings: Settings, bootstrap: str) -> None:
    """One scenario report after another, as new, from its own nation; until cancelled."""
    scenario = build(seed=11)
    for nation, report in itertools.cycle(
        [(n, r) for n, reports in scenario.reports.items() for r in reports]
    ):
        await asyncio.sleep(TRICKLE_S)
        now = dt.datetime.now(dt.UTC)
        fresh = report.model_copy(
            update={"report_id": uuid.uuid4(), "issued_at": now, "observed_at": now}
        )
        async with open_publisher(settings, bootstrap, nation) as publisher:
            await publisher.publish([fresh])


async def serve_demo_console(
    settings: Settings,
    bootstrap: str,
    console: Console,
    *,
    password: str,
    port: int = DEFAULT_PORT,
) -> None:
    """The console (on ``port``, or a free one if it is taken) until SIGINT or SIGTERM."""
    settings = settings.model_copy(update={"metrics_addr": "127.0.0.1:0"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    probes: list[str] = []
    started = asyncio.Event()
    enforcer = asyncio.create_task(
        run_enforcer(
            settings,
            bootstrap,
            stop,
            started=started,
            on_listening=lambda address: probes.append(f"{address[0]}:{address[1]}"),
        )
    )
    await asyncio.wait_for(started.wait(), timeout=30)
    users = _users(settings, password)
    app = create_app(console_sources(settings, bootstrap, probes), users)
    trickle = asyncio.create_task(_trickle(settings, bootstrap))

    def listening(host: str, bound: int) -> None:
        console.rule("[bold]The console")
        console.print(f"open [bold]http://{host}:{bound}/[/bold] in a browser on this machine")
        _print_login(console, password)
        console.print(f"a new report is published every {TRICKLE_S:.0f} s; Ctrl-C stops the demo")

    try:
        try:
            await serve(app, "127.0.0.1", port, stop, on_listening=listening)
        except ConfigurationError:
            if stop.is_set():
                raise
            await serve(app, "127.0.0.1", 0, stop, on_listening=listening)  # the port is taken
    finally:
        stop.set()
        trickle.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trickle
        await enforcer
