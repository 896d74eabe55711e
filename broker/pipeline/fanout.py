"""Fan-out: for every partner, decide, derive what it may see, and sign it.

For each partner nation other than the origin the policy decides. A deny is
recorded as a withheld decision and nothing is produced for that partner.
An allow produces a delivery: the report with the agreement's field rules
applied (on a copy; the original is never touched), wrapped in a
:class:`DeliveryStatement` naming the agreement, its version, the policy
bundle hash and what was withheld, and signed by the broker.

Derived reports are encoded once per distinct set of rules, so partners
under the same rules share one encoding; with no rules the originator's
exact bytes are passed on.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from dataclasses import dataclass

from broker.codec import SchemaCatalog
from broker.domain.decisions import Decision, DecisionInput
from broker.domain.fields import FieldPath, withhold
from broker.pipeline.context import BatchContext
from broker.pipeline.intake import Accepted
from broker.report_codec import REPORT_SCHEMA
from broker.topics import TopicNames
from broker.transport import OutboundRecord
from broker.trust.envelopes import Signer

DELIVERY_SCHEMA = "ixb.v1.DeliveryStatement"


def delivery_id(payload_sha256: bytes, recipient: str) -> str:
    """Stable for a submission and recipient, so retries de-duplicate downstream."""
    digest = hashlib.sha256(b"ixb-delivery-v1\x00" + payload_sha256 + recipient.encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Routed:
    """What fan-out produced for one submission."""

    deliveries: tuple[OutboundRecord, ...]
    decisions: tuple[tuple[str, Decision], ...]  # (recipient, decision), for logs and audit


class FanOut:
    __slots__ = ("_catalog", "_paths", "_signer", "_topics")

    def __init__(self, catalog: SchemaCatalog, signer: Signer, topics: TopicNames) -> None:
        self._catalog = catalog
        self._signer = signer
        self._topics = topics
        self._paths: dict[str, FieldPath] = {}

    def route(self, accepted: Accepted, context: BatchContext) -> Routed:
        report = accepted.report
        now_s = int(context.now.timestamp())
        derived: dict[tuple[str, ...], bytes] = {}
        deliveries: list[OutboundRecord] = []
        decisions: list[tuple[str, Decision]] = []
        for recipient in sorted(context.partners - {report.origin}):
            decision = context.policy.decide(  # raises PolicyUndecided: caller refuses all
                DecisionInput(
                    origin=report.origin,
                    recipient=recipient,
                    report_type=report.report_type,
                    marking=report.marking,
                    handling_code=report.handling_code,
                    now_s=now_s,
                )
            )
            decisions.append((recipient, decision))
            if not decision.allow:
                continue
            withheld = tuple(sorted({r.field for r in decision.field_rules}))
            if withheld not in derived:
                derived[withheld] = self._derive(accepted, withheld)
            deliveries.append(
                self._deliver(
                    accepted=accepted,
                    recipient=recipient,
                    decision=decision,
                    withheld=withheld,
                    report_bytes=derived[withheld],
                    now=context.now,
                )
            )
        return Routed(tuple(deliveries), tuple(decisions))

    def _derive(self, accepted: Accepted, withheld: tuple[str, ...]) -> bytes:
        if not withheld:
            return accepted.payload
        record = copy.deepcopy(accepted.record)
        for field in withheld:
            path = self._paths.get(field) or self._paths.setdefault(field, FieldPath.parse(field))
            withhold(record, path)
        return self._catalog.encode(REPORT_SCHEMA, record)

    def _deliver(
        self,
        *,
        accepted: Accepted,
        recipient: str,
        decision: Decision,
        withheld: tuple[str, ...],
        report_bytes: bytes,
        now: dt.datetime,
    ) -> OutboundRecord:
        assert decision.agreement is not None  # an allow always names its agreement
        did = delivery_id(accepted.payload_sha256, recipient)
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
                "withheld_fields": list(withheld),
                "original_sha256": accepted.payload_sha256,
                "originator_key_id": accepted.key.key_id,
                "decided_at": now,
                "report": report_bytes,
            },
        )
        return OutboundRecord(
            topic=self._topics.deliver(recipient),
            key=did.encode(),
            value=self._signer.seal(statement),
            headers=(("ixb-origin", accepted.report.origin.encode()),),
        )
