"""Topic creation failures are not ignored, and the topics ixb shapes get their settings."""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest

from broker.errors import TransportError
from broker.kafka.admin import TopicAdmin, creation_failures
from broker.wire.topics import TopicNames, TopicShape, ledger_retention, shape_of


def test_created_and_already_existing_topics_are_not_failures() -> None:
    assert (
        creation_failures([("a", 0, None), ("b", 36, "Topic with this name already exists.")]) == []
    )


def test_any_other_error_code_names_the_topic_and_the_error() -> None:
    failures = creation_failures(
        [("ok", 0, None), ("ixb.submit.NL", 38, "Replication factor: 3 larger than brokers: 1")]
    )

    assert failures == [
        "ixb.submit.NL: InvalidReplicationFactorError Replication factor: 3 larger than brokers: 1"
    ]


def test_audit_evidence_is_kept_forever_and_the_bundle_archive_compacted_in_any_namespace() -> None:
    for names in (TopicNames(), TopicNames("eu.west")):
        kept = {"retention.ms": "-1", "retention.bytes": "-1"}
        assert shape_of(names.audit) == TopicShape(None, kept)
        assert shape_of(names.audit_checkpoints) == TopicShape(1, kept)
        assert shape_of(names.bundles) == TopicShape(1, {"cleanup.policy": "compact"})
        for other in (names.deliver("BE"), names.held, names.accepted):
            assert shape_of(other) == TopicShape()


def test_submission_topics_are_stamped_by_kafka_not_by_the_producer_in_any_namespace() -> None:
    """Revocation is judged at that time (broker/trust/key_checks.py)."""
    stamped = TopicShape(None, {"message.timestamp.type": "LogAppendTime"})
    for names in (TopicNames(), TopicNames("eu.west")):
        assert shape_of(names.submit("NL")) == stamped
    for unlike in ("ixb.submit.nl", "ixb.submit.NLD", "ixb.submitted.NL", "x.ixb.deliver.NL"):
        assert shape_of(unlike) == TopicShape()


def test_the_intake_ledger_is_kept_for_the_freshness_window_and_twice_the_clock_skew() -> None:
    hour, five_minutes = dt.timedelta(hours=1), dt.timedelta(minutes=5)
    assert ledger_retention(hour, five_minutes) == dt.timedelta(minutes=70)
    for names in (TopicNames(), TopicNames("eu.west")):
        shape = shape_of(names.accepted, ledger_retention=dt.timedelta(minutes=70))
        assert shape == TopicShape(None, {"retention.ms": "4200000", "segment.ms": "1050000"})
        # Segments are rolled no more than once a minute, however short the window.
        short = shape_of(names.accepted, ledger_retention=dt.timedelta(minutes=2))
        assert short.configs["segment.ms"] == "60000"
        # Only the ledger: the other topics' shapes do not depend on the window.
        for other in (names.audit, names.held, names.submit("NL")):
            assert shape_of(other, ledger_retention=hour) == shape_of(other)


def _closed_port() -> str:
    """A loopback address where nothing listens: every connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def test_a_command_reaching_no_broker_is_told_at_once() -> None:
    admin = TopicAdmin(_closed_port())
    began = time.monotonic()
    with pytest.raises(TransportError, match="cannot reach Kafka admin"):
        await admin.start()
    await admin.close()
    assert time.monotonic() - began < 3.0


async def test_the_enforcers_start_asks_again_with_fresh_clients_until_its_timeout() -> None:
    """A cluster still naming a node it just lost answers a later attempt; none here ever does."""
    admin = TopicAdmin(_closed_port())
    began = time.monotonic()
    with pytest.raises(TransportError, match="cannot reach Kafka admin"):
        await admin.start(timeout_s=2.0)
    await admin.close()
    assert time.monotonic() - began >= 2.0
