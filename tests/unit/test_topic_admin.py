"""Topic creation failures reported inside a CreateTopics response are not ignored."""

from __future__ import annotations

from broker.topics import TopicNames, TopicShape, shape_of
from broker.transport import creation_failures


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
        for other in (names.submit("NL"), names.deliver("BE"), names.held, names.accepted):
            assert shape_of(other) == TopicShape()
