"""``ixb console``: serve the browser console on loopback, and manage its users.

``ixb console`` builds the console's typed sources from the settings (the
cluster, topic names, schemas, the registry, the policy directory, the
enforcers' probe addresses) and serves it until Ctrl-C. ``ixb console user
add/list/remove`` keeps the user file (``$IXB_HOME/console/users.json``,
mode 0600, scrypt hashes): one user per nation and role, plus auditors and
operators, until party identities (mTLS) replace passwords.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from broker.app import logs
from broker.app.assembly import load_catalog, resolve_bootstrap
from broker.app.auditing import intake_window
from broker.app.settings import Settings
from broker.auditlog.witness_client import WitnessClient
from broker.auditor.use_cases import Witnessing
from broker.cli.console import console, print_json_line
from broker.console.app import create_app, require_loopback, serve
from broker.console.sources import ConsoleSources, PolicyShelf
from broker.console.users import PasswordFile, Principal, Role
from broker.errors import IxbError
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.wire.topics import TopicNames

__all__ = ["console_app", "console_sources", "users_path"]

DEFAULT_PORT = 8470

console_app = typer.Typer(
    help="The browser console: analysts, liaison officers, auditors and operators.",
    invoke_without_command=True,
)
user_app = typer.Typer(help="The console's users (a 0600 file of scrypt hashes).")
console_app.add_typer(user_app, name="user")
out = console()
err = console(stderr=True)


def users_path(settings: Settings) -> Path:
    return settings.home / "console" / "users.json"


def console_sources(
    settings: Settings, bootstrap: str, probes: list[str] | None = None
) -> ConsoleSources:
    """The console's view of the configured deployment; probes default to IXB_METRICS_ADDR.

    Verification weighs the partners' witnesses (IXB_WITNESSES) and demands
    their quorum (IXB_WITNESS_QUORUM), as ``ixb audit verify`` does.
    """
    catalog = load_catalog(settings)
    chosen = probes if probes else ([settings.metrics_addr] if settings.metrics_addr else [])
    return ConsoleSources(
        bootstrap=bootstrap,
        topics=TopicNames(settings.topic_namespace),
        catalog=catalog,
        registry=RegistryFile(settings.registry_path).current,
        keys=Keystore(settings.keystore_dir),  # the logged-in nations' sealing keys
        policies=PolicyShelf(settings.policies_dir, catalog),
        intake_window=intake_window(settings),
        probes=tuple(chosen),
        witnessing=Witnessing(  # as `ixb audit verify` weighs them by default
            witnesses=[
                WitnessClient(url, timeout_s=settings.witness_timeout_s)
                for url in settings.witness_urls
            ],
            quorum=settings.witness_quorum,
        ),
    )


@console_app.callback()
def serve_console(
    context: typer.Context,
    host: Annotated[str, typer.Option(help="a loopback address (until mTLS exists)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="0 picks a free port")] = DEFAULT_PORT,
    probe: Annotated[
        list[str] | None,
        typer.Option(help="an enforcer's /metrics host:port (repeat; default IXB_METRICS_ADDR)"),
    ] = None,
) -> None:
    """Serve the console on loopback until Ctrl-C or SIGTERM."""
    if context.invoked_subcommand is not None:
        return
    settings = Settings()
    try:
        require_loopback(host)
        users = PasswordFile(users_path(settings))
        if not users.principals:
            err.print(
                f"[yellow]no console users yet[/yellow]: add one with "
                f"`ixb console user add NAME --role analyst --nation BE` ({users.path})"
            )
        app = create_app(console_sources(settings, resolve_bootstrap(settings), probe), users)
    except IxbError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc

    async def go() -> None:
        logs.configure()  # only once it serves: configuring binds the process's stderr
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

        def listening(bound_host: str, bound_port: int) -> None:
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            out.print(f"ixb console on [bold]http://{shown}:{bound_port}/[/bold] (Ctrl-C stops)")

        await serve(app, host, port, stop, on_listening=listening)

    try:
        asyncio.run(go())
    except IxbError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="lower-case, e.g. be-analyst")],
    role: Annotated[Role, typer.Option(help="what this person does")],
    nation: Annotated[
        str | None, typer.Option(help="for an analyst or liaison officer: the nation, e.g. BE")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Add a user (or set a new password); asks for the password unless --password-stdin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        users = PasswordFile(users_path(Settings()))
        users.add(Principal(name, role, nation.upper() if nation else None), password)
    except IxbError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc
    out.print(f"{escape(name)}: {role.value}{' for ' + nation.upper() if nation else ''}")


@user_app.command("list")
def user_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document per user")] = False,
) -> None:
    """Every console user, with role and nation (never a hash)."""
    try:
        users = PasswordFile(users_path(Settings()))
    except IxbError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc
    for p in users.principals:
        if as_json:
            print_json_line({"name": p.name, "role": p.role.value, "nation": p.nation})
        else:
            out.print(escape(p.describe()))


@user_app.command("remove")
def user_remove(name: Annotated[str, typer.Argument(help="the user to remove")]) -> None:
    """Remove a user; exit 1 if there is none of that name."""
    try:
        removed = PasswordFile(users_path(Settings())).remove(name)
    except IxbError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(code=2) from exc
    if not removed:
        err.print(f"no user {escape(name)}")
        raise typer.Exit(code=1)
    out.print(f"removed {escape(name)}")
