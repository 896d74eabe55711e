"""The embargo releaser forgets the held deliveries of partitions the group took away.

Kafka here is the in-memory test transport (broker/kafka/memory.py): the
releaser's consumer and producer are the protocols it runs on, and a send
Kafka does not acknowledge is injected exactly where the test needs it.
Held deliveries are sealed to a broker key, and released ones to BE's, as
the enforcer seals them (broker/enforcer/stages/sealing.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

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
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.sd.statement import DELIVERY_SCHEMA
from broker.trust.sealing.envelope import Opener, read_sealed
from broker.trust.sealing.keys import DecryptionKey, Keyring
from broker.trust.sealing.parties import BROKER_PARTY
from broker.trust.sealing.routes import held_content_key
from broker.trust.signatures import SigningKey
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord
from broker.wire.topics import TopicNames
from tests.integration.conftest import NL_BE_AGREEMENT

NOW = dt.datetime(2026, 11, 22, 9, tzinfo=dt.UTC)


def _sealing_key(role: KeyRole, nation: str | None) -> tuple[KeyRecord, DecryptionKey]:
    private = DecryptionKey.generate("x25519", prefix=f"{nation or role.value}-seal")
    record = KeyRecord(
        key_id=private.key_id,
        role=role,
        nation=nation,
        algorithm=private.algorithm,
        public_key=private.public_key_b64(),
        not_before=NOW - dt.timedelta(days=1),
    )
    return record, private


BROKER_SEALING, BROKER_PRIVATE = _sealing_key(KeyRole.BROKER, None)
BE_SEALING, BE_PRIVATE = _sealing_key(KeyRole.AGENCY, "BE")
REGISTRY = PartnerRegistry([BROKER_SEALING, BE_SEALING])
KEYS = Keyring([BROKER_PRIVATE, BE_PRIVATE])


def _releaser(**given: Any) -> EmbargoReleaser:
    return EmbargoReleaser(**given, opener=Opener(KEYS, BROKER_PARTY), registry=lambda: REGISTRY)


def _attested(catalog: SchemaCatalog, delivery_id: str) -> bytes:
    """A statement to BE as the enforcer attests it (the releaser checks whom it names)."""
    statement = {
        "delivery_id": delivery_id,
        "recipient": "BE",
        "origin": "NL",
        "report_id": "2b1f4a8e-1c52-4bd4-9b7a-0c3e5a1f2d11",
        "agreement_id": "a",
        "agreement_version": 1,
        "policy_bundle_hash": "sha256:" + "ab" * 32,
        "withheld_fields": [],
        "derived_fields": [],
        "original_sha256": bytes(32),
        "originator_key_id": "NL-1",
        "decided_at": NOW,
        "received_at": NOW,
        "not_before": None,
        "originator_envelope": b"envelope bytes",
        "disclosures": [],
        "derived_values": [],
    }
    key = SigningKey.generate("ed25519", prefix="broker")
    return BatchAttester(key, catalog).attest([catalog.encode(DELIVERY_SCHEMA, statement)])[0]


def _sealed(catalog: SchemaCatalog, topics: TopicNames, held: dict[str, Any]) -> bytes:
    content = held_content_key(REGISTRY, topic=topics.held, at=NOW)
    return content.seal(catalog, catalog.encode(HELD_SCHEMA, held))


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
    delivery_id = f"d-{partition}-{offset}"
    value = _sealed(
        catalog,
        topics,
        {
            "delivery_id": delivery_id,
            "not_before": NOW + dt.timedelta(minutes=60 - 10 * partition - offset),
            "held_at": NOW,
            "decision_input": (decision_input or _NL_TO_BE).model_dump_json(),
            "agreement_id": agreement_id,
            "agreement_version": 1,
            "rules_digest": digest,
            "topic": topics.deliver("BE"),
            "value": _attested(catalog, delivery_id),
        },
    )
    return InboundRecord(topics.held, partition, offset, b"k", value, (), 0)


async def test_held_deliveries_of_revoked_partitions_are_forgotten_and_the_others_kept(
    catalog: SchemaCatalog, policies_dir: Path
) -> None:
    bundle, archive = archive_bundle(policies_dir, catalog)
    topics = TopicNames()
    cluster = MemoryCluster()
    releaser = _releaser(
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
    # One whose decision input does not parse is named at once, not at its release;
    # so is one whose statement names another delivery than the held record does.
    broken = _held(catalog, topics, 3, 0)
    opened = Opener(KEYS, BROKER_PARTY).open(
        read_sealed(catalog, broken.value or b""), topic=topics.held
    )
    held = catalog.decode(opened, HELD_SCHEMA)
    releaser._admit(
        dataclasses.replace(broken, value=_sealed(catalog, topics, held | {"decision_input": "{}"}))
    )
    readdressed = held | {"delivery_id": "d-another"}
    releaser._admit(
        dataclasses.replace(broken, offset=1, value=_sealed(catalog, topics, readdressed))
    )
    assert releaser.stats.malformed == 2
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
    releaser = _releaser(
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
    [released] = cluster.records(topics.deliver("BE"))
    opened = Opener(KEYS, "BE").open(
        read_sealed(catalog, released.value or b""), topic=released.topic
    )
    assert (
        opened
        == catalog.decode(
            Opener(KEYS, BROKER_PARTY).open(
                read_sealed(catalog, held.value or b""), topic=topics.held
            ),
            HELD_SCHEMA,
        )["value"]
    ), "the statement held, unchanged, now sealed to BE"
