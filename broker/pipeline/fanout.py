"""Fan-out: for every partner, decide, derive what it may see, and sign it.

For each partner nation other than the origin the policy decides. A deny is
recorded as a withheld decision and nothing is produced for that partner.
An allow produces a delivery: the report with the agreement's field rules
applied (on a copy; the original is never touched), wrapped in a
:class:`DeliveryStatement` naming the agreement, its version, the policy
bundle hash, what was withheld and what was derived, and signed by the
broker. A delivery under an embargo that is not yet due goes to the held
topic instead (broker/pipeline/embargo.py releases it).

Derived reports are encoded once per distinct set of rules (and pseudonym
scope), so partners under the same rules share one encoding; with no rules
the originator's exact bytes are passed on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from broker.codec import SchemaCatalog
from broker.domain.decisions import Decision, DecisionInput, facets_of
from broker.pipeline.context import BatchContext
from broker.pipeline.derive import Deriver, RuleSet, effective_rules
from broker.pipeline.intake import Accepted
from broker.report_codec import REPORT_SCHEMA
from broker.topics import TopicNames
from broker.transport import OutboundRecord
from broker.trust.envelopes import Signer
from broker.trust.pseudonyms import PseudonymSecrets

DELIVERY_SCHEMA = "ixb.v1.DeliveryStatement"
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
class Routed:
    """What fan-out produced for one submission."""

    deliveries: tuple[OutboundRecord, ...]
    held: tuple[OutboundRecord, ...]  # embargoed deliveries, to the held topic
    decisions: tuple[tuple[str, Decision], ...]  # (recipient, decision), for logs and audit


class FanOut:
    __slots__ = ("_catalog", "_deriver", "_pseudonyms", "_signer", "_topics")

    def __init__(
        self,
        catalog: SchemaCatalog,
        signer: Signer,
        topics: TopicNames,
        pseudonyms: PseudonymSecrets,
    ) -> None:
        self._catalog = catalog
        self._signer = signer
        self._topics = topics
        self._pseudonyms = pseudonyms
        self._deriver = Deriver(catalog.schema(REPORT_SCHEMA).parsed)

    def route(self, accepted: Accepted, context: BatchContext) -> Routed:
        report = accepted.report
        now_s = int(context.now.timestamp())
        facets = facets_of(report)
        observed_at_s = int(report.observed_at.timestamp())
        derived: dict[tuple[RuleSet, str], bytes] = {}
        deliveries: list[OutboundRecord] = []
        held: list[OutboundRecord] = []
        decisions: list[tuple[str, Decision]] = []
        for recipient in sorted(context.partners - {report.origin}):
            decision_input = DecisionInput(
                origin=report.origin,
                recipient=recipient,
                report_type=report.report_type,
                marking=report.marking,
                handling_code=report.handling_code,
                facets=facets,
                observed_at_s=observed_at_s,
                now_s=now_s,
            )
            decision = context.policy.decide(decision_input)  # PolicyUndecided: caller refuses
            decisions.append((recipient, decision))
            if not decision.allow:
                continue
            assert decision.agreement is not None  # an allow always names its agreement
            rule_set = effective_rules(decision.field_rules)
            scope = decision.agreement.id if rule_set.pseudonymises else ""
            if (rule_set, scope) not in derived:
                derived[rule_set, scope] = self._derive(accepted, rule_set, scope)
            did = delivery_id(accepted.payload_sha256, recipient)
            delivery = self._deliver(
                accepted=accepted,
                did=did,
                recipient=recipient,
                decision=decision,
                rule_set=rule_set,
                report_bytes=derived[rule_set, scope],
                now=context.now,
            )
            if decision.not_before_s is not None and decision.not_before_s > now_s:
                held.append(
                    self._hold(
                        did=did,
                        delivery=delivery,
                        decision=decision,
                        decision_input=decision_input,
                        rule_set=rule_set,
                        now=context.now,
                    )
                )
            else:
                deliveries.append(delivery)
        return Routed(tuple(deliveries), tuple(held), tuple(decisions))

    def _derive(self, accepted: Accepted, rule_set: RuleSet, scope: str) -> bytes:
        if not rule_set.rules:
            return accepted.payload
        pseudonymiser = self._pseudonyms.for_agreement(scope) if scope else None
        record = self._deriver.derive(accepted.record, rule_set, pseudonymiser)
        return self._catalog.encode(REPORT_SCHEMA, record)

    def _deliver(
        self,
        *,
        accepted: Accepted,
        did: str,
        recipient: str,
        decision: Decision,
        rule_set: RuleSet,
        report_bytes: bytes,
        now: dt.datetime,
    ) -> OutboundRecord:
        assert decision.agreement is not None
        not_before = (
            None
            if decision.not_before_s is None
            else dt.datetime.fromtimestamp(decision.not_before_s, dt.UTC)
        )
        statement = self._catalog.encode(
            DELIVERY_SCHEMA,
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
                "not_before": not_before,
                "report": report_bytes,
            },
        )
        sealed = self._signer.seal(statement)
        return delivery_record(self._topics.deliver(recipient), did, sealed, accepted.report.origin)

    def _hold(
        self,
        *,
        did: str,
        delivery: OutboundRecord,
        decision: Decision,
        decision_input: DecisionInput,
        rule_set: RuleSet,
        now: dt.datetime,
    ) -> OutboundRecord:
        assert decision.agreement is not None
        assert decision.not_before_s is not None
        held = self._catalog.encode(
            HELD_SCHEMA,
            {
                "delivery_id": did,
                "not_before": dt.datetime.fromtimestamp(decision.not_before_s, dt.UTC),
                "held_at": now,
                "decision_input": decision_input.model_dump_json(),
                "agreement_id": decision.agreement.id,
                "agreement_version": decision.agreement.version,
                "rules_digest": rules_digest(rule_set),
                "topic": delivery.topic,
                "value": delivery.value,
            },
        )
        return OutboundRecord(topic=self._topics.held, key=delivery.key, value=held)
