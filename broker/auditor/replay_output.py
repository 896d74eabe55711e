"""How ``ixb audit replay`` shows its report: text for people, one JSON document for tools.

Both say, for every finding, the entry (log id and offset) and, field by
field, what was recorded and what the replay gives; and, per origin and
recipient, what the recipient received: the distinct views (field paths
visible, withheld, derived with their kind) and how many deliveries had
each. Only ids, reason codes, hashes and paths appear, never a value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from broker.auditor.received import Received
from broker.auditor.replay import Replayed, ReplayReport, Verdict

__all__ = ["report_document", "report_lines"]


def report_lines(report: ReplayReport) -> Iterator[str]:
    """The report as text lines: a summary, each finding, then what each recipient received."""
    findings = report.findings
    yield (
        f"replayed {len(report.replayed)} entries: {len(findings)} findings, "
        f"{len(report.replayed) - len(findings)} as recorded"
    )
    if report.skipped:
        yield "not replayed: " + ", ".join(f"{k} {v}" for k, v in sorted(report.skipped.items()))
    for hash_, count in sorted(bundles_used(report).items()):
        yield f"bundle {hash_}: {count} decisions"
    for r in findings:
        yield _finding_line(r)
    for (origin, recipient), views in sorted(received_by_pair(report).items()):
        yield f"{origin} -> {recipient}: {sum(views.values())} deliveries"
        for view, count in views.most_common():
            yield f"  {count} x visible: {', '.join(view.visible) or '-'}"
            yield f"      withheld: {', '.join(view.withheld) or '-'}"
            derived = ", ".join(f"{path} ({kind})" for path, kind in view.derived)
            yield f"      derived: {derived or '-'}"


def report_document(report: ReplayReport) -> dict[str, Any]:
    """The report as one JSON-serialisable document (every replayed entry, findings first)."""
    return {
        "replayed": len(report.replayed),
        "findings": len(report.findings),
        "skipped": dict(report.skipped),
        "undecodable_archives": report.undecodable_archives,
        "bundles": bundles_used(report),
        "entries": [_entry(r) for r in sorted(report.replayed, key=lambda r: r.ok)],
        "received": [
            {"origin": origin, "recipient": recipient, "deliveries": count, **_view(view)}
            for (origin, recipient), views in sorted(received_by_pair(report).items())
            for view, count in views.most_common()
        ],
    }


def bundles_used(report: ReplayReport) -> dict[str, int]:
    used = Counter(r.bundle_hash for r in report.replayed if r.bundle_hash)
    return dict(sorted(used.items()))


def received_by_pair(report: ReplayReport) -> dict[tuple[str, str], Counter[Received]]:
    """Per (origin, recipient), the distinct views replayed deliveries gave, counted."""
    pairs: dict[tuple[str, str], Counter[Received]] = {}
    for r in report.replayed:
        if r.received is not None and r.recipient is not None:
            pairs.setdefault((r.origin, r.recipient), Counter())[r.received] += 1
    return pairs


def _finding_line(r: Replayed) -> str:
    where = f"{r.log_id}@{r.offset} ({r.at.isoformat()}, {r.origin} -> {r.recipient or '-'})"
    if r.replayed is None:
        return f"{where}: {r.finding}; recorded {_verdict(r.recorded)}"
    changes = "; ".join(
        f"{name}: recorded {_value(r.recorded, name)}, replay {_value(r.replayed, name)}"
        for name in r.differences
    )
    return f"{where}: {r.finding}: {changes}"


def _verdict(verdict: Verdict) -> str:
    text = verdict.outcome
    if verdict.agreement_id:
        text += f" under {verdict.agreement_id} v{verdict.agreement_version}"
    if verdict.reasons:
        text += f" ({', '.join(verdict.reasons)})"
    return text


def _value(verdict: Verdict, name: str) -> str:
    value = getattr(verdict, name)
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return str(value)


def _entry(r: Replayed) -> dict[str, Any]:
    return {
        "log_id": r.log_id,
        "offset": r.offset,
        "at": r.at.isoformat(),
        "origin": r.origin,
        "recipient": r.recipient,
        "report_id": r.report_id,
        "delivery_id": r.delivery_id,
        "bundle_hash": r.bundle_hash,
        "finding": r.finding,
        "differences": list(r.differences),
        "recorded": _verdict_document(r.recorded),
        "replayed": None if r.replayed is None else _verdict_document(r.replayed),
        "received": None if r.received is None else _view(r.received),
    }


def _verdict_document(verdict: Verdict) -> dict[str, Any]:
    return {
        "outcome": verdict.outcome,
        "agreement_id": verdict.agreement_id,
        "agreement_version": verdict.agreement_version,
        "reasons": list(verdict.reasons),
        "withheld_fields": list(verdict.withheld_fields),
        "derived_fields": list(verdict.derived_fields),
    }


def _view(view: Received) -> dict[str, Any]:
    return {
        "visible": list(view.visible),
        "withheld": list(view.withheld),
        "derived": [{"path": path, "kind": kind} for path, kind in view.derived],
    }
