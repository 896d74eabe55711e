"""Provenance end to end: what a recipient can prove about every field, replays, hybrid keys.

The enforcer runs under a test agreement that pseudonymises names,
generalises dates and locations and withholds document numbers
(tests/integration/rules_support.py).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from broker.app.settings import Settings
from broker.kafka.reader import read_topic
from broker.parties.recipient import FieldProvenance
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRole, KeyUse
from broker.trust.registry_file import RegistryFile
from broker.trust.sealing.envelope import Opener, read_sealed
from tests.factories import make_report
from tests.integration.conftest import enforcer
from tests.integration.rules_support import feed_until, rules_settings

pytestmark = pytest.mark.integration

AGREEMENT = "rules-nl-be v1"


@pytest.fixture
async def settings(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> Settings:
    return await rules_settings(tmp_path, kafka_bootstrap, policies_dir)


def _keys(settings: Settings) -> tuple[RegistryFile, Keystore]:
    keystore = Keystore(settings.keystore_dir)
    return RegistryFile(settings.registry_path, keystore=keystore), keystore


async def test_a_recipient_proves_each_field_signed_derived_or_withheld(settings: Settings) -> None:
    report = make_report("NL")
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(report)])
        await exchange.wait_completed(1)
        [delivery] = await feed_until(exchange, "BE", 1, timeout_s=10)
        be = Opener(Keystore(settings.keystore_dir), "BE")
        raw = [
            be.open(read_sealed(exchange.catalog, r.value or b""), topic=r.topic)
            async for r in read_topic(
                exchange.bootstrap, exchange.topics.deliver("BE"), idle_timeout_s=1.0
            )
        ]  # what BE itself can read, opened with its key

    nl_key = delivery.originator_key_id
    signed = FieldProvenance("signed", f"NL key {nl_key}")
    provenance = delivery.provenance
    assert provenance["report_id"] == signed
    assert provenance["title"] == signed
    assert provenance["subjects[0].nationality"] == signed
    assert provenance["subjects[0].travel_documents[1].document_type"] == signed
    assert provenance["subjects[0].full_name"] == FieldProvenance(
        "derived", AGREEMENT, "pseudonymise"
    )
    assert provenance["subjects[0].date_of_birth"] == FieldProvenance(
        "derived", AGREEMENT, "generalise to year"
    )
    assert provenance["location.latitude"] == FieldProvenance(
        "derived", AGREEMENT, "generalise to 0.1deg"
    )
    assert provenance["observed_at"].describe() == (
        f"generalise to hour by the broker under {AGREEMENT}"
    )
    withheld = sorted(p for p, v in provenance.items() if v.kind == "withheld")
    assert withheld == [
        "subjects[0].travel_documents[0].number",
        "subjects[0].travel_documents[1].number",
    ]
    derived_kinds = {v.kind for p, v in provenance.items() if p.startswith("location")}
    assert derived_kinds == {"derived"}

    subject = delivery.report.subjects[0]
    assert subject.full_name is not None
    assert subject.full_name.startswith("ps1-")
    assert [d.number for d in subject.travel_documents] == [None, None]
    assert subject.date_of_birth == dt.date(1984, 1, 1)
    for value in (b"HX1234567", b"ID7654321", b"Adrian Varga", b"1984-06-02"):
        assert not any(value in r for r in raw), value  # withheld or replaced: never sent


async def test_a_report_is_accepted_once_even_across_an_enforcer_restart(
    settings: Settings,
) -> None:
    record = None
    async with enforcer(settings) as exchange:
        record = exchange.seal(make_report("NL"))
        await exchange.publish("NL", [record, record])
        await exchange.wait_completed(2)
    async with enforcer(settings) as exchange:  # a new process: its memory comes from Kafka
        await exchange.publish("NL", [record])
        await exchange.wait_completed(1)
        rejections = await exchange.rejections("NL")
        delivered = await feed_until(exchange, "BE", 1, timeout_s=5)

    assert [r["reason"] for r in rejections] == ["replayed_report", "replayed_report"]
    assert len(delivered) == 1


# Revocation, judged at the time a report reached Kafka: test_revocation_at_receipt.py.


async def test_a_partner_signing_with_a_hybrid_post_quantum_key_is_delivered_and_verified(
    settings: Settings,
) -> None:
    registry_file, keystore = _keys(settings)
    rotated, record = keystore.rotate(
        registry_file.current(),
        role=KeyRole.AGENCY,
        nation="NL",
        algorithm="ed25519+ml-dsa-65",
    )
    registry_file.save(rotated)
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(make_report("NL"))])
        await exchange.wait_completed(1)
        [delivery] = await feed_until(exchange, "BE", 1, timeout_s=10)

    assert record.algorithm == "ed25519+ml-dsa-65"
    assert delivery.originator_key_id == record.key_id
    assert delivery.provenance["title"].describe() == f"signed by NL key {record.key_id}"


async def test_a_partner_choosing_the_post_quantum_hybrid_sealing_suite_receives_under_it(
    settings: Settings,
) -> None:
    """BE rotates its sealing key to ML-KEM-768 + X25519; its deliveries are sealed to that."""
    registry_file, keystore = _keys(settings)
    rotated, record = keystore.rotate(
        registry_file.current(),
        role=KeyRole.AGENCY,
        nation="BE",
        use=KeyUse.SEALING,
        algorithm="ml-kem-768+x25519",
    )
    registry_file.save(rotated)
    async with enforcer(settings) as exchange:
        await exchange.publish("NL", [exchange.seal(make_report("NL"))])
        await exchange.wait_completed(1)
        [delivery] = await feed_until(exchange, "BE", 1, timeout_s=10)
        [raw] = [
            r
            async for r in read_topic(
                exchange.bootstrap, exchange.topics.deliver("BE"), idle_timeout_s=1.0
            )
        ]

    [reader] = read_sealed(exchange.catalog, raw.value or b"").readers
    assert (reader.key_id, reader.suite) == (record.key_id, "mlkem768_x25519")
    assert delivery.origin == "NL"
