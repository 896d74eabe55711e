"""Audit events from what the pipeline already has: one per outcome, never a value.

The enforcer calls :func:`decision_events` after fan-out (one event per
partner decided for) and :func:`refusal_event` when intake refuses; the
embargo releaser calls :func:`release_event` for each held delivery it
releases or refuses. An event carries ids, digests, agreement references,
reason codes and field paths, nothing from the report itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

from broker.auditlog.entries import AuditEvent, Outcome, SubmissionRef
from broker.domain.decisions import DecisionInput
from broker.enforcer.stages.fanout import Routed, held_submission
from broker.enforcer.stages.intake import Accepted
from broker.errors import RejectedInput
from broker.wire.records import InboundRecord

__all__ = ["decision_events", "refusal_event", "release_event", "submission_ref"]


def submission_ref(inbound: InboundRecord) -> SubmissionRef:
    """Where a submission was read, and the SHA-256 of its exact record value."""
    return SubmissionRef(
        inbound.topic,
        inbound.partition,
        inbound.offset,
        hashlib.sha256(inbound.value or b"").digest(),
    )


def decision_events(
    accepted: Accepted,
    routed: Routed,
    submission: SubmissionRef,
    at: dt.datetime,
    *,
    registry_hash: str | None = None,
) -> list[AuditEvent]:
    """One event per recipient decided for: delivered, held (embargo) or withheld.

    A delivery's digest is of its statement, the exact bytes the broker's
    batch attestation covers; the recipient finds them as the payload of
    the attested envelope it receives (a held delivery is released with the
    same statement).
    """
    report = accepted.report
    statements = {p.recipient: p for p in routed.pending}
    events = []
    for recipient, decision in routed.decisions:
        common: dict[str, Any] = {
            "at": at,
            "origin": report.origin,
            "recipient": recipient,
            "report_id": str(report.report_id),
            "submission": submission,
            "policy_bundle_hash": decision.bundle_hash or None,
            "registry_hash": registry_hash,
        }
        if not decision.allow:
            events.append(AuditEvent(Outcome.WITHHELD, reasons=decision.reasons, **common))
            continue
        assert decision.agreement is not None  # an allow always names its agreement
        pending = statements.get(recipient)
        if pending is None:
            raise ValueError(f"fan-out allowed {recipient} but produced no delivery for it")
        outcome = Outcome.DELIVERED if pending.hold is None else Outcome.HELD
        rules = pending.rules
        events.append(
            AuditEvent(
                outcome,
                delivery_id=pending.delivery_id,
                delivery_sha256=hashlib.sha256(pending.statement).digest(),
                agreement_id=decision.agreement.id,
                agreement_version=decision.agreement.version,
                withheld_fields=rules.withheld,
                derived_fields=rules.derived_fields,
                **common,
            )
        )
    return events


def refusal_event(
    inbound: InboundRecord,
    refusal: RejectedInput,
    origin: str,
    at: dt.datetime,
    *,
    registry_hash: str | None = None,
) -> AuditEvent:
    """A submission refused at intake (or left undecided by the policy), by reason code.

    ``registry_hash`` names the registry version intake checked the signature against.
    """
    return AuditEvent(
        Outcome.REFUSED,
        at=at,
        origin=origin,
        submission=submission_ref(inbound),
        reasons=(refusal.reason,),
        registry_hash=registry_hash,
    )


def release_event(
    held: Mapping[str, Any],
    decision_input: DecisionInput,
    statement_sha256: bytes,
    at: dt.datetime,
    *,
    policy_bundle_hash: str | None,
    refusal_reasons: tuple[str, ...] = (),
) -> AuditEvent:
    """A held delivery (the decoded ``ixb.v1.HeldDelivery``) released, or refused with reasons.

    ``decision_input`` is the held delivery's, parsed; ``statement_sha256``
    the digest of the delivery statement inside it (the payload of its
    attested envelope), the one the held event recorded, so the two entries
    name the same delivery. The report and its submission are named as in
    the held entry, so an auditor finds a report's release without joining
    on the delivery id; a delivery held by ixb 0.2 names neither.
    """
    return AuditEvent(
        Outcome.RELEASE_REFUSED if refusal_reasons else Outcome.RELEASED,
        at=at,
        origin=decision_input.origin,
        recipient=decision_input.recipient,
        report_id=held.get("report_id"),
        submission=held_submission(held),
        delivery_id=held["delivery_id"],
        delivery_sha256=statement_sha256,
        agreement_id=held["agreement_id"],
        agreement_version=held["agreement_version"],
        policy_bundle_hash=policy_bundle_hash,
        reasons=refusal_reasons,
    )
