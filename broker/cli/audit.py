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
from rich.markup import escape

from broker.app.assembly import load_catalog
from broker.app.auditing import audit_source, intake_window
from broker.app.settings import Settings
from broker.auditlog.checkpoints import checkpoint_verifier
from broker.auditlog.entries import Outcome, decode_entry
from broker.auditlog.receipt_registry import registry_for_receipt
from broker.auditlog.receipts import receipt_from_json, receipt_to_json, verify_receipt
from broker.auditlog.witness_client import WitnessClient
from broker.auditlog.witnessed import WitnessKeys
from broker.auditor.export import render_html, write_jsonl
from broker.auditor.replay import ReplayFilter
from broker.auditor.replay_output import report_document, report_lines
from broker.auditor.summary import FlowSummary
from broker.auditor.use_cases import (
    Witnessing,
    issue_receipt,
    replay_audit,
    sign_checkpoints,
    verify_audit,
)
from broker.auditor.verify import VerificationReport
from broker.cli.console import console, print_json_line
from broker.errors import ConfigurationError, DecodeError, IxbError, RejectedInput
from broker.trust.keystore import Keystore
from broker.trust.note import parse_note
from broker.trust.registry_file import RegistryFile
from broker.wire.codec import SchemaCatalog

audit_app = typer.Typer(help="The decision log: checkpoints, verification, export, replay.")
out = console()
err = console(stderr=True)


TrustedOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--trusted-checkpoint",
        help="a C2SP checkpoint kept outside the broker (e.g. a witness's latest); repeatable",
    ),
]
WitnessOption = Annotated[
    list[str] | None,
    typer.Option(
        "--witness",
        help="a witness to ask for its latest cosigned checkpoints; repeatable "
        "(default IXB_WITNESSES)",
    ),
]
QuorumOption = Annotated[
    int | None,
    typer.Option(
        min=0, help="partners' witnesses that must have cosigned (default IXB_WITNESS_QUORUM)"
    ),
]


def _witnessing(
    settings: Settings, trusted: list[Path] | None, witnesses: list[str] | None, quorum: int | None
) -> Witnessing:
    held = []
    for path in trusted or []:
        try:
            held.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise ConfigurationError(f"cannot read the trusted checkpoint {path}") from exc
    urls = witnesses if witnesses else list(settings.witness_urls)
    return Witnessing(
        held=held,
        witnesses=[WitnessClient(u, timeout_s=settings.witness_timeout_s) for u in urls],
        quorum=settings.witness_quorum if quorum is None else quorum,
    )


@audit_app.command("verify")
def audit_verify(
    trusted: TrustedOption = None,
    witness: WitnessOption = None,
    quorum: QuorumOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document per log")] = False,
) -> None:
    """Recompute every tree, check every checkpoint; exit 1 naming the first bad entry.

    Checkpoints held outside the broker (--trusted-checkpoint, the witnesses'
    latest) must still be in the log; with --quorum K, K partners' witnesses
    must have cosigned a checkpoint the log matches.
    """
    try:
        settings = Settings()
        witnessing = _witnessing(settings, trusted, witness, quorum)
        reports, _ = asyncio.run(verify_audit(audit_source(settings), witnessing))
    except RejectedInput as exc:
        err.print(f"[red]cannot verify:[/red] {exc.reason}: {exc.detail}")
        raise typer.Exit(code=2) from exc
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    if as_json:
        for report in reports:
            print_json_line(_verification_document(report))
        raise typer.Exit(code=1 if any(r.problem for r in reports) else 0)
    bad = 0
    now = dt.datetime.now(dt.UTC)
    for report in reports:
        if report.problem is None:
            out.print(_verified(report, witnessing.quorum, now), markup=False, highlight=False)
            continue
        bad += 1
        p = report.problem
        out.print(
            f"[red]{report.log_id}: {p.reason}[/red] at offset {p.offset} (index {p.index}): "
            f"{escape(p.detail)}"
        )
    if not reports:
        out.print("the decision log is empty")
    raise typer.Exit(code=1 if bad else 0)


def _verification_document(report: VerificationReport) -> dict[str, object]:
    problem = report.problem
    return {
        "log_id": report.log_id,
        "ok": problem is None,
        "entries": report.entries,
        "duplicates": report.duplicates,
        "checkpoints": report.checkpoints,
        "consistency_steps": report.consistency_steps,
        "root_hash": report.root_hash.hex(),
        "problem": None
        if problem is None
        else {
            "reason": problem.reason,
            "offset": problem.offset,
            "index": problem.index,
            "detail": problem.detail,
        },
    }


def _verified(report: VerificationReport, quorum: int, now: dt.datetime) -> str:
    """One line: what holds, how far the checkpoints reach, and what is not signed yet."""
    repeats = f", {report.duplicates} duplicates (re-sent)" if report.duplicates else ""
    held = f", {report.held} held elsewhere" if report.held else ""
    line = (
        f"{report.log_id}: ok, {report.entries} entries{repeats}, "
        f"{report.checkpoints} checkpoints{held}, {report.consistency_steps} consistency steps"
    )
    if quorum:
        cosigners = ", ".join(report.cosigners)
        line += f"; witnessed to size {report.witnessed_size} by {cosigners} (quorum {quorum})"
    if report.unsigned:
        since = report.unsigned_since
        age = "" if since is None else f", the oldest {int((now - since).total_seconds())} s old"
        line += f"; {report.unsigned} entries after the newest checkpoint{age}"
    return line


@audit_app.command("checkpoint")
def audit_checkpoint(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document per log")] = False,
) -> None:
    """Sign the current size and root of every decision-log partition."""
    try:
        settings = Settings()
        source = audit_source(settings)
        signed = asyncio.run(sign_checkpoints(source, Keystore(settings.keystore_dir)))
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    for c in signed:
        if as_json:
            print_json_line(
                {
                    "log_id": c.log_id,
                    "tree_size": c.tree_size,
                    "root_hash": c.root_hash.hex(),
                    "signer_key_id": c.signer_key_id,
                    "at": c.at.isoformat(timespec="milliseconds"),
                }
            )
        else:
            out.print(
                f"{c.log_id}: size {c.tree_size} root {c.root_hash.hex()} by {c.signer_key_id}"
            )


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
    quorum: QuorumOption = None,
) -> None:
    """A receipt (JSON, entry included) proving the delivery's entry is in a signed checkpoint.

    The checkpoint carries every witness cosignature collected for it; with
    --quorum K, it is the latest checkpoint K partners' witnesses cosigned.
    """
    try:
        settings = Settings()
        wanted = settings.witness_quorum if quorum is None else quorum
        source = audit_source(settings)
        issued = asyncio.run(issue_receipt(source, delivery_id, outcome, quorum=wanted))
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
    quorum: QuorumOption = None,
) -> None:
    """Verify a receipt offline against the key registry; exit 1 naming what does not hold.

    With --quorum K (default IXB_WITNESS_QUORUM), K partners' witnesses must
    have cosigned the receipt's checkpoint.
    """
    settings = Settings()
    wanted = settings.witness_quorum if quorum is None else quorum
    try:
        registry_file = RegistryFile(settings.registry_path)
        current = registry_file.current()
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
        registry = registry_for_receipt(
            held, entry, catalog=catalog, holder=registry_file.document(), current=current
        )
        verify_receipt(
            held,
            entry,
            checkpoint_verifier(registry),
            witnesses=WitnessKeys(registry),
            quorum=wanted,
        )
    except RejectedInput as exc:
        out.print(f"[red]receipt refused: {exc.reason}[/red]: {exc.detail}")
        raise typer.Exit(code=1) from exc
    c = held.checkpoint
    cosigners = sorted(WitnessKeys(registry).cosigners(parse_note(c.note)))
    witnessed = f", cosigned by {', '.join(cosigners)}" if cosigners else ""
    out.print(
        f"ok: entry {held.index} of {c.log_id} is under the checkpoint of size {c.tree_size} "
        f"signed by {c.signer_key_id} at {c.at.isoformat(timespec='milliseconds')}{witnessed}"
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
