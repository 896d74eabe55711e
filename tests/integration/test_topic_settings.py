"""The audit evidence is created to be kept, and a topic made otherwise is named at start."""

# ruff: noqa: TID251 - the test makes a topic as an operator (or an older ixb) would, not via ixb

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from structlog.testing import capture_logs

from broker.service import provision_keys, run_enforcer
from broker.topics import TopicNames
from broker.transport import TopicAdmin
from tests.integration.conftest import NL_BE_AGREEMENT, make_settings


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


async def test_an_enforcer_started_on_a_decision_log_made_with_the_defaults_names_it(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> None:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = make_settings(tmp_path, kafka_bootstrap, policies_dir)
    provision_keys(settings, ["NL", "BE"])
    topics = TopicNames(settings.topic_namespace)
    raw = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await raw.start()
    try:  # as an operator, or an ixb from before the topics had their settings
        await raw.create_topics(
            [
                NewTopic(topics.audit, 3, 1, topic_configs={"retention.ms": "604800000"}),
                NewTopic(topics.bundles, 1, 1, topic_configs={"cleanup.policy": "delete"}),
            ]
        )
    finally:
        await raw.close()
    stop, started = asyncio.Event(), asyncio.Event()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        running = asyncio.create_task(
            run_enforcer(settings, kafka_bootstrap, stop, started=started)
        )
        try:
            await asyncio.wait_for(started.wait(), timeout=30)
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=30)

    named = {e["topic"]: e["held"] for e in captured if e["event"] == "topic_settings_differ"}
    assert named == {
        # Tansu reports only the settings a topic was created with: the others are None
        topics.audit: {"retention.ms": "604800000", "retention.bytes": None},
        topics.bundles: {"cleanup.policy": "delete"},
    }
