"""The embargo releaser forgets the held deliveries of partitions the group took away."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from pathlib import Path

from broker.audit.entries import AuditWriter
from broker.codec import SchemaCatalog
from broker.errors import TransportError
from broker.pipeline.embargo import EmbargoReleaser
from broker.pipeline.fanout import HELD_SCHEMA
from broker.policy.bundle import load_bundle
from broker.policy.rego import RegoDecisionPoint
from broker.policy.source import ActivePolicy, FixedPolicy
from broker.topics import TopicNames
from broker.transport import (
    InboundRecord,
    OutboundRecord,
    OutputProducer,
    SubmissionConsumer,
    TopicAdmin,
)
from broker.trust.attestation import BatchAttester
from broker.trust.signatures import SigningKey

UNUSED_BOOTSTRAP = "127.0.0.1:1"  # nothing here connects
NOW = dt.datetime(2026, 11, 22, 9, tzinfo=dt.UTC)


def _attested(catalog: SchemaCatalog) -> bytes:
    """A delivery as the enforcer seals it (the releaser digests its statement for the log)."""
    key = SigningKey.generate("ed25519", prefix="broker")
    return BatchAttester(key, catalog).attest([b"a statement"])[0]


def _held(
    catalog: SchemaCatalog,
    topics: TopicNames,
    partition: int,
    offset: int,
    decision_input: dict[str, object] | None = None,
) -> InboundRecord:
    value = catalog.encode(
        HELD_SCHEMA,
        {
            "delivery_id": f"d-{partition}-{offset}",
            "not_before": NOW + dt.timedelta(minutes=60 - 10 * partition - offset),
            "held_at": NOW,
            "decision_input": json.dumps(decision_input or {}),
            "agreement_id": "a",
            "agreement_version": 1,
            "rules_digest": "r",
            "topic": topics.deliver("BE"),
            "value": _attested(catalog),
        },
    )
    return InboundRecord(topics.held, partition, offset, b"k", value, (), 0)


async def test_held_deliveries_of_revoked_partitions_are_forgotten_and_the_others_kept(
    catalog: SchemaCatalog, policies_dir: Path
) -> None:
    bundle = load_bundle(policies_dir, catalog)
    topics = TopicNames()
    consumer = SubmissionConsumer(
        UNUSED_BOOTSTRAP, group_id="g", pattern=topics.held, max_poll_records=1
    )
    producer = OutputProducer(UNUSED_BOOTSTRAP, TopicAdmin(UNUSED_BOOTSTRAP))
    releaser = EmbargoReleaser(
        consumer=consumer,
        producer=producer,
        catalog=catalog,
        topics=topics,
        policy=FixedPolicy(ActivePolicy(RegoDecisionPoint(bundle), bundle)),
        clock=lambda: NOW,
    )
    try:
        for partition, offset in [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1)]:
            releaser._admit(_held(catalog, topics, partition, offset))
        assert releaser.waiting == 5

        await releaser.forget({(topics.held, 1), (topics.submit("NL"), 0)})

        assert releaser.waiting == 3, "partition 1's two items are gone; another topic's 0 is not"
        assert sorted((i.partition, i.offset) for i in releaser._queue) == [(0, 0), (0, 1), (2, 0)]
        assert releaser._queue[0].due_s == min(i.due_s for i in releaser._queue), "still a heap"
        assert 1 not in releaser._pending
        assert 1 not in releaser._seen, "nothing is committed for a partition no longer ours"
    finally:
        await consumer.stop()
        await producer.stop()


class _RefusedOnce(OutputProducer):
    """The real producer, except that Kafka does not acknowledge its first batch."""

    def __init__(self, bootstrap: str, admin: TopicAdmin) -> None:
        super().__init__(bootstrap, admin)
        self.refused = False
        self.records: list[OutboundRecord] = []  # acknowledged

    async def send_all(self, records: Sequence[OutboundRecord]) -> None:
        if not self.refused:
            self.refused = True
            raise TransportError("not acknowledged (injected)")
        await super().send_all(records)
        self.records.extend(records)


async def test_a_release_resent_after_its_partition_came_back_is_decided_and_sent_once(
    catalog: SchemaCatalog, policies_dir: Path, kafka_bootstrap: str
) -> None:
    bundle = load_bundle(policies_dir, catalog)
    topics = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    admin = TopicAdmin(kafka_bootstrap)
    producer = _RefusedOnce(kafka_bootstrap, admin)
    consumer = SubmissionConsumer(
        UNUSED_BOOTSTRAP, group_id="g", pattern=topics.held, max_poll_records=1
    )
    releaser = EmbargoReleaser(
        consumer=consumer,
        producer=producer,
        catalog=catalog,
        topics=topics,
        policy=FixedPolicy(ActivePolicy(RegoDecisionPoint(bundle), bundle)),
        clock=lambda: NOW + dt.timedelta(hours=2),  # every item is due
        audit=AuditWriter(catalog),
    )
    decision_input = {
        "origin": "NL",
        "recipient": "BE",
        "report_type": "smuggling",
        "marking": "TLP:GREEN",
        "handling_code": "H0",
        "now_s": 0,
    }
    held = _held(catalog, topics, 0, 0, decision_input)
    await admin.start()
    await producer.start()
    try:
        releaser._admit(held)
        await releaser.release_due()  # decided; Kafka does not acknowledge: kept to resend
        await releaser.forget({(topics.held, 0)})  # a rebalance takes the partition ...
        releaser._admit(held)  # ... gives it back, and the item is read again
        await releaser.release_due()  # the release is sent again, as it was
        await releaser.release_due()
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.close()

    assert releaser.stats.released + releaser.stats.refused == 1, "decided once"
    assert [r.topic for r in producer.records].count(topics.audit) == 1, "one audit entry"
    assert releaser.waiting == 0
    assert releaser._pending[0] == set(), "nothing pending: the offset may be committed"
