"""The audit evidence is created to be kept, and a topic made otherwise is named at start."""

# ruff: noqa: TID251 - the test makes a topic as an operator (or an older ixb) would, not via ixb

from __future__ import annotations

import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from broker.topics import TopicNames
from broker.transport import TopicAdmin


async def test_ixb_creates_the_decision_log_checkpoints_and_bundle_archive_to_be_kept(
    kafka_bootstrap: str,
) -> None:
    topics = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    evidence = [topics.audit, topics.audit_checkpoints, topics.bundles]
    admin = TopicAdmin(kafka_bootstrap)
    await admin.start()
    try:
        await admin.ensure(evidence)
        drifts = [await admin.drift(topic) for topic in evidence]
    finally:
        await admin.close()
    raw = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await raw.start()
    try:
        described = await raw.describe_topics(evidence)
    finally:
        await raw.close()

    assert drifts == [{}, {}, {}]
    partitions = {d["topic"]: len(d["partitions"]) for d in described}
    assert partitions == {topics.audit: 3, topics.audit_checkpoints: 1, topics.bundles: 1}


async def test_a_decision_log_made_with_the_cluster_defaults_is_named_with_what_it_holds(
    kafka_bootstrap: str,
) -> None:
    topics = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    raw = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await raw.start()
    try:
        await raw.create_topics(
            [
                NewTopic(topics.audit, 3, 1, topic_configs={"retention.ms": "604800000"}),
                NewTopic(topics.bundles, 1, 1),
            ]
        )
    finally:
        await raw.close()
    admin = TopicAdmin(kafka_bootstrap)
    await admin.start()
    try:
        await admin.ensure([topics.audit, topics.bundles])  # exist already: left as they are
        audit, bundles = await admin.drift(topics.audit), await admin.drift(topics.bundles)
    finally:
        await admin.close()

    assert audit.keys() == {"retention.ms", "retention.bytes"}
    assert audit["retention.ms"] == "604800000"
    assert bundles.keys() == {"cleanup.policy"}
    assert bundles["cleanup.policy"] != "compact"
