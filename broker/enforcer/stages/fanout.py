"""Fan-out: for every partner, decide, select what it may see, and state it.

For each partner nation other than the origin the policy decides. A deny is
recorded as a withheld decision and nothing is produced for that partner.
An allow produces a delivery statement (broker/trust/sd/statement.py) carrying the
originator's own signed envelope and the disclosures the agreement lets
through (a withheld or derived field's disclosures are left out, so the
originator's signature still covers everything given), the values the broker
derived (pseudonymised or generalised) for the fields the agreement says,
and the agreement, its version and the policy bundle hash. Statements are
not signed one by one: the runner attests all of a batch's statements with
one signature (broker/trust/attestation.py) and only then turns them into
records (:meth:`Pending.record`), each sealed to its recipient
(broker/enforcer/stages/sealing.py). A delivery under an embargo that is not
yet due goes to the held topic instead, sealed to the broker
(broker/enforcer/runtime/embargo.py releases it, its statement unchanged).
An allow for a recipient with no valid sealing key is a withholding
(:func:`~broker.enforcer.stages.sealing.sealable`).

Selections and derived values are computed once per distinct set of rules
(and pseudonym scope), so partners under the same rules share them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.auditlog.entries import SubmissionRef
from broker.domain.decisions import Decision, decision_inputs
from broker.enforcer.stages.context import BatchContext
from broker.enforcer.stages.derive import Deriver, RuleSet, effective_rules
from broker.enforcer.stages.intake import Accepted
from broker.enforcer.stages.outcome import Refused, Undecided, outcome_of
from broker.enforcer.stages.sealing import BatchSeals, sealable
from broker.trust.pseudonyms import PseudonymSecrets
from broker.trust.sd.layout import ReportLayout
from broker.trust.sd.select import derived_values, select
from broker.trust.sd.statement import (
    StatementWriter,
    derived_array,
    disclosures_array,
)
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord
from broker.wire.report import REPORT_SCHEMA
from broker.wire.topics import TopicNames

HELD_SCHEMA = "ixb.v1.HeldDelivery"


def delivery_id(payload_sha256: bytes, recipient: str) -> str:
    """Stable for a submission and recipient, so retries de-duplicate downstream."""
    digest = hashlib.sha256(b"ixb-delivery-v1\x00" + payload_sha256 + recipient.encode())
    return digest.hexdigest()[:32]


def delivery_record(topic: str, did: str, sealed_statement: bytes, origin: str) -> OutboundRecord:
    """A delivery as it goes on a recipient's topic, now or when its embargo ends."""
    return OutboundRecord(
        topic=topic,
        key=did.encode(),
        value=sealed_statement,
        headers=(("ixb-origin", origin.encode()),),
    )


def rules_digest(rule_set: RuleSet) -> str:
    """Names a rule set, so a release can check the rules have not changed."""
    canonical = json.dumps(
        [r.model_dump(mode="json", exclude_none=True) for r in rule_set.rules],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Hold:
    """Why and until when a delivery waits on the held topic."""

    not_before: dt.datetime
    decision_input: str  # JSON, to ask the policy again at release
    agreement_id: str
    agreement_version: int
    rules_digest: str
    # The submission it came from, as its held entry names it; the processor
    # adds it (:meth:`Pending.from_submission`), so the released entry names it too.
    submission: SubmissionRef | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """A delivery statement waiting for its batch's attestation."""

    recipient: str
    topic: str  # the recipient's
    delivery_id: str
    origin: str
    statement: bytes  # DeliveryStatement, single-object encoded: the attested leaf
    decided_at: dt.datetime
    rules: RuleSet  # what was withheld and derived, for the audit log
    report_id: str = ""
    hold: Hold | None = None

    def from_submission(self, submission: SubmissionRef) -> Pending:
        """This delivery, its hold naming ``submission`` (a delivery sent now needs none)."""
        if self.hold is None:
            return self
        return dataclasses.replace(self, hold=dataclasses.replace(self.hold, submission=submission))

    def record(self, catalog: SchemaCatalog, attested: bytes, seals: BatchSeals) -> OutboundRecord:
        """The record to produce once ``attested`` (the attested envelope) exists, sealed."""
        if self.hold is None:
            sealed = seals.delivery(self.topic, self.recipient).seal(catalog, attested)
            return delivery_record(self.topic, self.delivery_id, sealed, self.origin)
        held = catalog.encode(
            HELD_SCHEMA,
            {
                "delivery_id": self.delivery_id,
                "not_before": self.hold.not_before,
                "held_at": self.decided_at,
                "decision_input": self.hold.decision_input,
                "agreement_id": self.hold.agreement_id,
                "agreement_version": self.hold.agreement_version,
                "rules_digest": self.hold.rules_digest,
                "topic": self.topic,
                "value": attested,
                "report_id": self.report_id or None,
                "submission": _held_submission(self.hold.submission),
            },
        )
        sealed = seals.held().seal(catalog, held)
        return OutboundRecord(topic=seals.held_topic, key=self.delivery_id.encode(), value=sealed)


@dataclass(frozen=True, slots=True)
class Routed:
    """What fan-out produced for one submission."""

    pending: tuple[Pending, ...]  # deliveries, some under embargo (``hold``)
    decisions: tuple[tuple[str, Decision], ...]  # (recipient, decision), for logs and audit

    @property
    def held(self) -> int:
        return sum(1 for p in self.pending if p.hold is not None)


@dataclass(frozen=True, slots=True)
class _View:
    """What one rule set lets a recipient see: the statement's two arrays, encoded."""

    disclosures: bytes
    derived: bytes


class FanOut:
    __slots__ = ("_catalog", "_deriver", "_layout", "_pseudonyms", "_statements", "_topics")

    def __init__(
        self,
        catalog: SchemaCatalog,
        topics: TopicNames,
        pseudonyms: PseudonymSecrets,
        layout: ReportLayout | None = None,
    ) -> None:
        self._catalog = catalog
        self._topics = topics
        self._pseudonyms = pseudonyms
        self._deriver = Deriver(catalog.schema(REPORT_SCHEMA).parsed)
        self._layout = layout or ReportLayout.from_catalog(catalog)
        self._statements = StatementWriter(catalog)

    def route(self, accepted: Accepted, context: BatchContext) -> Routed | Refused | Undecided:
        """Every partner's decision and delivery; undecided if the policy could not say."""
        return outcome_of(lambda: self._route(accepted, context))

    def _route(self, accepted: Accepted, context: BatchContext) -> Routed:
        report = accepted.report
        now_s = int(context.now.timestamp())
        views: dict[tuple[RuleSet, str], _View] = {}
        pending: list[Pending] = []
        decisions: list[tuple[str, Decision]] = []
        recipients = sorted(context.partners - {report.origin})
        for decision_input in decision_inputs(report, recipients, now_s=now_s):
            recipient = decision_input.recipient
            decision = context.policy.decide(decision_input)  # PolicyUndecided: Undecided
            decision = sealable(decision, context.registry, recipient, context.now)
            decisions.append((recipient, decision))
            if not decision.allow:
                continue
            assert decision.agreement is not None  # an allow always names its agreement
            rule_set = effective_rules(decision.field_rules)
            # The authorising agreement's secret keys every pseudonym, also where several
            # agreements govern and another asked for it (README, "Agreements").
            scope = decision.agreement.id if rule_set.pseudonymises else ""
            if (rule_set, scope) not in views:
                views[rule_set, scope] = self._view(accepted, rule_set, scope)
            hold = None
            if decision.not_before_s is not None and decision.not_before_s > now_s:
                hold = Hold(
                    not_before=_instant(decision.not_before_s),
                    decision_input=decision_input.model_dump_json(),
                    agreement_id=decision.agreement.id,
                    agreement_version=decision.agreement.version,
                    rules_digest=rules_digest(rule_set),
                )
            pending.append(
                self._state(
                    accepted=accepted,
                    recipient=recipient,
                    decision=decision,
                    rule_set=rule_set,
                    view=views[rule_set, scope],
                    now=context.now,
                    hold=hold,
                )
            )
        return Routed(tuple(pending), tuple(decisions))

    def _view(self, accepted: Accepted, rule_set: RuleSet, scope: str) -> _View:
        derived_fields = list(rule_set.derived_fields)
        hidden = [*rule_set.withheld, *derived_fields]
        disclosures = disclosures_array(select(self._layout, accepted.disclosures, hidden))
        if not derived_fields:
            return _View(disclosures, derived_array(()))
        pseudonymiser = self._pseudonyms.for_agreement(scope) if scope else None
        record = self._deriver.derive(accepted.record, rule_set, pseudonymiser)
        derived = [
            (path, value, accepted.digests.get(path))
            for path, value in derived_values(self._layout, record, derived_fields)
        ]
        return _View(disclosures, derived_array(derived))

    def _state(
        self,
        *,
        accepted: Accepted,
        recipient: str,
        decision: Decision,
        rule_set: RuleSet,
        view: _View,
        now: dt.datetime,
        hold: Hold | None,
    ) -> Pending:
        assert decision.agreement is not None
        did = delivery_id(accepted.payload_sha256, recipient)
        statement = self._statements.write(
            {
                "delivery_id": did,
                "recipient": recipient,
                "origin": accepted.report.origin,
                "report_id": str(accepted.report.report_id),
                "agreement_id": decision.agreement.id,
                "agreement_version": decision.agreement.version,
                "policy_bundle_hash": decision.bundle_hash,
                "withheld_fields": list(rule_set.withheld),
                "derived_fields": [
                    {"field": r.field, "action": r.action.value, "to": r.to}
                    for r in rule_set.derived
                ],
                "original_sha256": accepted.payload_sha256,
                "originator_key_id": accepted.key.key_id,
                "decided_at": now,
                "received_at": accepted.received_at,
                "not_before": (
                    None if decision.not_before_s is None else _instant(decision.not_before_s)
                ),
                "originator_envelope": accepted.envelope,
            },
            view.disclosures,
            view.derived,
        )
        return Pending(
            recipient=recipient,
            topic=self._topics.deliver(recipient),
            delivery_id=did,
            origin=accepted.report.origin,
            statement=statement,
            hold=hold,
            decided_at=now,
            rules=rule_set,
            report_id=str(accepted.report.report_id),
        )


def _held_submission(ref: SubmissionRef | None) -> dict[str, object] | None:
    if ref is None:
        return None
    return {
        "topic": ref.topic,
        "partition": ref.partition,
        "offset": ref.offset,
        "sha256": ref.sha256,
    }


def held_submission(held: Mapping[str, Any]) -> SubmissionRef | None:
    """The submission a decoded ``ixb.v1.HeldDelivery`` names (None if held by ixb 0.2)."""
    sub = held.get("submission")
    if sub is None:
        return None
    return SubmissionRef(sub["topic"], sub["partition"], sub["offset"], sub["sha256"])


def _instant(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
