"""``ixb pki``, ``ixb credentials`` and ``ixb acl``: who may talk to Kafka, and what they may do.

- ``ixb pki init`` makes the federation CA; ``ixb pki issue`` a certificate
  for a server or an operator (the brokers' ``kafka``, say).
- ``ixb credentials issue --nation BE --role analyst --out be.properties``
  gives a party a key, its certificate and a client configuration any
  Kafka client reads; ``ixb credentials revoke`` takes it back.
- ``ixb acl plan`` shows the ACLs the registry and the roles call for;
  ``ixb acl apply`` makes the cluster hold exactly them.

Nothing here prints a key: only paths and what a certificate says.
Settings are read once per command, here at the edge.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from broker.app.assembly import load_catalog, resolve_bootstrap
from broker.app.settings import Settings
from broker.cli.console import console, print_json_line
from broker.errors import IxbError
from broker.kafka.acls import apply_plan
from broker.kafka.security import ClientConfig, Flavour, render_properties
from broker.policy.bundle import load_bundle
from broker.trust import acls
from broker.trust.files import atomic_write
from broker.trust.identities import Identity, Role
from broker.trust.pki import DEFAULT_SANS, PartyFiles, Pki
from broker.trust.registry_file import RegistryFile
from broker.wire.topics import TopicNames, ledger_retention

pki_app = typer.Typer(help="The federation CA and the parties' certificates.", no_args_is_help=True)
credentials_app = typer.Typer(
    help="Client credentials for Kafka (mTLS), one per nation and role.", no_args_is_help=True
)
acl_app = typer.Typer(help="Least-privilege Kafka ACLs derived from the registry.")

out = console()
err = console(stderr=True)

NationOption = Annotated[
    str | None, typer.Option("--nation", help="ISO 3166-1 alpha-2; for agency, analyst, auditor")
]
RoleOption = Annotated[Role, typer.Option("--role", help="what the party does")]
Json = Annotated[bool, typer.Option("--json", help="JSON on stdout, one document per line")]


def _fail(exc: IxbError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
    return typer.Exit(code=2)


def _pki(settings: Settings) -> Pki:
    return Pki(settings.pki_path)


@pki_app.command("init")
def pki_init() -> None:
    """Make the federation CA in IXB_PKI_DIR (default <home>/pki); its key is written 0600."""
    pki = _pki(Settings())
    try:
        pki.init()
    except IxbError as exc:
        raise _fail(exc) from exc
    out.print(f"CA certificate {pki.ca_certificate} (give it to every party)")
    out.print(f"CA key {pki.ca_key} (mode 0600; keep it offline)")


@pki_app.command("issue")
def pki_issue(
    role: RoleOption,
    nation: NationOption = None,
    san: Annotated[
        list[str] | None,
        typer.Option("--san", help="a host name or address the party serves on (repeatable)"),
    ] = None,
) -> None:
    """A certificate and key for a party, kept in the PKI directory (servers, the operator)."""
    pki = _pki(Settings())
    try:
        files = pki.issue(Identity(role, nation), sans=san or DEFAULT_SANS)
    except IxbError as exc:
        raise _fail(exc) from exc
    out.print(f"certificate {files.certificate}")
    out.print(f"key {files.key} (mode 0600)")


@credentials_app.command("issue")
def credentials_issue(  # noqa: PLR0917 - typer maps each option to a parameter
    role: RoleOption,
    output: Annotated[Path, typer.Option("--out", help="the client configuration to write")],
    nation: NationOption = None,
    bootstrap: Annotated[
        str | None,
        typer.Option(help="bootstrap.servers to write (default: IXB_KAFKA_BOOTSTRAP, else ours)"),
    ] = None,
    flavour: Annotated[
        Flavour, typer.Option("--format", help="whose property names: librdkafka or java")
    ] = Flavour.LIBRDKAFKA,
    san: Annotated[
        list[str] | None,
        typer.Option("--san", help="a host name or address the party also serves on (repeatable)"),
    ] = None,
) -> None:
    """A new key and certificate for the party, and a client configuration beside them.

    Writes OUT (0600), and beside it OUT's stem with ``.key`` (0600),
    ``.pem`` (certificate and chain) and ``.ca.pem``: hand the four to the
    party. With ``--format java`` the key and chain are one ``.keystore.pem``.
    """
    settings = Settings()
    pki = _pki(settings)
    try:
        identity = Identity(role, nation)
        address = bootstrap or resolve_bootstrap(settings)
        stem = output.parent / output.stem

        def beside(suffix: str) -> Path:
            return stem.parent / f"{stem.name}{suffix}"

        files = pki.issue(
            identity, sans=san or DEFAULT_SANS, into=PartyFiles(beside(".pem"), beside(".key"))
        )
        ca = beside(".ca.pem")
        shutil.copyfile(pki.ca_certificate, ca)
        key: Path | None = files.key
        certificate = files.certificate
        if flavour is Flavour.JAVA:
            certificate = beside(".keystore.pem")
            atomic_write(
                certificate, files.key.read_bytes() + files.certificate.read_bytes(), mode=0o600
            )
            files.key.unlink()
            files.certificate.unlink()
            key = None
        config = ClientConfig(address, ca=ca, certificate=certificate, key=key)
        text = render_properties(
            config.properties(flavour),
            comment=f"ixb credentials for {identity.principal} ({flavour} property names)",
        )
        atomic_write(output, text.encode(), mode=0o600)
    except IxbError as exc:
        raise _fail(exc) from exc
    out.print(f"{identity.principal}: {output} (mode 0600)")


@credentials_app.command("revoke")
def credentials_revoke(role: RoleOption, nation: NationOption = None) -> None:
    """Refuse a party from now on: no grant, a DENY of everything (after ``ixb acl apply``)."""
    pki = _pki(Settings())
    try:
        identity = Identity(role, nation)
        pki.revoke(identity)
    except IxbError as exc:
        raise _fail(exc) from exc
    out.print(f"{identity.principal} revoked; run `ixb acl apply` to make the cluster refuse it")


def _plan(settings: Settings) -> acls.AclPlan:
    """The plan for the registry's partners, and the topics of every agreement's parties.

    A partner is a nation with an agency key neither revoked nor expired:
    one whose every key was revoked loses its grants at the next apply. The
    agreements' parties are those the enforcer delivers to, whose topics
    must exist (only the operator creates them) before their keys are
    registered, or after they were revoked.
    """
    bundle = load_bundle(settings.policies_dir, load_catalog(settings))
    registry = RegistryFile(settings.registry_path).current()
    partners = acls.partners(registry.records(), dt.datetime.now(dt.UTC))
    parties = {party for agreement in bundle.agreements for party in agreement.parties}
    return acls.plan(
        partners,
        TopicNames(settings.topic_namespace),
        enforcer_group=settings.group_id,
        revoked=_pki(settings).revoked(),
        delivered_to=parties,
    )


@acl_app.command("plan")
def acl_plan(
    json: Json = False,
    commands: Annotated[
        bool, typer.Option("--commands", help="as kafka-acls.sh commands, one a line")
    ] = False,
) -> None:
    """The ACLs the partner registry, the topic names and the roles call for."""
    settings = Settings()
    try:
        planned = _plan(settings)
    except IxbError as exc:
        raise _fail(exc) from exc
    ordered = sorted(planned.acls)
    if json:
        for acl in ordered:
            print_json_line(acl.row())
        return
    if commands:
        address = settings.kafka_bootstrap or "BOOTSTRAP"
        for acl in ordered:
            typer.echo(acl.kafka_acls_command(address, "operator.properties"))
        return
    table = Table("principal", "permission", "operation", "resource", "pattern", "name")
    for acl in ordered:
        row = acl.row()
        table.add_row(
            *(
                row[k]
                for k in ("principal", "permission", "operation", "resource", "pattern", "name")
            )
        )
    out.print(table)
    out.print(f"{len(ordered)} ACLs; topics the operator creates: {len(planned.topics)}")


@acl_app.command("apply")
def acl_apply(json: Json = False) -> None:
    """Make the cluster hold exactly the plan: create its topics, add missing, remove stale ACLs.

    Connects as IXB_CLIENT_CONFIG says (the operator's credentials).
    """
    settings = Settings()
    try:
        planned = _plan(settings)
        retention = ledger_retention(
            dt.timedelta(seconds=settings.max_report_age_s),
            dt.timedelta(seconds=settings.max_clock_skew_s),
        )
        done = asyncio.run(
            apply_plan(resolve_bootstrap(settings), planned, ledger_retention=retention)
        )
    except IxbError as exc:
        raise _fail(exc) from exc
    if json:
        print_json_line(
            {"added": [a.row() for a in done.add], "removed": [a.row() for a in done.remove]}
        )
        return
    for verb, done_acls in (("added", done.add), ("removed", done.remove)):
        for acl in done_acls:
            out.print(
                f"{verb} {acl.principal} {acl.operation.name} {acl.permission.name} "
                f"{acl.resource_type.name} {acl.pattern_type.name} {acl.resource_name}"
            )
    out.print(f"{len(done.add)} added, {len(done.remove)} removed; {len(planned.acls)} planned")
