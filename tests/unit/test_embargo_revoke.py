"""The embargo releaser forgets the held deliveries of partitions the group took away.

Kafka here is the in-memory test transport (broker/kafka/memory.py): the
releaser's consumer and producer are the protocols it runs on, and a send
Kafka does not acknowledge is injected exactly where the test needs it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from broker.auditlog.bundles import BundleArchiver
from broker.auditlog.entries import AuditWriter
from broker.domain.decisions import DecisionInput
from broker.enforcer.runtime.embargo import EmbargoReleaser
from broker.enforcer.stages.derive import effective_rules
from broker.enforcer.stages.fanout import HELD_SCHEMA, rules_digest
from broker.kafka.memory import MemoryCluster
from broker.policy.archive import archive_bundle
from broker.policy.rego import RegoDecisionPoint
from broker.policy.source import ActivePolicy, FixedPolicy
from broker.trust.attestation import BatchAttester
from broker.trust.signatures import SigningKey
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord
from broker.wire.topics import TopicNames
from tests.integration.conftest import NL_BE_AGREEMENT

NOW = dt.datetime(2026, 11, 22, 9, tzinfo=dt.UTC)


def _attested(catalog: SchemaCatalog) -> bytes:
    """A delivery as the enforcer seals it (the releaser digests its statement for the log)."""
    key = SigningKey.generate("ed25519", prefix="broker")
    return BatchAttester(key, catalog).attest([b"a statement"])[0]


_NL_TO_BE = DecisionInput(
    origin="NL",
    recipient="BE",
    report_type="smuggling",
    marking="TLP:GREEN",
    handling_code="H0",
    now_s=int(NOW.timestamp()),
)


def _held(
    catalog: SchemaCatalog,
    topics: TopicNames,
    partition: int,
    offset: int,
    decision_input: DecisionInput | None = None,
    *,
    agreement_id: str = "a",
    digest: str = "r",
) -> InboundRecord:
    value = catalog.encode(
        HELD_SCHEMA,
        {
            "delivery_id": f"d-{partition}-{offset}",
            "not_before": NOW + dt.timedelta(minutes=60 - 10 * partition - offset),
            "held_at": NOW,
            "decision_input": (decision_input or _NL_TO_BE).model_dump_json(),
            "agreement_id": agreement_id,
            "agreement_version": 1,
            "rules_digest": digest,
            "topic": topics.deliver("BE"),
            "value": _attested(catalog),
        },
    )
    return InboundRecord(topics.held, partition, offset, b"k", value, (), 0)


async def test_held_deliveries_of_revoked_partitions_are_forgotten_and_the_others_kept(
    catalog: SchemaCatalog, policies_dir: Path
) -> None:
    bundle, archive = archive_bundle(policies_dir, catalog)
    topics = TopicNames()
    cluster = MemoryCluster()
    releaser = EmbargoReleaser(
        consumer=cluster.consumer(group_id="g", pattern=topics.held),
        producer=cluster.producer(),
        catalog=catalog,
        topics=topics,
        policy=FixedPolicy(ActivePolicy(RegoDecisionPoint(bundle), bundle, archive)),
        clock=lambda: NOW,
        audit=AuditWriter(catalog),
        archiver=BundleArchiver(topics.bundles),
    )
    for partition, offset in [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1)]:
        releaser._admit(_held(catalog, topics, partition, offset))
    # One whose decision input does not parse is named at once, not at its release.
    broken = _held(catalog, topics, 3, 0)
    held = catalog.decode(broken.value or b"", HELD_SCHEMA)
    held["decision_input"] = "{}"
    releaser._admit(dataclasses.replace(broken, value=catalog.encode(HELD_SCHEMA, held)))
    assert releaser.stats.malformed == 1
    assert releaser.waiting == 5

    await releaser.forget({(topics.held, 1), (topics.submit("NL"), 0)})

    assert releaser.waiting == 3, "partition 1's two items are gone; another topic's 0 is not"
    assert sorted((i.partition, i.offset) for i in releaser._queue) == [(0, 0), (0, 1), (2, 0)]
    assert releaser._queue[0].due_s == min(i.due_s for i in releaser._queue), "still a heap"
    assert 1 not in releaser._pending
    assert 1 not in releaser._seen, "nothing is committed for a partition no longer ours"


async def test_a_release_resent_after_its_partition_came_back_is_decided_and_sent_once(
    catalog: SchemaCatalog, policies_dir: Path, kafka_bootstrap: str
) -> None:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    bundle, archive = archive_bundle(policies_dir, catalog)
    point = RegoDecisionPoint(bundle)
    decision_input = _NL_TO_BE
    held_under = point.decide(decision_input)  # the terms the delivery was held under
    assert held_under.allow
    assert held_under.agreement is not None
    topics = TopicNames()
    cluster = MemoryCluster()
    producer = cluster.producer()
    producer.refuse(1)  # Kafka does not acknowledge the first send
    releaser = EmbargoReleaser(
        consumer=cluster.consumer(group_id="g", pattern=topics.held),
        producer=producer,
        catalog=catalog,
        topics=topics,
        policy=FixedPolicy(ActivePolicy(point, bundle, archive)),
        clock=lambda: NOW + dt.timedelta(hours=2),  # every item is due
        audit=AuditWriter(catalog),
        archiver=BundleArchiver(topics.bundles),
    )
    held = _held(
        catalog,
        topics,
        0,
        0,
        decision_input,
        agreement_id=held_under.agreement.id,
        digest=rules_digest(effective_rules(held_under.field_rules)),
    )
    releaser._admit(held)
    await releaser.release_due()  # decided; Kafka does not acknowledge: kept to resend
    await releaser.forget({(topics.held, 0)})  # a rebalance takes the partition ...
    releaser._admit(held)  # ... gives it back, and the item is read again
    await releaser.release_due()  # the release is sent again, as it was
    await releaser.release_due()

    assert producer.sends == 3, "refused, then the bundle's archive and the release"
    assert (releaser.stats.released, releaser.stats.refused) == (1, 0), "released once"
    sent = [r.topic for t in cluster.topics() for r in cluster.records(t)]
    assert sent.count(topics.deliver("BE")) == 1, sent
    assert sent.count(topics.audit) == 1, "one audit entry"
    assert topics.rejected("NL") not in sent
    assert releaser.waiting == 0
    assert releaser._pending[0] == set(), "nothing pending: the offset may be committed"
