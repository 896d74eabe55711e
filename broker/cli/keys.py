"""``ixb keys``: agency, broker, auditor and governance keys, and the signed partner registry.

Every party may hold signing keys and sealing keys (``--sealing``: HPKE
recipient keys, X25519 or the ML-KEM-768 + X25519 hybrid, chosen per key
with ``--algorithm``): an agency's sealing key opens its nation's feed, the
broker's opens submissions, an auditor's (``--auditor XX``, XX's
data-protection authority) opens XX's submissions for ``ixb audit replay``.

Every change (generate, rotate, revoke) becomes the registry's next version,
signed by the governance keys this home's keystore holds. When they are not
enough (k of n held elsewhere), the version is written as a proposal beside
the registry instead, and each other governance holder runs ``ixb keys sign``
on it; the signature that meets the threshold installs it.

Settings are read once per command, here at the edge (broker/app/settings.py).
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from broker.app.settings import Settings
from broker.cli.console import console, print_json_line
from broker.errors import ConfigurationError, IxbError, RegistryRefused
from broker.trust.governance import UNDER_SIGNED, RegistryDocument, document_bytes, parse_document
from broker.trust.keystore import Keystore
from broker.trust.records import (
    GovernanceRule,
    KeyRecord,
    KeyRole,
    KeyUse,
    PartnerRegistry,
    RevocationReason,
)
from broker.trust.registry_file import RegistryFile
from broker.trust.sealing.keys import SEAL_ALGORITHMS, X25519
from broker.trust.signatures import ALGORITHMS, ED25519

keys_app = typer.Typer(
    help="Agency, broker and governance keys, and the signed partner registry.",
    no_args_is_help=True,
)

out = console()
err = console(stderr=True)

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

AlgorithmOption = Annotated[
    str | None,
    typer.Option(
        help=f"signing: {' or '.join(ALGORITHMS)} (default {ED25519}); "
        f"sealing: {' or '.join(SEAL_ALGORITHMS)} (default {X25519})"
    ),
]
SealingOption = Annotated[
    bool, typer.Option("--sealing", help="a sealing (HPKE) key instead of a signing key")
]
AuditorOption = Annotated[
    str | None,
    typer.Option("--auditor", help="a sealing key of this nation's data-protection authority"),
]


def _open() -> tuple[RegistryFile, Keystore]:
    settings = Settings()
    keystore = Keystore(settings.keystore_dir)
    return RegistryFile(settings.registry_path, keystore=keystore), keystore


def _fail(exc: IxbError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=2)


def _commit(registry_file: RegistryFile, registry: PartnerRegistry) -> bool:
    """Install ``registry`` as the next version, or leave it as a proposal; True if installed."""
    document = registry_file.sign(registry_file.propose(registry))
    try:
        registry_file.install(document)
    except RegistryRefused as exc:
        if exc.reason != UNDER_SIGNED:
            raise
        path = registry_file.write_proposal(document)
        out.print(
            f"[yellow]not installed:[/yellow] {exc.detail}; proposal written to {path}: "
            f"run `ixb keys sign {path}` where the other governance keys are held"
        )
        return False
    return True


def _role(
    nation: str | None,
    broker_key: bool,
    governance: bool,
    auditor: str | None = None,
    witness: bool = False,
) -> tuple[KeyRole, str | None]:
    if witness:
        if nation is None or broker_key or governance or auditor is not None:
            raise typer.BadParameter("--witness goes with --nation XX, and alone")
        return KeyRole.WITNESS, nation
    if sum((nation is not None, broker_key, governance, auditor is not None)) != 1:
        raise typer.BadParameter(
            "give exactly one of --nation XX, --broker, --governance or --auditor XX"
        )
    if governance:
        return KeyRole.GOVERNANCE, None
    if auditor is not None:
        return KeyRole.AUDITOR, auditor
    return (KeyRole.BROKER, None) if broker_key else (KeyRole.AGENCY, nation)


def _use(role: KeyRole, sealing: bool, algorithm: str | None) -> KeyUse:
    """What the key does: ``--sealing`` (implied for auditors), else what ``--algorithm`` names."""
    if sealing or role is KeyRole.AUDITOR or (algorithm in SEAL_ALGORITHMS):
        use = KeyUse.SEALING
    else:
        use = KeyUse.SIGNING
    if algorithm is not None and (algorithm in SEAL_ALGORITHMS) != (use is KeyUse.SEALING):
        raise typer.BadParameter(f"{algorithm} is not a {use.value} algorithm")
    return use


def _duration(text: str) -> dt.timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 90m, 24h or 7d")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _instant(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO-8601 time") from None
    if when.tzinfo is None:
        raise typer.BadParameter("give the time zone, e.g. 2025-06-01T12:00:00Z")
    return when


@keys_app.command("generate")
def keys_generate(
    *,
    nation: Annotated[str | None, typer.Option(help="agency key for this nation")] = None,
    broker_key: Annotated[bool, typer.Option("--broker", help="the broker's key")] = False,
    governance: Annotated[
        bool, typer.Option("--governance", help="a key that signs the registry")
    ] = False,
    witness: Annotated[
        bool,
        typer.Option(
            "--witness", help="with --nation: the nation's witness key (cosigns checkpoints)"
        ),
    ] = False,
    auditor: AuditorOption = None,
    sealing: SealingOption = False,
    algorithm: AlgorithmOption = None,
    threshold: Annotated[
        int | None,
        typer.Option(min=1, help="with --governance: signatures the registry needs from now on"),
    ] = None,
) -> None:
    """Create a key pair, keep the private key, register the public key."""
    role, nation = _role(nation, broker_key, governance, auditor, witness)
    use = _use(role, sealing, algorithm)
    if threshold is not None and role is not KeyRole.GOVERNANCE:
        raise typer.BadParameter("--threshold goes with --governance")
    registry_file, keystore = _open()
    try:
        registry = registry_file.current()
        if threshold is not None:  # refused before a private key is written for nothing
            rule = registry.governance
            members = (len(rule.key_ids) if rule else 0) + 1
            if threshold > members:
                raise ConfigurationError(
                    f"governance threshold {threshold}: more than the {members} governance keys"
                )
        record: KeyRecord
        if use is KeyUse.SEALING:
            record, _ = keystore.generate_sealing(
                role=role, nation=nation, algorithm=algorithm or X25519
            )
        else:
            record, _ = keystore.generate(role=role, nation=nation, algorithm=algorithm or ED25519)
        registry = registry.with_key(record)
        if role is KeyRole.GOVERNANCE:
            registry = registry.with_governance(_governed_also_by(registry, record, threshold))
        installed = _commit(registry_file, registry)
    except IxbError as exc:
        raise _fail(exc) from exc
    if installed:
        out.print(
            f"generated {record.role.value} {use.value} key [bold]{record.key_id}[/bold] "
            f"({record.algorithm}); registered in {registry_file.path}"
        )


def _governed_also_by(
    registry: PartnerRegistry, record: KeyRecord, threshold: int | None
) -> GovernanceRule:
    rule = registry.governance
    key_ids = (*rule.key_ids, record.key_id) if rule else (record.key_id,)
    wanted = threshold or (rule.threshold if rule else 1)
    try:
        return GovernanceRule(threshold=wanted, key_ids=key_ids)
    except ValueError as exc:
        raise ConfigurationError(f"governance threshold {wanted}: {exc}") from exc


@keys_app.command("rotate")
def keys_rotate(
    *,
    nation: Annotated[str | None, typer.Option(help="rotate this nation's agency key")] = None,
    broker_key: Annotated[bool, typer.Option("--broker", help="rotate the broker's key")] = False,
    auditor: AuditorOption = None,
    sealing: SealingOption = False,
    overlap: Annotated[
        str, typer.Option(help="how long the old key keeps verifying, e.g. 24h")
    ] = "24h",
    algorithm: Annotated[
        str | None, typer.Option(help="algorithm of the new key (default: the old key's)")
    ] = None,
) -> None:
    """Generate a new key; the current one stays valid for the overlap, then expires."""
    role, nation = _role(nation, broker_key, False, auditor)
    use = _use(role, sealing, algorithm)
    window = _duration(overlap)
    registry_file, keystore = _open()
    try:
        registry, record = keystore.rotate(
            registry_file.current(),
            role=role,
            nation=nation,
            overlap=window,
            algorithm=algorithm,
            use=use,
        )
        installed = _commit(registry_file, registry)
    except IxbError as exc:
        raise _fail(exc) from exc
    if installed:
        verb = "verifies" if use is KeyUse.SIGNING else "may be sealed to"
        out.print(
            f"rotated to {record.role.value} {use.value} key [bold]{record.key_id}[/bold]; "
            f"the previous key {verb} for another {overlap}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key to revoke")],
    at: Annotated[
        str | None,
        typer.Option(
            help="effective time, ISO-8601 with zone (default now); what reached the "
            "broker before it stays valid, nothing it signed reaching the broker later is"
        ),
    ] = None,
    reason: Annotated[RevocationReason | None, typer.Option(help="why")] = None,
) -> None:
    """Revoke a key from a time on: what it signed that reaches Kafka from then on is refused.

    Judged at the time Kafka appended the record, not at the issued-at the
    signer claims; what reached Kafka before keeps verifying.
    """
    effective = _instant(at)
    registry_file, _ = _open()
    try:
        installed = _commit(
            registry_file, registry_file.current().revoking(key_id, effective, reason)
        )
    except IxbError as exc:
        raise _fail(exc) from exc
    if installed:
        out.print(f"revoked [bold]{key_id}[/bold] from {effective.isoformat()}")


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document per key")] = False,
) -> None:
    """The keys in the partner registry, one per line, with their status now.

    Columns, tab-separated: key id, role, nation, algorithm, not before,
    not after, revoked at, status.
    """
    registry_file, _ = _open()
    try:
        records = registry_file.current().records()
    except IxbError as exc:
        raise _fail(exc) from exc
    now = dt.datetime.now(dt.UTC)
    for key in records:
        if as_json:
            print_json_line(
                {
                    "key_id": key.key_id,
                    "role": key.role.value,
                    "nation": key.nation,
                    "algorithm": key.algorithm,
                    "not_before": _when(key.not_before),
                    "not_after": None if key.not_after is None else _when(key.not_after),
                    "revoked_at": None if key.revoked_at is None else _when(key.revoked_at),
                    "status": _status(key, now),
                }
            )
            continue
        columns = (
            key.key_id,
            key.role.value,
            key.nation or "-",
            key.algorithm,
            _when(key.not_before),
            _when(key.not_after),
            _when(key.revoked_at),
            _status(key, now),
        )
        typer.echo("\t".join(columns))  # plain: rich would wrap long rows


def _when(instant: dt.datetime | None) -> str:
    return "-" if instant is None else instant.astimezone(dt.UTC).isoformat(timespec="seconds")


def _status(key: KeyRecord, now: dt.datetime) -> str:
    if key.revoked_at is not None and now >= key.revoked_at:
        return "revoked"
    if now < key.not_before:
        return "pending"
    if key.not_after is not None and now >= key.not_after:
        return "expired"
    return "active"


@keys_app.command("export")
def keys_export(
    out_file: Annotated[Path | None, typer.Option("--out", help="default: stdout")] = None,
    anchor: Annotated[
        bool,
        typer.Option(
            "--anchor",
            help="the governance trust anchor instead; partners keep it as "
            "<their registry>.anchor.json",
        ),
    ] = False,
) -> None:
    """The signed registry as partners receive it, or its governance trust anchor."""
    registry_file, _ = _open()
    try:
        document = registry_file.document()
    except IxbError as exc:
        raise _fail(exc) from exc
    if document is None:
        raise _fail(ConfigurationError(f"no registry at {registry_file.path} to export"))
    data = (
        document.trust().model_dump_json(indent=2).encode() + b"\n"
        if anchor
        else document_bytes(document)
    )
    if out_file is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        out_file.write_bytes(data)
        err.print(f"wrote {'trust anchor' if anchor else 'registry'} to {out_file}")


@keys_app.command("sign")
def keys_sign(
    proposal: Annotated[Path, typer.Argument(help="a proposal written by generate/rotate/revoke")],
) -> None:
    """Add this keystore's governance signatures to a proposal; install it once enough."""
    registry_file, _ = _open()
    try:
        document = parse_document(proposal.read_bytes())
        signed = registry_file.sign(document)
        if {s.key_id for s in signed.signatures} == {s.key_id for s in document.signatures}:
            raise ConfigurationError(
                "no signature added: this keystore holds none of the governance keys asked "
                "that have not signed yet"
            )
        _install_or_keep(registry_file, signed, proposal)
    except OSError as exc:
        raise _fail(ConfigurationError(f"cannot read {proposal}: {exc.strerror}")) from exc
    except IxbError as exc:
        raise _fail(exc) from exc


def _install_or_keep(registry_file: RegistryFile, document: RegistryDocument, path: Path) -> None:
    try:
        registry_file.install(document)
    except RegistryRefused as exc:
        if exc.reason != UNDER_SIGNED:
            raise
        registry_file.write_proposal(document, path)
        out.print(f"signed; {exc.detail}: pass {path} on to the next governance holder")
        return
    path.unlink(missing_ok=True)
    out.print(f"installed registry version {document.version} in {registry_file.path}")
