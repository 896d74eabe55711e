"""What a recipient uses: verify a delivery and read a nation's feed.

A delivery is trusted only after the broker's signature over the exact
statement bytes verifies against a broker key in the partner registry, the
statement is addressed to this recipient, and the inner report decodes and
validates. Anything else is reported as a :class:`FeedProblem`, never shown
as a report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from broker.codec import SchemaCatalog
from broker.domain.report import ThreatReport
from broker.errors import RejectedInput
from broker.pipeline.fanout import DELIVERY_SCHEMA
from broker.report_codec import decode_report
from broker.topics import TopicNames
from broker.transport import read_topic
from broker.trust.envelopes import open_envelope, verify_envelope
from broker.trust.keys import KeyRole, PartnerRegistry


@dataclass(frozen=True, slots=True)
class DerivedField:
    """A field whose value the broker changed under the agreement."""

    field: str
    action: str  # pseudonymise | generalise
    to: str | None = None  # for a generalisation: the precision kept

    def describe(self) -> str:
        return f"{self.action} to {self.to}" if self.to else self.action


@dataclass(frozen=True, slots=True)
class VerifiedDelivery:
    delivery_id: str
    recipient: str
    origin: str
    report: ThreatReport
    agreement_id: str
    agreement_version: int
    policy_bundle_hash: str
    withheld_fields: tuple[str, ...]
    derived_fields: tuple[DerivedField, ...]
    broker_key_id: str
    originator_key_id: str
    original_sha256: bytes
    decided_at: dt.datetime
    not_before: dt.datetime | None = None  # the embargo it was held under, if any
    offset: int = -1


@dataclass(frozen=True, slots=True)
class FeedProblem:
    """A record on the feed that did not verify; shown as a warning, never as data."""

    offset: int
    reason: str
    detail: str


def verify_delivery(
    catalog: SchemaCatalog,
    registry: PartnerRegistry,
    data: bytes,
    *,
    recipient: str,
    at: dt.datetime | None = None,
) -> VerifiedDelivery:
    """Verify one delivery addressed to ``recipient``; raise RejectedInput otherwise."""
    envelope = open_envelope(catalog, data)
    key = verify_envelope(envelope, registry, role=KeyRole.BROKER, at=at or dt.datetime.now(dt.UTC))
    statement = catalog.decode(envelope.payload, DELIVERY_SCHEMA)
    if statement["recipient"] != recipient:
        raise RejectedInput(
            "wrong_recipient",
            f"delivery is addressed to {statement['recipient']}, not {recipient}",
            stage="identity",
        )
    report = decode_report(catalog, statement["report"])
    if report.origin != statement["origin"] or report.report_id != uuid.UUID(
        str(statement["report_id"])
    ):
        raise RejectedInput(
            "statement_mismatch", "statement and report disagree on origin or id", stage="identity"
        )
    return VerifiedDelivery(
        delivery_id=statement["delivery_id"],
        recipient=statement["recipient"],
        origin=statement["origin"],
        report=report,
        agreement_id=statement["agreement_id"],
        agreement_version=statement["agreement_version"],
        policy_bundle_hash=statement["policy_bundle_hash"],
        withheld_fields=tuple(statement["withheld_fields"]),
        derived_fields=tuple(DerivedField(**d) for d in statement["derived_fields"]),
        broker_key_id=key.key_id,
        originator_key_id=statement["originator_key_id"],
        original_sha256=statement["original_sha256"],
        decided_at=statement["decided_at"],
        not_before=statement["not_before"],
    )


async def read_feed(
    *,
    bootstrap: str,
    topics: TopicNames,
    nation: str,
    catalog: SchemaCatalog,
    registry: Callable[[], PartnerRegistry],
    idle_timeout_s: float = 2.0,
    follow: bool = False,
    deduplicate: bool = True,
) -> AsyncIterator[VerifiedDelivery | FeedProblem]:
    """Verified deliveries for ``nation`` from the start of its feed.

    Deliveries are at least once; with ``deduplicate`` a repeated delivery id
    is yielded only the first time.
    """
    seen: set[str] = set()
    async for record in read_topic(
        bootstrap, topics.deliver(nation), idle_timeout_s=idle_timeout_s, follow=follow
    ):
        try:
            delivery = verify_delivery(catalog, registry(), record.value or b"", recipient=nation)
        except RejectedInput as exc:
            yield FeedProblem(record.offset, exc.reason, exc.detail)
            continue
        if deduplicate and delivery.delivery_id in seen:
            continue
        seen.add(delivery.delivery_id)
        yield dataclasses.replace(delivery, offset=record.offset)
