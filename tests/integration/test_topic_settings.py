"""The audit evidence is created to be kept, the intake ledger to be kept only as long as
replay protection needs it, and a topic made otherwise is named at start."""

# ruff: noqa: TID251 - the test makes a topic as an operator (or an older ixb) would, not via ixb

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from structlog.testing import capture_logs

from broker.app.assembly import provision_keys
from broker.app.settings import Settings
from broker.kafka.admin import TopicAdmin
from broker.kafka.security import client_options
from broker.wire.topics import TopicNames
from tests.integration.conftest import NL_BE_AGREEMENT, enforcer, make_settings

pytestmark = pytest.mark.integration


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
    raw = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, **client_options(kafka_bootstrap))
    await raw.start()
    try:
        described = await raw.describe_topics(evidence)
    finally:
        await raw.close()

    held = {topic: await _configs(kafka_bootstrap, topic) for topic in evidence}

    assert drifts == [{}, {}, {}]
    partitions = {d["topic"]: len(d["partitions"]) for d in described}
    assert partitions == {topics.audit: 3, topics.audit_checkpoints: 1, topics.bundles: 1}
    for topic in (topics.audit, topics.audit_checkpoints):  # read back from the broker
        assert (held[topic]["retention.ms"], held[topic]["retention.bytes"]) == ("-1", "-1")
        assert held[topic]["cleanup.policy"] == "delete"
    assert held[topics.bundles]["cleanup.policy"] == "compact"  # one record per hash: all kept


async def test_an_enforcer_creates_its_intake_ledger_kept_for_the_freshness_window_and_skew(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> None:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = make_settings(tmp_path, kafka_bootstrap, policies_dir).model_copy(
        update={"max_report_age_s": 600, "max_clock_skew_s": 60}
    )
    provision_keys(settings, ["NL", "BE"])
    topics = TopicNames(settings.topic_namespace)

    await _run_briefly(settings)

    held = await _configs(kafka_bootstrap, topics.accepted)
    # 600 s fresh + 2 x 60 s skew; Kafka deletes whole segments, so one per quarter of that
    assert (held.get("retention.ms"), held.get("segment.ms")) == ("720000", "180000")
    assert held.get("cleanup.policy") == "delete"


async def test_an_enforcer_started_on_topics_made_with_the_defaults_names_them(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path
) -> None:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = make_settings(tmp_path, kafka_bootstrap, policies_dir)
    provision_keys(settings, ["NL", "BE"])
    topics = TopicNames(settings.topic_namespace)
    raw = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, **client_options(kafka_bootstrap))
    await raw.start()
    try:  # as an operator, or an ixb from before the topics had their settings
        await raw.create_topics(
            [
                NewTopic(topics.audit, 3, 1, topic_configs={"retention.ms": "604800000"}),
                NewTopic(topics.bundles, 1, 1, topic_configs={"cleanup.policy": "delete"}),
                NewTopic(topics.accepted, 3, 1, topic_configs={"retention.ms": "604800000"}),
            ]
        )
    finally:
        await raw.close()
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        await _run_briefly(settings)

    named = {e["topic"]: e["held"] for e in captured if e["event"] == "topic_settings_differ"}
    assert named == {
        # what each holds instead: the setting given, or Kafka's default (a week,
        # unlimited size); retention.bytes is the default -1 ixb wants
        topics.audit: {"retention.ms": "604800000"},
        topics.bundles: {"cleanup.policy": "delete"},
        topics.accepted: {"retention.ms": "604800000", "segment.ms": "604800000"},
    }


async def _run_briefly(settings: Settings) -> None:
    """Start an enforcer, and stop it as soon as it has started."""
    async with enforcer(settings):
        pass


async def _configs(bootstrap: str, topic: str) -> dict[str, str]:
    raw = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(bootstrap))
    await raw.start()
    try:
        responses = await raw.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await raw.close()
    return {
        entry[0]: entry[1]
        for response in responses
        for *_, entries in response.resources
        for entry in entries
    }
