"""A release's decision-log entry names the report it releases, also for a delivery held by 0.2.

The held record carries the report id and the submission reference since
issue 18; a record held by ixb 0.2 (schemas/previous/held_delivery.0.2.avsc)
still decodes, its new fields null, and is still released: its entry then
names neither, as 0.2's entries did. A record held today is sealed to the
broker (as the enforcer seals it); one held by 0.2 lies there unsealed, as
0.2 wrote it, and is released all the same. Kafka is the in-memory test
transport.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

from broker.auditlog.bundles import BundleArchiver
from broker.auditlog.entries import AuditWriter, Outcome, SubmissionRef, decode_entry
from broker.domain.decisions import DecisionInput
from broker.enforcer.runtime.embargo import EmbargoReleaser
from broker.enforcer.stages.derive import effective_rules
from broker.enforcer.stages.fanout import HELD_SCHEMA, rules_digest
from broker.errors import ConfigurationError
from broker.kafka.memory import MemoryCluster
from broker.policy.archive import archive_bundle
from broker.policy.rego import RegoDecisionPoint
from broker.policy.source import ActivePolicy, FixedPolicy
from broker.resources import SCHEMAS_DIR
from broker.trust.sealing.envelope import Opener
from broker.trust.sealing.parties import BROKER_PARTY
from broker.trust.sealing.routes import held_content_key
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord
from broker.wire.topics import TopicNames
from tests.integration.conftest import NL_BE_AGREEMENT
from tests.unit.test_embargo_revoke import KEYS, REGISTRY, _attested

NOW = dt.datetime(2026, 11, 22, 9, tzinfo=dt.UTC)
REF = SubmissionRef("ixb.submit.NL", 2, 41, bytes(range(32)))
NL_TO_BE = DecisionInput(
    origin="NL",
    recipient="BE",
    report_type="smuggling",
    marking="TLP:GREEN",
    handling_code="H0",
    now_s=int(NOW.timestamp()),
)


@pytest.fixture
def old_catalog(tmp_path: Path) -> SchemaCatalog:
    """A catalog that writes held deliveries as ixb 0.2 did."""
    shutil.copy(SCHEMAS_DIR / "previous" / "held_delivery.0.2.avsc", tmp_path / "held.avsc")
    return SchemaCatalog.load(tmp_path)


def _held(point: RegoDecisionPoint, catalog: SchemaCatalog, **new: Any) -> dict[str, Any]:
    decision = point.decide(NL_TO_BE)
    assert decision.allow
    assert decision.agreement is not None
    topics = TopicNames()
    return {
        "delivery_id": "d-0-0",
        "not_before": NOW + dt.timedelta(minutes=30),
        "held_at": NOW,
        "decision_input": NL_TO_BE.model_dump_json(),
        "agreement_id": decision.agreement.id,
        "agreement_version": decision.agreement.version,
        "rules_digest": rules_digest(effective_rules(decision.field_rules)),
        "topic": topics.deliver("BE"),
        "value": _attested(catalog, "d-0-0"),
        **new,
    }


async def _released(
    catalog: SchemaCatalog, policies_dir: Path, held: bytes
) -> tuple[EmbargoReleaser, list[Any]]:
    bundle, archive = archive_bundle(policies_dir, catalog)
    topics = TopicNames()
    cluster = MemoryCluster()
    releaser = EmbargoReleaser(
        consumer=cluster.consumer(group_id="g", pattern=topics.held),
        producer=cluster.producer(),
        catalog=catalog,
        topics=topics,
        policy=FixedPolicy(ActivePolicy(RegoDecisionPoint(bundle), bundle, archive)),
        clock=lambda: NOW + dt.timedelta(hours=2),  # due
        audit=AuditWriter(catalog),
        archiver=BundleArchiver(topics.bundles),
        opener=Opener(KEYS, BROKER_PARTY),
        registry=lambda: REGISTRY,
    )
    releaser._admit(InboundRecord(topics.held, 0, 0, b"k", held, (), 0))
    await releaser.release_due()
    entries = [decode_entry(catalog, v or b"") for v in cluster.values(topics.audit)]
    return releaser, entries


@pytest.fixture
def point(catalog: SchemaCatalog, policies_dir: Path) -> RegoDecisionPoint:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    return RegoDecisionPoint(archive_bundle(policies_dir, catalog)[0])


async def test_a_release_entry_names_the_report_and_the_submission_of_the_held_delivery(
    catalog: SchemaCatalog, policies_dir: Path, point: RegoDecisionPoint
) -> None:
    submission = {"topic": REF.topic, "partition": 2, "offset": 41, "sha256": REF.sha256}
    held = held_content_key(REGISTRY, topic=TopicNames().held, at=NOW).seal(
        catalog,
        catalog.encode(HELD_SCHEMA, _held(point, catalog, report_id="r-1", submission=submission)),
    )

    releaser, [entry] = await _released(catalog, policies_dir, held)

    assert releaser.stats.released == 1
    assert entry.event.outcome is Outcome.RELEASED
    assert (entry.event.report_id, entry.event.submission) == ("r-1", REF)
    assert entry.event.delivery_id == "d-0-0"


async def test_a_delivery_held_by_ixb_0_2_is_still_released_and_its_entry_names_no_report(
    catalog: SchemaCatalog,
    old_catalog: SchemaCatalog,
    policies_dir: Path,
    point: RegoDecisionPoint,
) -> None:
    held = old_catalog.encode(HELD_SCHEMA, _held(point, catalog))  # unsealed, as 0.2 wrote it
    assert held[2:10] != catalog.schema(HELD_SCHEMA).fingerprint, "written in the old schema"

    releaser, [entry] = await _released(catalog, policies_dir, held)

    assert (releaser.stats.released, releaser.stats.malformed) == (1, 0)
    assert entry.event.outcome is Outcome.RELEASED
    assert (entry.event.report_id, entry.event.submission) == (None, None)


def test_an_earlier_schema_decodes_into_todays_and_is_never_written(
    catalog: SchemaCatalog, old_catalog: SchemaCatalog, point: RegoDecisionPoint
) -> None:
    record = _held(point, catalog)
    decoded = catalog.decode(old_catalog.encode(HELD_SCHEMA, record), HELD_SCHEMA)

    assert decoded == {**record, "report_id": None, "submission": None}
    written = catalog.encode(HELD_SCHEMA, decoded)
    assert written[2:10] == catalog.schema(HELD_SCHEMA).fingerprint


def test_a_previous_schema_no_current_schema_is_named_after_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    shutil.copy(SCHEMAS_DIR / "audit_entry.avsc", tmp_path / "audit_entry.avsc")
    (tmp_path / "previous").mkdir()
    shutil.copy(SCHEMAS_DIR / "previous" / "held_delivery.0.2.avsc", tmp_path / "previous")

    with pytest.raises(
        ConfigurationError, match=r"no current schema is named ixb\.v1\.HeldDelivery"
    ):
        SchemaCatalog.load(tmp_path)
