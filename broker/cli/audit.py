"""``ixb audit``: sign checkpoints of the decision log, verify it, export it, issue receipts.

The decision log is ``ixb.audit``: one Merkle tree (RFC 6962) per partition,
its leaves the entries in offset order (broker/auditlog/). ``checkpoint`` signs
the current size and root of every partition with the broker's key and
writes them to ``ixb.audit.checkpoints`` (the running broker also does so
periodically); ``verify`` recomputes every tree from the log, checks every
checkpoint's signature and every consistency step and names the first bad
entry; ``export`` writes JSON Lines and a self-contained HTML report.
``receipt`` writes a self-contained receipt for one delivery's entry, and
``check-receipt`` verifies one offline, from the receipt and the key
registry alone; ``replay`` re-runs the logged decisions
with the archived bundles (``ixb.bundles``) and submissions, and names every
one that comes out otherwise (broker/auditor/replay.py). Submissions are
sealed: ``replay`` opens them with the data-protection authority keys this
home holds, so a nation's authority replays that nation's reports and
counts the others as not its own ("Who replays what").

The work is the auditor's library (broker/auditor/use_cases.py); this module
builds its arguments from the settings (broker/app/auditing.py), parses the
options and renders the results.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from broker.app.assembly import load_catalog
from broker.app.auditing import audit_source, intake_window
from broker.app.settings import Settings
from broker.auditlog.checkpoints import checkpoint_verifier
from broker.auditlog.entries import Outcome, decode_entry
from broker.auditlog.receipts import receipt_from_json, receipt_to_json, verify_receipt
from broker.auditor.export import render_html, write_jsonl
from broker.auditor.replay import ReplayFilter
from broker.auditor.replay_output import report_document, report_lines
from broker.auditor.summary import FlowSummary
from broker.auditor.use_cases import issue_receipt, replay_audit, sign_checkpoints, verify_audit
from broker.errors import DecodeError, IxbError, RejectedInput
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog

audit_app = typer.Typer(help="The decision log: checkpoints, verification, export, replay.")
out = Console()
err = Console(stderr=True)


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute every tree, check every checkpoint; exit 1 naming the first bad entry."""
    try:
        reports, _ = asyncio.run(verify_audit(audit_source(Settings())))
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


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the current size and root of every decision-log partition."""
    try:
        settings = Settings()
        source = audit_source(settings)
        signed = asyncio.run(sign_checkpoints(source, Keystore(settings.keystore_dir)))
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
    try:
        source = audit_source(Settings())
        reports, logs = asyncio.run(verify_audit(source))
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    catalog = source.catalog
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
        issued = asyncio.run(issue_receipt(audit_source(Settings()), delivery_id, outcome))
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
        settings = Settings()
        source, window = audit_source(settings), intake_window(settings)
        keys = Keystore(settings.keystore_dir)  # this auditor's own sealing keys
        report = asyncio.run(replay_audit(source, admit, window, keys=keys, cached=not uncached))
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    if as_json:
        typer.echo(json.dumps(report_document(report), indent=2))
    else:
        for line in report_lines(report):
            out.print(line, markup=False, highlight=False)
    raise typer.Exit(code=0 if report.ok else 1)
