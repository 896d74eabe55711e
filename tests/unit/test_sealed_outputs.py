"""What the enforcer produces is sealed: each delivery to its recipient, a held one to the broker.

The enforcer's own batch processing (broker/app/assembly.py, no Kafka) on
submissions sealed as NL's agency seals them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from broker.app.assembly import build_stages, provision_keys
from broker.app.settings import Settings
from broker.auditlog.entries import Outcome, decode_entry
from broker.enforcer.stages.fanout import HELD_SCHEMA
from broker.enforcer.stages.sealing import NO_SEALING_KEY
from broker.errors import RejectedInput
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole, KeyUse
from broker.trust.registry_file import RegistryFile
from broker.trust.sealing.envelope import Opener, read_sealed
from broker.trust.sealing.parties import BROKER_PARTY
from broker.trust.sealing.routes import submission_content_key
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord
from broker.wire.report import report_to_record
from tests.factories import make_report
from tests.integration.conftest import NL_BE_AGREEMENT
from tests.support.submissions import seal_record, sign_record

EMBARGOED_FOR_DE = """
id: test-nl-de-embargo
version: 1
title: NL-DE, a day late
purpose: unit tests
parties: [NL, DE]
valid_from: 2020-01-01T00:00:00Z
report_types: [smuggling, document_fraud]
max_marking: TLP:AMBER
field_rules:
  "*":
    - {action: embargo, after: 1d}
"""


@pytest.fixture
def settings(tmp_path: Path, policies_dir: Path) -> Settings:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    (policies_dir / "agreements" / "test-nl-de.yaml").write_text(EMBARGOED_FOR_DE)
    settings = Settings(home=tmp_path / "home", policies_dir=policies_dir)
    provision_keys(settings, ["NL", "BE", "DE"])
    return settings


def _process(settings: Settings, catalog: SchemaCatalog, count: int) -> list[OutboundRecord]:
    stages = build_stages(settings)
    topic = stages.topics.submit("NL")
    inbound = [
        InboundRecord(
            topic,
            0,
            offset,
            b"k",
            seal_record(settings, catalog, report_to_record(make_report("NL")), key_nation="NL"),
            (),
            0,
        )
        for offset in range(count)
    ]
    return list(stages.processor().process(inbound).outputs)


def _open(catalog: SchemaCatalog, settings: Settings, record: OutboundRecord, party: str) -> bytes:
    opener = Opener(Keystore(settings.keystore_dir), party)
    return opener.open(read_sealed(catalog, record.value), topic=record.topic)


def test_a_batchs_deliveries_to_one_recipient_share_one_sealed_key_and_each_opens_alone(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    outputs = _process(settings, catalog, 3)
    topic = build_stages(settings).topics.deliver("BE")
    deliveries = [o for o in outputs if o.topic == topic]

    sealed = [read_sealed(catalog, d.value) for d in deliveries]
    assert len(deliveries) == 3
    assert len({s.readers for s in sealed}) == 1, "one encapsulation for the batch"
    assert len({s.nonce for s in sealed}) == 3
    for delivery in deliveries:
        assert _open(catalog, settings, delivery, "BE")  # each on its own, BE's key
        with pytest.raises(RejectedInput):
            _open(catalog, settings, delivery, BROKER_PARTY)


def test_a_held_delivery_is_sealed_whole_to_the_broker(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    outputs = _process(settings, catalog, 1)
    topics = build_stages(settings).topics
    [held] = [o for o in outputs if o.topic == topics.held]

    record = catalog.decode(_open(catalog, settings, held, BROKER_PARTY), HELD_SCHEMA)

    assert record["topic"] == topics.deliver("DE")
    assert record["agreement_id"] == "test-nl-de-embargo"
    with pytest.raises(RejectedInput):
        _open(catalog, settings, held, "DE")  # not before its release


def test_an_allowed_recipient_without_a_valid_sealing_key_is_withheld_and_logged_so(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    registry_file = RegistryFile(settings.registry_path, keystore=Keystore(settings.keystore_dir))
    registry = registry_file.current()
    now = dt.datetime.now(dt.UTC)
    for key in registry.records():
        if key.role is KeyRole.AGENCY and key.nation == "BE" and key.use is KeyUse.SEALING:
            registry = registry.revoking(key.key_id, now - dt.timedelta(minutes=1))
    registry_file.save(registry)

    outputs = _process(settings, catalog, 1)
    topics = build_stages(settings).topics

    assert [o for o in outputs if o.topic == topics.deliver("BE")] == []
    entries = [decode_entry(catalog, o.value).event for o in outputs if o.topic == topics.audit]
    [for_be] = [e for e in entries if e.recipient == "BE"]
    assert (for_be.outcome, for_be.reasons) == (Outcome.WITHHELD, (NO_SEALING_KEY,))


def test_submissions_published_together_share_one_encapsulation_and_are_each_accepted(
    settings: Settings, catalog: SchemaCatalog
) -> None:
    """What Publisher.publish does with a list: one content key, a fresh nonce per report."""
    stages = build_stages(settings)
    topic = stages.topics.submit("NL")
    registry = RegistryFile(settings.registry_path).current()
    content = submission_content_key(registry, topic=topic, origin="NL", at=dt.datetime.now(dt.UTC))
    values = [
        content.seal(
            catalog,
            sign_record(settings, catalog, report_to_record(make_report("NL")), key_nation="NL"),
        )
        for _ in range(3)
    ]
    inbound = [InboundRecord(topic, 0, i, b"k", v, (), 0) for i, v in enumerate(values)]

    outputs = stages.processor().process(inbound).outputs

    assert len({read_sealed(catalog, v).readers for v in values}) == 1
    assert [o for o in outputs if ".rejected." in o.topic] == []
    assert len([o for o in outputs if o.topic == stages.topics.deliver("BE")]) == 3
