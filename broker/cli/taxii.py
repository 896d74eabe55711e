"""``ixb taxii``: serve each nation's verified feed over TAXII 2.1, and manage its users.

The server runs in one process with one feeder per nation: each reads the
nation's delivery topic through the recipient library (so only verified
deliveries are served), keeps what it adds in a SQLite store under
``<IXB_HOME>/taxii/`` and serves it from there. Without TLS it listens on
loopback only: HTTP Basic or bearer secrets in clear text must not cross a
network.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import structlog
import typer
from aiohttp import web
from rich.console import Console

from broker.app import logs
from broker.app.assembly import load_catalog, resolve_bootstrap
from broker.app.settings import Settings
from broker.errors import ConfigurationError, IxbError
from broker.parties.recipient import read_feed
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.wire.topics import TopicNames
from connectors.taxii.auth import UserFile, add_user
from connectors.taxii.feeder import FeedCounts, feed_store
from connectors.taxii.server import TaxiiApp, collection_id
from connectors.taxii.store import Store

log = structlog.get_logger("ixb.taxii")
taxii_app = typer.Typer(help="A TAXII 2.1 server over each nation's verified feed.")
out = Console()
err = Console(stderr=True)

FEED_RETRY_S = 2.0  # a nation's topic may not exist yet: look again this often
FEEDER_STOP_S = 10.0  # a feeder not stopped by then (stuck connecting) is cancelled


def users_file(settings: Settings) -> Path:
    return settings.home / "taxii" / "users.json"


def store_file(settings: Settings) -> Path:
    return settings.home / "taxii" / "store.sqlite3"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    nations: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    users: Path | None = None
    store: Path | None = None
    feed_idle_timeout_s: float = 1.0


def _tls(options: ServeOptions) -> ssl.SSLContext | None:
    if options.tls_cert is None and options.tls_key is None:
        try:
            loopback = ipaddress.ip_address(options.host).is_loopback
        except ValueError:
            loopback = options.host == "localhost"
        if not loopback:
            raise ConfigurationError(
                "without --tls-cert and --tls-key the server binds loopback only"
            )
        return None
    if options.tls_cert is None or options.tls_key is None:
        raise ConfigurationError("TLS needs both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(options.tls_cert, options.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load the TLS certificate: {type(exc).__name__}") from exc
    return context


async def serve(
    settings: Settings,
    bootstrap: str,
    options: ServeOptions,
    stop: asyncio.Event,
    *,
    on_listening: Callable[[str], None] | None = None,
    counts: dict[str, FeedCounts] | None = None,
) -> None:
    """Serve until ``stop`` is set; a feeder that fails stops the server with its error."""
    context = _tls(options)
    users = UserFile(options.users or users_file(settings))
    store = Store(options.store or store_file(settings))
    runner = web.AppRunner(TaxiiApp(store, users, options.nations).build(), access_log=None)
    counts = counts if counts is not None else {}
    feeders: list[asyncio.Task[None]] = []
    halt = asyncio.Event()  # the feeders' own stop: set on the way out, whatever the reason
    try:
        await runner.setup()
        site = web.TCPSite(runner, options.host, options.port, ssl_context=context)
        await site.start()
        host, port = runner.addresses[0][:2]
        scheme = "https" if context else "http"
        url = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}/taxii2/"
        log.info("taxii_listening", url=url, nations=list(options.nations))
        for nation in options.nations:
            counts.setdefault(nation, FeedCounts())
            feeders.append(
                asyncio.create_task(
                    _follow(
                        settings,
                        bootstrap,
                        store,
                        nation=nation,
                        options=options,
                        counts=counts,
                        halt=halt,
                    )
                )
            )
        if on_listening is not None:
            on_listening(url)
        waiting = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiting, *feeders], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        for task in done:
            if task is not waiting:
                task.result()  # a feeder only ends by failing: raise its error
    finally:
        halt.set()  # each feeder closes its consumer at its next poll
        if feeders:
            _, stuck = await asyncio.wait(feeders, timeout=FEEDER_STOP_S)
            for task in stuck:
                task.cancel()
            for task in feeders:
                with contextlib.suppress(asyncio.CancelledError, IxbError):
                    await task
        await runner.cleanup()
        store.close()


async def _follow(
    settings: Settings,
    bootstrap: str,
    store: Store,
    *,
    nation: str,
    options: ServeOptions,
    counts: dict[str, FeedCounts],
    halt: asyncio.Event,
) -> None:
    """Read ``nation``'s feed until ``halt``; the store skips what it already holds."""
    catalog = load_catalog(settings)
    registry = RegistryFile(settings.registry_path)
    keys = Keystore(settings.keystore_dir)
    while not halt.is_set():
        feed = read_feed(
            bootstrap=bootstrap,
            topics=TopicNames(settings.topic_namespace),
            nation=nation,
            catalog=catalog,
            registry=registry.current,
            keys=keys,  # the served nations' sealing keys open their feeds
            idle_timeout_s=options.feed_idle_timeout_s,
            follow=True,
            stop=halt,
        )
        await feed_store(store, nation, feed, counts=counts[nation])
        with contextlib.suppress(TimeoutError):  # the topic did not exist: look again soon
            await asyncio.wait_for(halt.wait(), timeout=FEED_RETRY_S)


@taxii_app.command("serve")
def serve_command(  # noqa: PLR0917 - typer passes every option by name
    nation: Annotated[
        list[str] | None,
        typer.Option(help="serve this nation's feed (repeat); default: every user's"),
    ] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="0 picks a free port")] = 9440,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate chain")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key")] = None,
    users: Annotated[
        Path | None, typer.Option(help="users file; default <IXB_HOME>/taxii/users.json")
    ] = None,
    store: Annotated[
        Path | None, typer.Option(help="SQLite store; default <IXB_HOME>/taxii/store.sqlite3")
    ] = None,
) -> None:
    """Serve verified feeds over TAXII 2.1 until Ctrl-C or SIGTERM."""
    settings = Settings()
    logs.configure()
    try:
        nations = tuple(nation or sorted(UserFile(users or users_file(settings)).nations()))
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    options = ServeOptions(nations, host, port, tls_cert, tls_key, users, store)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(
            settings,
            resolve_bootstrap(settings),
            options,
            stop,
            on_listening=lambda url: out.print(
                f"TAXII 2.1 for {', '.join(nations)} at [bold]{url}[/bold]"
            ),
        )

    try:
        asyncio.run(go())
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@taxii_app.command("add-user")
def add_user_command(
    nation: Annotated[str, typer.Argument(help="the nation whose feed the user reads")],
    name: Annotated[
        str | None, typer.Option(help="user name; default: the nation, lower-case")
    ] = None,
) -> None:
    """Create (or renew) the TAXII user of NATION and print its secret, once."""
    settings = Settings()
    try:
        secret = add_user(users_file(settings), name or nation.lower(), nation)
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    out.print(
        f"user [bold]{name or nation.lower()}[/bold] reads collection {collection_id(nation)}"
    )
    print(secret)


@taxii_app.command("problems")
def problems_command(
    nation: Annotated[str, typer.Argument(help="the nation whose collection to look at")],
) -> None:
    """List the feed records of NATION that were not served, and why (offset, reason)."""
    settings = Settings()
    path = store_file(settings)
    if not path.exists():
        err.print(f"[red]error:[/red] no TAXII store at {path}")
        raise typer.Exit(2)
    store = Store(path)
    try:
        found = store.problems(collection_id(nation))
    finally:
        store.close()
    for offset, reason, detail in found:
        print(f"{offset}\t{reason}\t{detail}")
