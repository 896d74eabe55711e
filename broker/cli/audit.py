"""``ixb audit``: sign checkpoints of the decision log, verify it, export it, issue receipts.

The decision log is ``ixb.audit``: one Merkle tree (RFC 6962) per partition,
its leaves the entries in offset order (broker/audit/). ``checkpoint`` signs
the current size and root of every partition with the broker's key and
writes them to ``ixb.audit.checkpoints`` (the running broker also does so
periodically); ``verify`` recomputes every tree from the log, checks every
checkpoint's signature and every consistency step and names the first bad
entry; ``export`` writes JSON Lines and a self-contained HTML report.
``receipt`` writes a self-contained receipt for one delivery's entry, and
``check-receipt`` verifies one offline, from the receipt and the key
registry alone; ``replay`` re-runs the logged decisions
with the archived bundles (``ixb.bundles``) and submissions, and names every
one that comes out otherwise (broker/auditor/replay.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from broker.app.assembly import load_catalog, output_producer, resolve_bootstrap
from broker.app.settings import Settings
from broker.auditlog.bundles import BundleShelf
from broker.auditlog.checkpoints import (
    Checkpoint,
    Checkpointer,
    checkpoint_verifier,
    decode_checkpoint,
    encode_checkpoint,
    log_id_of,
    signed_checkpoints,
)
from broker.auditlog.entries import FirstWritten, Outcome, decode_entry
from broker.auditlog.receipts import (
    Receipt,
    receipt_for_delivery,
    receipt_from_json,
    receipt_to_json,
    verify_receipt,
)
from broker.auditor.export import render_html, write_jsonl
from broker.auditor.received import ReceivedViews
from broker.auditor.replay import LoggedEntry, Replayer, ReplayFilter, ReplayReport
from broker.auditor.replay_output import report_document, report_lines
from broker.auditor.summary import FlowSummary
from broker.auditor.verify import VerificationReport, verify_log
from broker.enforcer.stages.intake import Intake
from broker.enforcer.stages.replay_guard import Position, ReplayGuard
from broker.errors import DecodeError, IxbError, RejectedInput
from broker.kafka.admin import TopicAdmin
from broker.kafka.reader import read_topic
from broker.policy import PolicyDecisionPoint
from broker.policy.bundle import PolicyBundle
from broker.policy.cache import CachedDecisionPoint
from broker.policy.rego import RegoDecisionPoint
from broker.trust.keys import KeyRole, Keystore, PartnerRegistry, RegistryFile
from broker.trust.sd.disclosure import ReportLayout
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from broker.wire.topics import TopicNames

audit_app = typer.Typer(help="The decision log: checkpoints, verification, export, replay.")
out = Console()
err = Console(stderr=True)

Logs = dict[str, list[tuple[int, bytes]]]


async def _read_logs(bootstrap: str, topic: str) -> Logs:
    """Every record of ``topic``, grouped by partition (one log each), in offset order."""
    logs: Logs = defaultdict(list)
    async for record in read_topic(bootstrap, topic, idle_timeout_s=2.0):
        logs[log_id_of(topic, record.partition)].append((record.offset, record.value or b""))
    for records in logs.values():
        records.sort()
    return dict(sorted(logs.items()))


async def verify_audit(settings: Settings) -> tuple[list[VerificationReport], Logs]:
    bootstrap = resolve_bootstrap(settings)
    topics = TopicNames(settings.topic_namespace)
    catalog = load_catalog(settings)
    registry = RegistryFile(settings.registry_path).current()
    logs = await _read_logs(bootstrap, topics.audit)
    checkpoints = [
        value
        for records in (await _read_logs(bootstrap, topics.audit_checkpoints)).values()
        for _, value in records
    ]
    verify = checkpoint_verifier(registry)
    reports = [
        verify_log(log_id, records, checkpoints, verify, catalog=catalog)
        for log_id, records in logs.items()
    ]
    return reports, logs


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute every tree, check every checkpoint; exit 1 naming the first bad entry."""
    try:
        reports, _ = asyncio.run(verify_audit(Settings()))
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    bad = 0
    for report in reports:
        if report.problem is None:
            repeats = f", {report.duplicates} duplicates (re-sent)" if report.duplicates else ""
            out.print(
                f"{report.log_id}: ok, {report.entries} entries{repeats}, "
                f"{report.checkpoints} checkpoints, {report.consistency_steps} consistency steps"
            )
            continue
        bad += 1
        p = report.problem
        out.print(
            f"[red]{report.log_id}: {p.reason}[/red] at offset {p.offset} (index {p.index}): "
            f"{p.detail}"
        )
    if not reports:
        out.print("the decision log is empty")
    raise typer.Exit(code=1 if bad else 0)


async def sign_checkpoints(settings: Settings) -> list[Checkpoint]:
    bootstrap = resolve_bootstrap(settings)
    topics = TopicNames(settings.topic_namespace)
    catalog = load_catalog(settings)
    keystore = Keystore(settings.keystore_dir)
    registry = RegistryFile(settings.registry_path).current()
    record = keystore.newest_usable(registry, role=KeyRole.BROKER, nation=None)
    signer = keystore.private_key(record.key_id)
    now = dt.datetime.now(dt.UTC)
    earlier, _ = signed_checkpoints(
        catalog,
        [
            r
            for records in (await _read_logs(bootstrap, topics.audit_checkpoints)).values()
            for r in records
        ],
        checkpoint_verifier(registry),
    )
    signed = []
    for log_id, records in (await _read_logs(bootstrap, topics.audit)).items():
        checkpointer = Checkpointer(log_id, signer, lambda: now)
        checkpointer.extend(records)
        for before in earlier.get(log_id, []):  # still what was signed: never sign a fork
            checkpointer.resume(before)
        signed.append(checkpointer.checkpoint())
    admin = TopicAdmin(bootstrap)
    producer = output_producer(settings, bootstrap, admin, client_id="ixb-audit-checkpoint")
    await admin.start()
    await producer.start()
    try:
        await producer.send_all(
            [
                OutboundRecord(
                    topics.audit_checkpoints, c.log_id.encode(), encode_checkpoint(catalog, c)
                )
                for c in signed
            ]
        )
    finally:
        await producer.stop()
        await admin.close()
    return signed


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the current size and root of every decision-log partition."""
    try:
        signed = asyncio.run(sign_checkpoints(Settings()))
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    for c in signed:
        out.print(f"{c.log_id}: size {c.tree_size} root {c.root_hash.hex()} by {c.signer_key_id}")


@audit_app.command("export")
def audit_export(
    directory: Annotated[Path, typer.Option("--out", help="directory for audit.jsonl, audit.html")],
) -> None:
    """JSON Lines of every entry, and a self-contained HTML report with the verification."""
    settings = Settings()
    try:
        reports, logs = asyncio.run(verify_audit(settings))
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    catalog: SchemaCatalog = load_catalog(settings)
    directory.mkdir(parents=True, exist_ok=True)
    summary = FlowSummary()
    lines = 0
    with (directory / "audit.jsonl").open("w", encoding="utf-8") as jsonl:
        for log_id, records in logs.items():
            lines += write_jsonl(jsonl, catalog, log_id, records, summary)
    html = render_html(summary, reports, generated_at=dt.datetime.now(dt.UTC))
    (directory / "audit.html").write_text(html, encoding="utf-8")
    out.print(
        f"wrote {lines} entries to {directory / 'audit.jsonl'} and {directory / 'audit.html'}"
    )


async def issue_receipt(
    settings: Settings, delivery_id: str, outcome: Outcome | None = None
) -> Receipt:
    """A self-contained receipt for a delivery's latest entry, under its latest checkpoint."""
    bootstrap = resolve_bootstrap(settings)
    topics = TopicNames(settings.topic_namespace)
    catalog = load_catalog(settings)
    registry = RegistryFile(settings.registry_path).current()
    logs = await _read_logs(bootstrap, topics.audit)
    checkpoints = []
    for records in (await _read_logs(bootstrap, topics.audit_checkpoints)).values():
        for _, value in records:
            try:
                checkpoints.append(decode_checkpoint(catalog, value))
            except DecodeError:
                continue  # ``ixb audit verify`` names it
    return receipt_for_delivery(
        logs,
        checkpoints,
        delivery_id,
        checkpoint_verifier(registry),
        catalog=catalog,
        outcome=outcome,
    )


@audit_app.command("receipt")
def audit_receipt(
    delivery_id: Annotated[str, typer.Option("--delivery-id", help="the delivery's id")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="write the receipt here, not to stdout")
    ] = None,
    outcome: Annotated[
        Outcome | None, typer.Option(help="the entry of this outcome (default: the latest)")
    ] = None,
) -> None:
    """A receipt (JSON, entry included) proving the delivery's entry is in a signed checkpoint."""
    try:
        issued = asyncio.run(issue_receipt(Settings(), delivery_id, outcome))
    except RejectedInput as exc:
        err.print(f"[red]no receipt:[/red] {exc.reason}: {exc.detail}")
        raise typer.Exit(code=1) from exc
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    document = json.dumps(receipt_to_json(issued), indent=2) + "\n"
    if out_file is None:
        out.print(document, end="", markup=False, highlight=False, soft_wrap=True)
        return
    out_file.write_text(document, encoding="utf-8")
    c = issued.checkpoint
    out.print(
        f"wrote {out_file}: entry {issued.index} of {c.log_id} under the checkpoint of size "
        f"{c.tree_size} signed by {c.signer_key_id}"
    )


@audit_app.command("check-receipt")
def audit_check_receipt(
    receipt_file: Annotated[Path, typer.Argument(help="a receipt written by `ixb audit receipt`")],
    entry_file: Annotated[
        Path | None,
        typer.Option(help="the entry's bytes, for a receipt that does not carry them"),
    ] = None,
) -> None:
    """Verify a receipt offline against the key registry; exit 1 naming what does not hold."""
    settings = Settings()
    try:
        registry = RegistryFile(settings.registry_path).current()
        catalog = load_catalog(settings)
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    try:
        try:
            document = json.loads(receipt_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError("malformed_receipt", f"cannot read {receipt_file}") from exc
        held = receipt_from_json(document)
        entry = None if entry_file is None else entry_file.read_bytes()
        verify_receipt(held, entry, checkpoint_verifier(registry))
    except RejectedInput as exc:
        out.print(f"[red]receipt refused: {exc.reason}[/red]: {exc.detail}")
        raise typer.Exit(code=1) from exc
    c = held.checkpoint
    out.print(
        f"ok: entry {held.index} of {c.log_id} is under the checkpoint of size {c.tree_size} "
        f"signed by {c.signer_key_id} at {c.at.isoformat(timespec='milliseconds')}"
    )
    _describe(catalog, entry if entry is not None else held.entry)


def _describe(catalog: SchemaCatalog, entry: bytes | None) -> None:
    """What the verified entry says: outcome, nations, delivery, digest; never a value."""
    if entry is None:
        return
    try:
        event = decode_entry(catalog, entry).event
    except DecodeError as exc:
        out.print(f"the entry does not decode ({exc.reason})")
        return
    digest = "-" if event.delivery_sha256 is None else event.delivery_sha256.hex()
    out.print(
        f"{event.outcome.value}: {event.origin} -> {event.recipient or '-'}, "
        f"delivery {event.delivery_id or '-'} (statement sha256 {digest}), "
        f"at {event.at.isoformat(timespec='milliseconds')}"
    )


def replayer_for(
    settings: Settings,
    catalog: SchemaCatalog,
    registry: PartnerRegistry,
    archives: list[bytes],
    *,
    cached: bool = True,
) -> Replayer:
    """A replayer judging intake as the enforcer does and deciding with regopy in-process.

    The archived Rego and data are what decided, whichever engine evaluated
    them (regopy or an OPA server): both go through one decision contract.
    ``cached`` puts each bundle behind the enforcer's own decision cache
    (broker/policy/cache.py); without it every decision is evaluated in Rego
    (about 10 ms each here), independently of the cache's reasoning.
    """

    def build(bundle: PolicyBundle) -> PolicyDecisionPoint:
        point = RegoDecisionPoint(bundle)
        return CachedDecisionPoint(point, bundle.time_boundaries_s()) if cached else point

    layout = ReportLayout.from_catalog(catalog)
    intake = Intake(
        catalog,
        TopicNames(settings.topic_namespace),
        max_clock_skew=dt.timedelta(seconds=settings.max_clock_skew_s),
        replay=ReplayGuard(dt.timedelta(seconds=settings.max_report_age_s)),
        layout=layout,
    )
    shelf = BundleShelf(archives, catalog, build)
    return Replayer(intake, registry, shelf, ReceivedViews(layout))


async def replay_audit(
    settings: Settings, admit: ReplayFilter, *, cached: bool = True
) -> ReplayReport:
    """Read the log, the bundle archives and the submissions it names; replay what ``admit`` asks.

    Entries are replayed in the order of their time (then log and offset).
    """
    bootstrap = resolve_bootstrap(settings)
    topics = TopicNames(settings.topic_namespace)
    catalog = load_catalog(settings)
    registry = RegistryFile(settings.registry_path).current()
    entries, undecodable, first = [], 0, FirstWritten()
    for log_id, records in (await _read_logs(bootstrap, topics.audit)).items():
        for offset, value in records:
            try:
                entry = decode_entry(catalog, value)
            except DecodeError:
                undecodable += 1  # named by `ixb audit verify`
                continue
            if admit.admits(entry.event) and first.first(entry, value):
                entries.append(LoggedEntry(log_id, offset, entry))
    entries.sort(key=lambda e: (e.entry.event.at, e.log_id, e.offset))
    archives = [
        record.value
        async for record in read_topic(bootstrap, topics.bundles, idle_timeout_s=2.0)
        if record.value is not None
    ]
    wanted = {
        (ref.topic, ref.partition, ref.offset)
        for e in entries
        if (ref := e.entry.event.submission) is not None
    }
    submissions: dict[Position, bytes | None] = {}
    for topic in sorted({topic for topic, _, _ in wanted}):
        async for record in read_topic(bootstrap, topic, idle_timeout_s=2.0):
            position = (record.topic, record.partition, record.offset)
            if position in wanted:
                submissions[position] = record.value
    replayer = replayer_for(settings, catalog, registry, archives, cached=cached)
    report = replayer.replay(entries, submissions)
    unread = {"undecodable_entry": undecodable, "repeated_entry": first.repeats}
    if any(unread.values()):
        skipped = {**report.skipped, **{k: n for k, n in unread.items() if n}}
        report = dataclasses.replace(report, skipped=skipped)
    return report


def _instant(text: str) -> dt.datetime:
    """An ISO 8601 instant; one without a zone is taken as UTC."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


@audit_app.command("replay")
def audit_replay(
    *,
    since: Annotated[str, typer.Option(help="first instant to replay, ISO 8601 (UTC if no zone)")],
    until: Annotated[str, typer.Option(help="replay entries before this instant")],
    origin: Annotated[str | None, typer.Option(help="only reports from this nation")] = None,
    recipient: Annotated[str | None, typer.Option(help="only decisions for this nation")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout")] = False,
    uncached: Annotated[
        bool,
        typer.Option(
            "--uncached", help="evaluate every decision in Rego, not through the decision cache"
        ),
    ] = False,
) -> None:
    """Re-run every logged decision with its archived bundle; exit 1 if any comes out otherwise."""
    admit = ReplayFilter(_instant(since), _instant(until), origin, recipient)
    try:
        report = asyncio.run(replay_audit(Settings(), admit, cached=not uncached))
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    if as_json:
        typer.echo(json.dumps(report_document(report), indent=2))
    else:
        for line in report_lines(report):
            out.print(line, markup=False, highlight=False)
    raise typer.Exit(code=0 if report.ok else 1)
