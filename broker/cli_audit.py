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
registry alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from broker.audit.checkpoints import (
    Checkpoint,
    Checkpointer,
    checkpoint_verifier,
    decode_checkpoint,
    encode_checkpoint,
    log_id_of,
)
from broker.audit.entries import Outcome, decode_entry
from broker.audit.export import render_html, write_jsonl
from broker.audit.receipts import (
    Receipt,
    receipt_for_delivery,
    receipt_from_json,
    receipt_to_json,
    verify_receipt,
)
from broker.audit.summary import FlowSummary
from broker.audit.verify import VerificationReport, verify_log
from broker.codec import SchemaCatalog
from broker.errors import DecodeError, IxbError, RejectedInput
from broker.service import load_catalog, resolve_bootstrap
from broker.settings import Settings
from broker.topics import TopicNames
from broker.transport import OutboundRecord, OutputProducer, TopicAdmin, read_topic
from broker.trust.keys import KeyRole, Keystore, RegistryFile

audit_app = typer.Typer(help="The decision log: checkpoints, verification, export.")
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
    signed = []
    for log_id, records in (await _read_logs(bootstrap, topics.audit)).items():
        checkpointer = Checkpointer(log_id, signer, lambda: now)
        checkpointer.extend(records)
        signed.append(checkpointer.checkpoint())
    admin = TopicAdmin(bootstrap)
    producer = OutputProducer(bootstrap, admin, client_id="ixb-audit-checkpoint")
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
