"""``ixb``: the command line for operators, agency adapters, analysts and auditors.

Settings come from the environment (``IXB_*``, see broker/app/settings.py) and
are read once here; every command then works with typed objects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape

from broker.app import logs
from broker.app.assembly import load_catalog, open_publisher, resolve_bootstrap
from broker.app.documents import explain
from broker.app.enforcer_process import run_enforcer
from broker.app.settings import Settings
from broker.cli.access import acl_app, credentials_app, pki_app
from broker.cli.audit import audit_app
from broker.cli.console import console, print_json_line
from broker.cli.console_command import console_app
from broker.cli.formats import (
    InFormat,
    OutFormat,
    inbound_defaults,
    poll_reports,
    read_reports,
    render,
)
from broker.cli.keys import keys_app
from broker.cli.render import (
    decision_json,
    delivery_json,
    print_decision,
    print_delivery,
    print_rejection,
    rejection_json,
)
from broker.cli.schemas import schemas_app
from broker.cli.taxii import taxii_app
from broker.cli.witness import witness
from broker.errors import ConfigurationError, IxbError
from broker.kafka.embedded import Engine, SecureCluster, embedded_broker
from broker.kafka.embedded.engine import ensure_kafka
from broker.kafka.reader import read_topic
from broker.parties.derivations import PartyAgreements
from broker.parties.recipient import FeedProblem, read_feed
from broker.policy.bundle import BundleRefused, PolicyBundle, load_bundle
from broker.policy.lint import Finding, Severity, lint
from broker.policy.rego import RegoDecisionPoint
from broker.policy.source import request_reload
from broker.trust.identities import Identity, Role
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.wire.report import describe_validation_error
from broker.wire.topics import TopicNames
from connectors.json_file import load_reports

app = typer.Typer(
    help="ixb: intelligence exchange for border-security cooperation.", no_args_is_help=True
)
kafka_app = typer.Typer(help="The embedded broker for development: Apache Kafka, or Tansu.")
agreements_app = typer.Typer(help="Bilateral and multilateral sharing agreements.")
app.add_typer(kafka_app, name="kafka")
app.add_typer(keys_app, name="keys")
app.add_typer(agreements_app, name="agreements")
app.add_typer(audit_app, name="audit")
app.add_typer(taxii_app, name="taxii")
app.add_typer(schemas_app, name="schemas")
app.add_typer(pki_app, name="pki")
app.add_typer(credentials_app, name="credentials")
app.add_typer(acl_app, name="acl")
app.command("witness")(witness)
app.add_typer(console_app, name="console")


@app.callback()
def _options(
    client_config: Annotated[
        Path | None,
        typer.Option(
            "--client-config",
            help="a Kafka client configuration (`ixb credentials issue`); "
            "the same as IXB_CLIENT_CONFIG",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Options for every command; the settings themselves are read by each command."""
    if client_config is not None:
        os.environ["IXB_CLIENT_CONFIG"] = str(client_config)


out = console()
err = console(stderr=True)

Nation = Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 code, e.g. NL")]
Json = Annotated[bool, typer.Option("--json", help="JSON on stdout, one document per line")]
At = Annotated[str | None, typer.Option("--at", help="as of this instant, ISO 8601 (default: now)")]


def _settings() -> Settings:
    return Settings()


def _fail(exc: IxbError) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(str(exc))}")
    return typer.Exit(code=2)


def _instant(text: str | None) -> dt.datetime:
    """An ISO 8601 instant (UTC if it gives no zone), or now."""
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _run(work: Coroutine[Any, Any, None]) -> None:
    """Run one command's async work; an ixb error becomes a message and exit code 2."""
    try:
        asyncio.run(work)
    except IxbError as exc:
        raise _fail(exc) from exc


EngineOption = Annotated[
    Engine | None,
    typer.Option(
        "--engine",
        help="kafka: Apache Kafka 4 (KRaft, needs a JDK >= 17); tansu: the no-JVM fallback "
        "(memory only, no idempotent producer). Default: IXB_KAFKA_ENGINE, else kafka",
    ),
]


@kafka_app.command("up")
def kafka_up(
    port: Annotated[int, typer.Option(help="0 picks a free port")] = 0,
    engine: EngineOption = None,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="TLS only, client certificates required, the authorizer on (Apache Kafka); "
            "the CA and the operator's credentials are made in IXB_PKI_DIR",
        ),
    ] = False,
) -> None:
    """Start the embedded broker on loopback and keep it running until Ctrl-C or SIGTERM.

    Apache Kafka keeps its data in a temporary folder for as long as it runs;
    its jars are fetched with Maven into IXB_ENGINE_CACHE the first time.
    With ``--secure`` it prints the operator's client configuration to export
    as IXB_CLIENT_CONFIG (for ``ixb acl apply`` and ``ixb credentials issue``).
    """
    settings = _settings()
    chosen = engine or settings.kafka_engine
    try:
        cluster = SecureCluster.prepare(settings.pki_path) if secure else None
        broker = embedded_broker(
            chosen, cache=settings.engine_cache, port=port or None, say=err.print, secure=cluster
        )
    except IxbError as exc:
        raise _fail(exc) from exc
    with broker:
        # A flag, not KeyboardInterrupt: an exception raised wherever the signal
        # lands can leave Popen.poll's lock taken, and stopping the broker then
        # waits out every timeout (most likely what a test run saw: 15 s instead of 1).
        asked: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda number, _frame: asked.append(number))
        settings.home.mkdir(parents=True, exist_ok=True)
        try:
            settings.embedded_engine_file.write_text(chosen + "\n")
            settings.embedded_bootstrap_file.write_text(broker.bootstrap + "\n")
            out.print(f"{broker.description} listening on [bold]{broker.bootstrap}[/bold]")
            out.print(f"other ixb commands find it through {settings.embedded_bootstrap_file}")
            if cluster is not None:
                operator = cluster.write_client_config(Identity(Role.OPERATOR), broker.bootstrap)
                out.print(
                    f"TLS + mTLS + ACLs; as the operator: export IXB_CLIENT_CONFIG={operator}"
                )
            while broker.running and not asked:
                time.sleep(0.5)
        finally:
            settings.embedded_bootstrap_file.unlink(missing_ok=True)
            settings.embedded_engine_file.unlink(missing_ok=True)


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Fetch Apache Kafka's jars with Maven into IXB_ENGINE_CACHE (once); print their folder."""
    settings = _settings()
    try:
        libs = ensure_kafka(settings.engine_cache, say=err.print)
    except IxbError as exc:
        raise _fail(exc) from exc
    typer.echo(str(libs))


@agreements_app.command("check")
def agreements_check(
    policies_dir: Annotated[
        Path | None, typer.Argument(help="default: the configured policies/")
    ] = None,
    as_json: Json = False,
    at: At = None,
) -> None:
    """Check every agreement and Rego module, and the agreements together.

    Exit 2 when a file does not load (every problem of every file is
    listed), 1 on any error (the set must not be deployed: e.g. overlapping
    agreements whose terms conflict and that declare no precedence), 0
    otherwise; warnings (expired, overlapping, different embargoes) are
    listed and do not fail the check. Every line names its file.
    """
    settings = _settings()
    try:
        bundle = load_bundle(policies_dir or settings.policies_dir, load_catalog(settings))
        RegoDecisionPoint(bundle)  # the Rego compiles and decides
    except BundleRefused as exc:
        if as_json:
            print_json_line({"ok": False, "problems": [p.document() for p in exc.problems]})
        for problem in exc.problems:
            err.print(f"{escape(problem.where)}: [red]error[/red]: {escape(problem.message)}")
        err.print(f"{len(exc.problems)} problem(s): the agreements do not load")
        raise typer.Exit(code=2) from exc
    except IxbError as exc:
        if as_json:
            print_json_line({"ok": False, "problems": [{"file": None, "message": str(exc)}]})
        raise _fail(exc) from exc
    findings = lint(bundle, _instant(at))
    errors = sum(f.severity is Severity.ERROR for f in findings)
    if as_json:
        print_json_line(_check_document(bundle, findings, errors))
    else:
        _print_check(bundle, findings)
    if errors:
        err.print(f"[red]{errors} error(s)[/red]: this agreement set must not be deployed")
        raise typer.Exit(1)


def _print_check(bundle: PolicyBundle, findings: list[Finding]) -> None:
    for agreement in bundle.agreements:
        out.print(
            f"[green]ok[/green] {agreement.id} v{agreement.version}: {escape(agreement.title)} "
            f"({', '.join(agreement.parties)}) [dim]{escape(bundle.file_of(agreement.id))}[/dim]"
        )
    for finding in findings:
        colour = "red" if finding.severity is Severity.ERROR else "yellow"
        out.print(
            f"{escape(' + '.join(finding.files))}: "
            f"[{colour}]{finding.severity.value}[/{colour}]: {escape(finding.message)}"
        )
    out.print(f"bundle {bundle.content_hash}")


def _check_document(bundle: PolicyBundle, findings: list[Finding], errors: int) -> dict[str, Any]:
    return {
        "ok": errors == 0,
        "bundle": bundle.content_hash,
        "agreements": [
            {
                "id": a.id,
                "version": a.version,
                "title": a.title,
                "parties": list(a.parties),
                "file": bundle.file_of(a.id),
            }
            for a in bundle.agreements
        ],
        "errors": errors,
        "warnings": len(findings) - errors,
        "findings": [f.document() for f in findings],
    }


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
    as_json: Json = False,
    at: At = None,
) -> None:
    """Show what the agreements decide for a report from one nation to another, and why.

    Where agreements overlap it says which governed together, which were set
    aside by a declared precedence, which do not cover the report, which
    authorises, and whose secret keys the pseudonyms (so who can link what).
    """
    settings = _settings()
    now_s = int(_instant(at).timestamp())
    try:
        bundle = load_bundle(settings.policies_dir, load_catalog(settings))
        policy = RegoDecisionPoint(bundle)
        reports = load_reports(report_file)
        for report in reports:
            decision = explain(policy, report, origin=origin, recipient=recipient, now_s=now_s)
            if as_json:
                print_json_line(decision_json(bundle, report, origin, recipient, decision))
            else:
                print_decision(
                    out, bundle, report, origin=origin, recipient=recipient, decision=decision
                )
    except ValidationError as exc:
        raise _fail(ConfigurationError(describe_validation_error(exc))) from exc
    except IxbError as exc:
        raise _fail(exc) from exc
    if not as_json:
        out.print(f"[dim]bundle {bundle.content_hash}[/dim]")


@app.command()
def publish(  # noqa: PLR0917 - one option per default an adapter may set
    files: Annotated[list[Path] | None, typer.Argument(help="report files")] = None,
    as_nation: Annotated[
        str, typer.Option("--as", help="publishing nation (its agency key signs)")
    ] = "",
    as_json: Json = False,
    fmt: Annotated[InFormat, typer.Option("--format", help="the files' format")] = InFormat.JSON,
    taxii: Annotated[str | None, typer.Option(help="poll this TAXII 2.1 collection URL")] = None,
    taxii_user: Annotated[str | None, typer.Option(envvar="IXB_TAXII_USER")] = None,
    taxii_password: Annotated[str | None, typer.Option(envvar="IXB_TAXII_PASSWORD")] = None,
    added_after: Annotated[str | None, typer.Option(help="TAXII: only objects added after")] = None,
    agency: Annotated[str | None, typer.Option(help="agency, for reports naming none")] = None,
    marking: Annotated[str | None, typer.Option(help="default TLP, e.g. TLP:AMBER")] = None,
    handling_code: Annotated[str | None, typer.Option(help="default SIENA code H0-H3")] = None,
    grading: Annotated[str | None, typer.Option(help="default 4x4 grading, e.g. B2")] = None,
    report_type: Annotated[str | None, typer.Option(help="default report type")] = None,
    ignore: Annotated[
        list[str] | None, typer.Option(help="STIX/MISP property that may be dropped (repeat)")
    ] = None,
) -> None:
    """Validate, sign and publish reports (JSON, STIX 2.1 or MISP) to ixb.submit.<NATION>."""
    settings = _settings()
    if not as_nation or not (files or taxii):
        raise _fail(ConfigurationError("give --as NATION and report files or --taxii URL"))

    async def go() -> None:
        defaults = inbound_defaults(
            as_nation,
            agency=agency,
            marking=marking,
            handling_code=handling_code,
            grading=grading,
            report_type=report_type,
            ignore=ignore,
        )
        reports = [r for path in files or [] for r in read_reports(fmt, path, defaults)]
        if taxii:
            reports += poll_reports(
                taxii, defaults, user=taxii_user, password=taxii_password, added_after=added_after
            )
        async with open_publisher(settings, resolve_bootstrap(settings), as_nation) as publisher:
            for sent in await publisher.publish(reports):
                if as_json:
                    print_json_line({"report_id": str(sent.report_id), "topic": sent.topic})
                else:
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
def subscribe(  # noqa: PLR0917 - typer maps each option to a parameter
    nation: Nation,
    as_json: Json = False,
    fmt: Annotated[
        OutFormat, typer.Option("--format", help="text, or one JSON/STIX/MISP document a line")
    ] = OutFormat.TEXT,
    follow: Annotated[bool, typer.Option(help="keep waiting for new deliveries")] = False,
    idle_timeout: Annotated[float, typer.Option(help="seconds without news before stopping")] = 3.0,
    agreements: Annotated[
        Path | None,
        typer.Option(
            help="a directory of the agreement files NATION is party to, to judge the broker's "
            "derivations by (default: the bundles the broker archived on ixb.bundles)"
        ),
    ] = None,
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
            agreements=None if agreements is None else PartyAgreements.from_directory(agreements),
            keys=Keystore(settings.keystore_dir),  # NATION's sealing keys open its feed
            idle_timeout_s=idle_timeout,
            follow=follow,
        ):
            if isinstance(item, FeedProblem):
                err.print(
                    f"[red]unverified record at offset {item.offset}:[/red] "
                    f"{item.reason}: {escape(item.detail)}"
                )
            elif as_json:
                print_json_line(delivery_json(item))
            elif fmt is not OutFormat.TEXT:
                print(render(fmt, item))
            else:
                print_delivery(out, item)

    _run(go())


@app.command()
def rejected(
    nation: Nation,
    as_json: Json = False,
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
                print_json_line(document)
            else:
                print_rejection(out, document)

    _run(go())


@app.command()
def demo(
    engine: EngineOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="summary as JSON Lines on stdout, story on stderr")
    ] = False,
    with_console: Annotated[
        bool,
        typer.Option("--console", help="then keep it running with the browser console, to Ctrl-C"),
    ] = False,
    console_port: Annotated[
        int, typer.Option(help="the console's port (taken: a free one)")
    ] = 8470,
) -> None:
    """Run the multi-nation scenario on an embedded (or IXB_KAFKA_BOOTSTRAP) broker."""
    from broker.cli.demo.play import run_demo  # noqa: PLC0415 - only the demo needs its scenario data

    settings = Settings()
    if engine is not None:
        settings = settings.model_copy(update={"kafka_engine": engine})
    port = console_port if with_console else None
    code = run_demo(settings, err if as_json else out, as_json=as_json, console_port=port)
    raise typer.Exit(code=code)


def main() -> None:
    app()
