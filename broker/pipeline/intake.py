"""Intake: from raw bytes on a submission topic to a verified, valid report.

The order is the security argument (DESIGN.md decision 1):

1. the size is checked and only the envelope is parsed;
2. the signature is verified over the exact payload bytes, by a registered
   agency key valid now;
3. the key's nation must be the nation whose topic carried the message;
4. only then is the payload decoded (known schema, within limits, nothing
   trailing) and validated;
5. the report must claim the key's nation as its origin, and its issued-at
   must fall inside the key's validity and not in the future.

Every refusal is a :class:`~broker.errors.RejectedInput` with a reason code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from broker.codec import SchemaCatalog
from broker.domain.report import ThreatReport
from broker.errors import RejectedInput, VerificationError
from broker.pipeline.context import BatchContext
from broker.report_codec import REPORT_SCHEMA, record_to_report
from broker.topics import TopicNames
from broker.transport import InboundRecord
from broker.trust.envelopes import open_envelope, verify_envelope
from broker.trust.keys import KeyRecord, KeyRole


@dataclass(frozen=True, slots=True)
class Accepted:
    """A submission that passed intake, with everything fan-out needs."""

    report: ThreatReport
    record: dict[str, Any]  # the decoded Avro record, never mutated
    payload: bytes  # the exact bytes the originator signed
    payload_sha256: bytes
    key: KeyRecord


class Intake:
    __slots__ = ("_catalog", "_max_skew", "_topics")

    def __init__(
        self, catalog: SchemaCatalog, topics: TopicNames, *, max_clock_skew: dt.timedelta
    ) -> None:
        self._catalog = catalog
        self._topics = topics
        self._max_skew = max_clock_skew

    def check(self, inbound: InboundRecord, context: BatchContext) -> Accepted:
        topic_nation = self._topics.nation_of_submit_topic(inbound.topic)
        if topic_nation is None:
            raise RejectedInput("not_a_submission_topic", inbound.topic, stage="envelope")
        if inbound.value is None:
            raise RejectedInput("empty_message", "the record has no value", stage="envelope")
        envelope = open_envelope(self._catalog, inbound.value)  # 1
        key = verify_envelope(  # 2
            envelope, context.registry, role=KeyRole.AGENCY, at=context.now
        )
        if key.nation != topic_nation:  # 3
            raise VerificationError(
                "wrong_topic",
                f"key {key.key_id} belongs to {key.nation}, message was on {topic_nation}'s topic",
                stage="identity",
            )
        record = self._catalog.decode(envelope.payload, REPORT_SCHEMA)  # 4
        report = record_to_report(record)
        if report.origin != key.nation:  # 5
            raise VerificationError(
                "origin_mismatch",
                f"report claims origin {report.origin}, signed by a {key.nation} key",
                stage="identity",
            )
        if not key.valid_at(report.issued_at):
            raise VerificationError(
                "key_not_valid_at_issue",
                f"key {key.key_id} was not valid when the report was issued",
                stage="identity",
            )
        if report.issued_at > context.now + self._max_skew:
            raise RejectedInput(
                "issued_in_future", "issued_at is ahead of the broker's clock", stage="validate"
            )
        return Accepted(
            report=report,
            record=record,
            payload=envelope.payload,
            payload_sha256=hashlib.sha256(envelope.payload).digest(),
            key=key,
        )
