"""The embargo releaser forgets the held deliveries of partitions the group took away."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from broker.codec import SchemaCatalog
from broker.pipeline.embargo import EmbargoReleaser
from broker.pipeline.fanout import HELD_SCHEMA
from broker.policy.bundle import load_bundle
from broker.policy.rego import RegoDecisionPoint
from broker.policy.source import ActivePolicy, FixedPolicy
from broker.topics import TopicNames
from broker.transport import InboundRecord, OutputProducer, SubmissionConsumer, TopicAdmin
from broker.trust.attestation import BatchAttester
from broker.trust.signatures import SigningKey

UNUSED_BOOTSTRAP = "127.0.0.1:1"  # nothing here connects
NOW = dt.datetime(2026, 11, 22, 9, tzinfo=dt.UTC)


def _attested(catalog: SchemaCatalog) -> bytes:
    """A delivery as the enforcer seals it (the releaser digests its statement for the log)."""
    key = SigningKey.generate("ed25519", prefix="broker")
    return BatchAttester(key, catalog).attest([b"a statement"])[0]


def _held(catalog: SchemaCatalog, topics: TopicNames, partition: int, offset: int) -> InboundRecord:
    value = catalog.encode(
        HELD_SCHEMA,
        {
            "delivery_id": f"d-{partition}-{offset}",
            "not_before": NOW + dt.timedelta(minutes=60 - 10 * partition - offset),
            "held_at": NOW,
            "decision_input": json.dumps({}),
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
