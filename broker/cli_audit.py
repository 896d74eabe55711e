"""``ixb audit``: sign checkpoints of the decision log, verify it, export it for auditors.

The decision log is ``ixb.audit``: one Merkle tree (RFC 6962) per partition,
its leaves the entries in offset order (broker/audit/). ``checkpoint`` signs
the current size and root of every partition with the broker's key and
writes them to ``ixb.audit.checkpoints``; ``verify`` recomputes every tree
from the log, checks every checkpoint's signature and every consistency step
and names the first bad entry; ``export`` writes JSON Lines and a
self-contained HTML report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from broker.audit.checkpoints import (
    Checkpoint,
    Checkpointer,
    VerifySignature,
    encode_checkpoint,
    log_id_of,
)
from broker.audit.export import render_html, write_jsonl
from broker.audit.summary import FlowSummary
from broker.audit.verify import VerificationReport, verify_log
from broker.codec import SchemaCatalog
from broker.errors import IxbError, VerificationError
from broker.service import load_catalog, resolve_bootstrap
from broker.settings import Settings
from broker.topics import TopicNames
from broker.transport import OutboundRecord, OutputProducer, TopicAdmin, read_topic
from broker.trust.keys import KeyRole, Keystore, PartnerRegistry, RegistryFile
from broker.trust.signatures import verify_signature

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


def checkpoint_verifier(registry: PartnerRegistry) -> VerifySignature:
    """Checks a checkpoint signature: a broker key of the registry must have made it."""

    def verify(key_id: str, signature: bytes, message: bytes) -> None:
        key = registry.key(key_id)
        if key.role is not KeyRole.BROKER:
            raise VerificationError("wrong_key_role", f"{key_id} is not a broker key")
        verify_signature(key, signature, message)

    return verify


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
            out.print(
                f"{report.log_id}: ok, {report.entries} entries, "
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
