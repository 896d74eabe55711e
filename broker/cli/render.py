"""How deliveries and rejections look to people (rich) and to tools (JSON).

The JSON documents are defined once, in broker/app/documents.py, and
re-exported here for the commands; the console serves the same ones.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Console
from rich.markup import escape

from broker.app.documents import decision_json, delivery_json, pseudonym_note, rejection_json
from broker.domain.decisions import Decision
from broker.domain.fields import FieldPath
from broker.domain.report import ThreatReport
from broker.enforcer.stages.derive import effective_rules
from broker.parties.recipient import VerifiedDelivery
from broker.policy.bundle import PolicyBundle

__all__ = [
    "WITHHELD",
    "decision_json",
    "delivery_json",
    "print_decision",
    "print_delivery",
    "print_rejection",
    "pseudonym_note",
    "rejection_json",
]

WITHHELD = "‹withheld›"


def print_delivery(console: Console, delivery: VerifiedDelivery) -> None:
    report = delivery.report
    shown = report.model_dump(mode="json")
    for field in delivery.withheld_fields:
        _mark(shown, FieldPath.parse(field).steps)
    console.print(
        f"[bold]{report.report_type.value}[/bold] {report.marking.value} "
        f"{report.handling_code.value} "
        f"from [bold]{report.origin}[/bold] ({escape(report.agency)}) "
        f"under {delivery.agreement_id} v{delivery.agreement_version} "
        f"[dim]id {report.report_id} · verified {delivery.broker_key_id}[/dim]"
    )
    console.print(f"  {escape(report.title)}")
    for name in ("location", "subjects", "vehicles", "indicators"):
        value = shown.get(name)
        if value:
            console.print(f"  [cyan]{name}[/cyan]: {escape(_compact(value))}")
    _print_provenance(console, delivery)
    if delivery.not_before:
        console.print(f"  [blue]embargoed until[/blue] {delivery.not_before.isoformat()}")


def print_decision(
    console: Console,
    bundle: PolicyBundle,
    report: ThreatReport,
    *,
    origin: str,
    recipient: str,
    decision: Decision,
) -> None:
    """One decision, as `ixb agreements explain` shows it: what, under which agreements, why."""
    head = f"{report.report_type.value} {report.marking.value} {report.handling_code.value}"
    if decision.allow:
        assert decision.agreement is not None
        console.print(
            f"[green]deliver[/green] {origin} → {recipient}: {head} "
            f"under {decision.agreement.id} v{decision.agreement.version}"
        )
    else:
        console.print(f"[red]withhold[/red] {origin} → {recipient}: {head}")
        for reason in decision.reasons:
            console.print(f"  because {escape(reason)}")
    _print_overlap(console, decision)
    if not decision.allow:
        return
    rules = effective_rules(decision.field_rules)
    for rule in rules.rules:
        target = f" to {rule.to}" if rule.to else ""
        console.print(f"  {rule.action.value}{target}: {escape(rule.field or '')}")
    if not rules.rules:
        console.print("  every field as issued")
    if decision.not_before_s is not None:
        when = dt.datetime.fromtimestamp(decision.not_before_s, dt.UTC).isoformat()
        console.print(f"  embargoed until {when}")
    note = pseudonym_note(bundle, report, recipient, decision)
    if note is not None:
        console.print(f"  pseudonyms: {escape(note['explanation'])}")


def _print_overlap(console: Console, decision: Decision) -> None:
    """Which agreements decided together, which were set aside, which did not cover the report."""
    if len(decision.governing) > 1:
        named = ", ".join(f"{a.id} v{a.version}" for a in decision.governing)
        console.print(
            f"  governed together by {named}: any prohibition refuses, the strictest rule "
            "per field and the longest embargo apply"
        )
    for aside in decision.set_aside:
        console.print(f"  set aside: {aside.id} ({aside.by} takes precedence)")
    for entry in decision.not_covering:
        agreement, _, why = entry.partition(":")
        console.print(f"  not covering: {agreement} ({why})")


def print_rejection(console: Console, document: dict[str, Any]) -> None:
    console.print(
        f"[red]{document['reason']}[/red] at {document.get('stage', '?')}: "
        f"{escape(str(document['detail']))} [dim]{document.get('source', '')}[/dim]"
    )


def _mark(node: Any, steps: tuple[Any, ...]) -> None:
    """Show a withheld field as such (display only; the report itself is untouched)."""
    if not isinstance(node, dict):
        return
    step, rest = steps[0], steps[1:]
    if not rest:
        node[step.name] = WITHHELD
    elif step.each:
        for item in node.get(step.name) or []:
            _mark(item, rest)
    else:
        _mark(node.get(step.name), rest)


def _compact(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_compact(v) for v in value)
    if isinstance(value, dict):
        parts = [f"{k}={_compact(v)}" for k, v in value.items() if v not in (None, [], "")]
        return "{" + ", ".join(parts) + "}"
    return str(value)


def _print_provenance(console: Console, delivery: VerifiedDelivery) -> None:
    """Per field, who vouches for it: the originator's signature, the broker, or nobody.

    A derived or withheld record is shown once, not with every field inside it.
    """
    by_kind: dict[str, dict[str, list[str]]] = {}
    for path, provenance in delivery.provenance.items():
        group = by_kind.setdefault(provenance.kind, {})
        group.setdefault(provenance.describe(), []).append(path)
    for description, paths in by_kind.get("signed", {}).items():
        console.print(f"  [green]{escape(description)}[/green]: {len(paths)} values")
    for description, paths in by_kind.get("derived", {}).items():
        console.print(f"  [magenta]{escape(description)}[/magenta]: {', '.join(_outermost(paths))}")
    for paths in by_kind.get("withheld", {}).values():
        console.print(f"  [yellow]withheld[/yellow]: {', '.join(_outermost(paths))}")


def _outermost(paths: list[str]) -> list[str]:
    chosen = set(paths)
    return [p for p in paths if not any(p.startswith((f"{q}.", f"{q}[")) for q in chosen if q != p)]
