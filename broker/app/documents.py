"""The JSON documents ixb shows of deliveries, decisions and rejections: defined once.

``ixb subscribe --json``, ``ixb agreements explain --json`` and ``ixb
rejected --json`` print these, and the console (broker/console/) serves and
renders the same documents, so a provenance badge in the browser says
exactly what the command line says. Nothing here reads a setting or does
I/O beyond decoding the bytes it is given.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from broker.domain.agreements import FieldAction
from broker.domain.decisions import Decision, decision_inputs
from broker.domain.report import ThreatReport
from broker.enforcer.stages.derive import effective_rules
from broker.enforcer.stages.rejections import REJECTION_SCHEMA
from broker.errors import DecodeError
from broker.parties.recipient import VerifiedDelivery
from broker.policy import PolicyDecisionPoint
from broker.policy.bundle import PolicyBundle
from broker.wire.codec import SchemaCatalog

__all__ = [
    "decision_json",
    "delivery_json",
    "explain",
    "pseudonym_note",
    "rejection_json",
]


def explain(
    policy: PolicyDecisionPoint, report: ThreatReport, *, origin: str, recipient: str, now_s: int
) -> Decision:
    """What the policy decides for ``report`` sent by ``origin`` to ``recipient`` at ``now_s``.

    The question ``ixb agreements explain`` and the console's explain page ask:
    the report's origin is replaced by ``origin`` ("what if NL sent this").
    """
    [asked] = decision_inputs(report, [recipient], now_s=now_s, origin=origin)
    return policy.decide(asked)


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
