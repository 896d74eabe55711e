"""``ixb``: the command line for operators, agency adapters, analysts and auditors.

Settings come from the environment (``IXB_*``, see broker/app/settings.py) and
are read once here; every command then works with typed objects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from broker.app import logs
from broker.app.assembly import load_catalog, open_publisher, resolve_bootstrap, run_enforcer
from broker.app.settings import Settings
from broker.cli.audit import audit_app
from broker.cli.keys import keys_app
from broker.cli.render import (
    delivery_json,
    print_decision,
    print_delivery,
    print_rejection,
    rejection_json,
)
from broker.domain.decisions import decision_inputs
from broker.errors import ConfigurationError, IxbError
from broker.kafka.embedded.tansu import EmbeddedKafka
from broker.kafka.reader import read_topic
from broker.parties.recipient import FeedProblem, read_feed
from broker.policy.bundle import load_bundle
from broker.policy.lint import Severity, lint
from broker.policy.rego import RegoDecisionPoint
from broker.policy.source import request_reload
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.wire.report import describe_validation_error
from broker.wire.topics import TopicNames
from connectors.json_file import load_reports

app = typer.Typer(
    help="ixb: intelligence exchange for border-security cooperation.", no_args_is_help=True
)
kafka_app = typer.Typer(help="The embedded Kafka-protocol broker (Tansu) for development.")
agreements_app = typer.Typer(help="Bilateral and multilateral sharing agreements.")
app.add_typer(kafka_app, name="kafka")
app.add_typer(keys_app, name="keys")
app.add_typer(agreements_app, name="agreements")
app.add_typer(audit_app, name="audit")

out = Console()
err = Console(stderr=True)

Nation = Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 code, e.g. NL")]


def _settings() -> Settings:
    return Settings()


def _fail(exc: IxbError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=2)


def _run(work: Coroutine[Any, Any, None]) -> None:
    """Run one command's async work; an ixb error becomes a message and exit code 2."""
    try:
        asyncio.run(work)
    except IxbError as exc:
        raise _fail(exc) from exc


@kafka_app.command("up")
def kafka_up(port: Annotated[int, typer.Option(help="0 picks a free port")] = 0) -> None:
    """Start the embedded broker on loopback and keep it running until Ctrl-C or SIGTERM."""
    settings = _settings()
    with EmbeddedKafka(port=port or None) as kafka:
        # A flag, not KeyboardInterrupt: an exception raised wherever the signal
        # lands can leave Popen.poll's lock taken, and stopping Tansu then waits
        # out every timeout (most likely what a test run saw: 15 s instead of 1).
        asked: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda number, _frame: asked.append(number))
        settings.home.mkdir(parents=True, exist_ok=True)
        try:
            settings.embedded_bootstrap_file.write_text(kafka.bootstrap + "\n")
            out.print(
                f"embedded Kafka (Tansu, in memory) listening on [bold]{kafka.bootstrap}[/bold]"
            )
            out.print(f"other ixb commands find it through {settings.embedded_bootstrap_file}")
            while kafka.running and not asked:
                time.sleep(0.5)
        finally:
            settings.embedded_bootstrap_file.unlink(missing_ok=True)


@agreements_app.command("check")
def agreements_check(
    policies_dir: Annotated[
        Path | None, typer.Argument(help="default: the configured policies/")
    ] = None,
) -> None:
    """Check every agreement and Rego module, and the agreements together.

    Exit 1 on any error (the set must not be deployed); warnings (expired,
    overlapping, conflicting terms) are listed and do not fail the check.
    """
    settings = _settings()
    try:
        bundle = load_bundle(policies_dir or settings.policies_dir, load_catalog(settings))
        RegoDecisionPoint(bundle)  # the Rego compiles and decides
    except IxbError as exc:
        raise _fail(exc) from exc
    for agreement in bundle.agreements:
        out.print(
            f"[green]ok[/green] {agreement.id} v{agreement.version}: {agreement.title} "
            f"({', '.join(agreement.parties)})"
        )
    findings = lint(bundle, dt.datetime.now(dt.UTC))
    for finding in findings:
        colour = "red" if finding.severity is Severity.ERROR else "yellow"
        out.print(
            f"[{colour}]{finding.severity.value}[/{colour}] "
            f"{' + '.join(finding.agreements)}: {escape(finding.message)}"
        )
    out.print(f"bundle {bundle.content_hash}")
    errors = sum(f.severity is Severity.ERROR for f in findings)
    if errors:
        err.print(f"[red]{errors} error(s)[/red]: this agreement set must not be deployed")
        raise typer.Exit(1)


@agreements_app.command("reload")
def agreements_reload() -> None:
    """Check the policy directory, then tell running enforcers to swap it in.

    Enforcers sharing this IXB_HOME pick the new bundle up between batches.
    A set that does not load is refused here, and would be by the enforcers.
    """
    settings = _settings()
    try:
        bundle = load_bundle(settings.policies_dir, load_catalog(settings))
        RegoDecisionPoint(bundle)
    except IxbError as exc:
        raise _fail(exc) from exc
    request_reload(settings.reload_request_file, bundle.content_hash)
    out.print(f"reload requested: bundle {bundle.content_hash}")


@agreements_app.command("explain")
def agreements_explain(
    report_file: Annotated[Path, typer.Argument(help="a JSON report file")],
    origin: Annotated[str, typer.Option("--from", help="publishing nation")],
    recipient: Annotated[str, typer.Option("--to", help="receiving nation")],
) -> None:
    """Show what the agreements decide for a report from one nation to another, and why."""
    settings = _settings()
    try:
        bundle = load_bundle(settings.policies_dir, load_catalog(settings))
        policy = RegoDecisionPoint(bundle)
        reports = load_reports(report_file)
        for report in reports:
            [asked] = decision_inputs(report, [recipient], now_s=int(time.time()), origin=origin)
            decision = policy.decide(asked)
            print_decision(out, report, origin, recipient, decision)
    except ValidationError as exc:
        raise _fail(ConfigurationError(describe_validation_error(exc))) from exc
    except IxbError as exc:
        raise _fail(exc) from exc
    out.print(f"[dim]bundle {bundle.content_hash}[/dim]")


@app.command()
def publish(
    files: Annotated[list[Path], typer.Argument(help="JSON report files")],
    as_nation: Annotated[
        str, typer.Option("--as", help="publishing nation (its agency key signs)")
    ],
) -> None:
    """Validate, sign and publish reports to ixb.submit.<NATION>."""
    settings = _settings()

    async def go() -> None:
        reports = [r for path in files for r in load_reports(path)]
        async with open_publisher(settings, resolve_bootstrap(settings), as_nation) as publisher:
            for sent in await publisher.publish(reports):
                out.print(f"published {sent.report_id} to {sent.topic}")

    _run(go())


@app.command()
def run() -> None:
    """Run the policy enforcer until SIGINT or SIGTERM (the batch in flight finishes)."""
    settings = _settings()
    logs.configure()

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_enforcer(settings, resolve_bootstrap(settings), stop, own_process=True)

    _run(go())


@app.command()
def subscribe(
    nation: Nation,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines on stdout")] = False,
    follow: Annotated[bool, typer.Option(help="keep waiting for new deliveries")] = False,
    idle_timeout: Annotated[float, typer.Option(help="seconds without news before stopping")] = 3.0,
) -> None:
    """Verify and show what NATION received on ixb.deliver.<NATION>."""
    settings = _settings()

    async def go() -> None:
        registry = RegistryFile(settings.registry_path)
        async for item in read_feed(
            bootstrap=resolve_bootstrap(settings),
            topics=TopicNames(settings.topic_namespace),
            nation=nation,
            catalog=load_catalog(settings),
            registry=registry.current,
            keys=Keystore(settings.keystore_dir),  # NATION's sealing keys open its feed
            idle_timeout_s=idle_timeout,
            follow=follow,
        ):
            if isinstance(item, FeedProblem):
                err.print(
                    f"[red]unverified record at offset {item.offset}:[/red] "
                    f"{item.reason}: {item.detail}"
                )
            elif as_json:
                print(json.dumps(delivery_json(item)))
            else:
                print_delivery(out, item)

    _run(go())


@app.command()
def rejected(
    nation: Nation,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines on stdout")] = False,
    idle_timeout: Annotated[float, typer.Option(help="seconds without news before stopping")] = 3.0,
) -> None:
    """Show the submissions from NATION that the broker refused, and why."""
    settings = _settings()

    async def go() -> None:
        catalog = load_catalog(settings)
        topic = TopicNames(settings.topic_namespace).rejected(nation)
        async for record in read_topic(
            resolve_bootstrap(settings), topic, idle_timeout_s=idle_timeout
        ):
            document = rejection_json(catalog, record.value or b"")
            if as_json:
                print(json.dumps(document))
            else:
                print_rejection(out, document)

    _run(go())


@app.command()
def demo() -> None:
    """Run the multi-nation scenario on an embedded (or IXB_KAFKA_BOOTSTRAP) broker."""
    from broker.cli.demo.play import run_demo  # noqa: PLC0415 - only the demo needs its scenario data

    raise typer.Exit(code=run_demo(Settings(), out))


def main() -> None:
    app()
