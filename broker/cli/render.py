"""How deliveries and rejections look to people (rich) and to tools (JSON)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from rich.console import Console
from rich.markup import escape

from broker.domain.agreements import FieldAction
from broker.domain.decisions import Decision
from broker.domain.fields import FieldPath
from broker.domain.report import ThreatReport
from broker.enforcer.stages.derive import effective_rules
from broker.enforcer.stages.rejections import REJECTION_SCHEMA
from broker.errors import DecodeError
from broker.parties.recipient import VerifiedDelivery
from broker.policy.bundle import PolicyBundle
from broker.wire.codec import SchemaCatalog

WITHHELD = "‹withheld›"


def delivery_json(delivery: VerifiedDelivery) -> dict[str, Any]:
    return {
        "delivery_id": delivery.delivery_id,
        "recipient": delivery.recipient,
        "origin": delivery.origin,
        "agreement": {"id": delivery.agreement_id, "version": delivery.agreement_version},
        "policy_bundle_hash": delivery.policy_bundle_hash,
        "withheld_fields": list(delivery.withheld_fields),
        "derived_fields": [dataclasses.asdict(d) for d in delivery.derived_fields],
        "not_before": delivery.not_before.isoformat() if delivery.not_before else None,
        "verified_by": delivery.broker_key_id,
        "originator_key_id": delivery.originator_key_id,
        "original_sha256": delivery.original_sha256.hex(),
        "decided_at": delivery.decided_at.isoformat(),
        "report": delivery.report.model_dump(mode="json"),
        "provenance": {path: p.describe() for path, p in delivery.provenance.items()},
    }


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


def decision_json(
    bundle: PolicyBundle, report: ThreatReport, origin: str, recipient: str, decision: Decision
) -> dict[str, Any]:
    """One decision as `ixb agreements explain --json` prints it: the decision and its effect."""
    rules = effective_rules(decision.field_rules)
    return {
        "report_id": str(report.report_id),
        "origin": origin,
        "recipient": recipient,
        "report_type": report.report_type.value,
        "marking": report.marking.value,
        "handling_code": report.handling_code.value,
        "decision": decision.model_dump(mode="json"),
        "effective_rules": [r.model_dump(mode="json", exclude_none=True) for r in rules.rules],
        "pseudonyms": pseudonym_note(bundle, report, recipient, decision),
    }


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


def pseudonym_note(
    bundle: PolicyBundle, report: ThreatReport, recipient: str, decision: Decision
) -> dict[str, Any] | None:
    """Whose secret keys this delivery's pseudonyms, and so who can link what.

    The secret is the authorising agreement's (broker/enforcer/stages/fanout.py),
    whichever governing agreement asked for the pseudonym.
    """
    rules = effective_rules(decision.field_rules)
    if not decision.allow or decision.agreement is None or not rules.pseudonymises:
        return None
    keyed_by = decision.agreement.id
    agreements = {a.id: a for a in bundle.agreements}
    fields = [r.field for r in rules.rules if r.action is FieldAction.PSEUDONYMISE and r.field]
    asked_by = {
        field: sorted(
            g.id
            for g in decision.governing
            if g.id in agreements
            and any(
                r.field == field and r.action is FieldAction.PSEUDONYMISE
                for r in agreements[g.id].rules_for(report.report_type)
            )
        )
        for field in fields
    }
    receivers = agreements[keyed_by].senders_and_receivers()[1] if keyed_by in agreements else ()
    explanation = (
        f"keyed by {keyed_by}'s secret (the authorising agreement): {recipient} can link "
        f"them with the pseudonyms of the same values in other deliveries {keyed_by} "
        f"authorises (to {', '.join(receivers) or 'its receivers'}), and with no pseudonym "
        "made under any other agreement"
    )
    askers = {a for ids in asked_by.values() for a in ids}
    if askers and keyed_by not in askers:
        explanation += (
            f"; under this overlap the pseudonymise rules are {', '.join(sorted(askers))}'s, "
            f"the secret {keyed_by}'s"
        )
    return {
        "keyed_by": keyed_by,
        "fields": asked_by,
        "linkable_within": f"deliveries authorised by {keyed_by}",
        "explanation": explanation,
    }


def rejection_json(catalog: SchemaCatalog, data: bytes) -> dict[str, Any]:
    try:
        record = catalog.decode(data, REJECTION_SCHEMA)
    except DecodeError as exc:
        return {"reason": "unreadable_rejection_record", "detail": exc.detail}
    return {
        "reason": record["reason"],
        "detail": record["detail"],
        "stage": record["stage"],
        "retriable": record["retriable"],
        "source": (
            f"{record['source_topic']}[{record['source_partition']}]@{record['source_offset']}"
        ),
        "rejected_at": record["rejected_at"].isoformat(),
        "original_bytes": len(record["original_value"]),
    }


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
