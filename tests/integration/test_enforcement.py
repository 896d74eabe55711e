"""The walking skeleton end to end: publish, enforce, deliver, refuse."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from broker.errors import RejectedInput
from broker.kafka.reader import read_topic
from broker.parties.recipient import FeedProblem, VerifiedDelivery, verify_delivery
from broker.trust.keystore import Keystore
from broker.trust.registry_file import RegistryFile
from broker.trust.sd.submission import SUBMISSION_SCHEMA
from broker.trust.sealing.envelope import Opener, read_sealed
from broker.wire.codec import MAGIC
from broker.wire.records import OutboundRecord
from tests.factories import make_report
from tests.integration.conftest import Exchange
from tests.support.submissions import seal_signed, tamper_disclosure, tamper_signed_payload

pytestmark = pytest.mark.integration


def _verified(items: list[VerifiedDelivery | FeedProblem]) -> list[VerifiedDelivery]:
    assert not [i for i in items if isinstance(i, FeedProblem)], items
    return [i for i in items if isinstance(i, VerifiedDelivery)]


async def test_an_allowed_report_reaches_the_partner_with_redacted_fields_withheld(
    exchange: Exchange,
) -> None:
    report = make_report("NL")
    await exchange.publish("NL", [exchange.seal(report)])
    await exchange.wait_completed(1)

    [delivery] = _verified(await exchange.feed("BE"))
    received = delivery.report
    assert received.report_id == report.report_id
    assert delivery.agreement_id == "test-nl-be"
    assert delivery.agreement_version == 4
    assert delivery.policy_bundle_hash.startswith("sha256:")
    assert delivery.withheld_fields == ("subjects[].travel_documents[].number", "summary")
    assert received.summary is None
    assert [d.number for s in received.subjects for d in s.travel_documents] == [None, None]
    # Everything the agreement does not withhold arrives exactly as sent.
    assert received.model_dump(exclude={"summary", "subjects"}) == report.model_dump(
        exclude={"summary", "subjects"}
    )
    assert [s.full_name for s in received.subjects] == ["Adrian Varga", "Mira Okafor"]
    assert [d.issuing_country for d in received.subjects[0].travel_documents] == ["HU", "HU"]


async def test_a_report_reaches_no_nation_without_an_agreement_and_never_returns_to_its_origin(
    exchange: Exchange,
) -> None:
    await exchange.publish("NL", [exchange.seal(make_report("NL"))])
    await exchange.publish("DE", [exchange.seal(make_report("DE"))])
    await exchange.wait_completed(2)

    assert _verified(await exchange.feed("DE")) == []
    assert _verified(await exchange.feed("NL")) == []
    assert len(_verified(await exchange.feed("BE"))) == 1
    assert exchange.stats.withheld["no_agreement"] == 3  # NL->DE, DE->NL, DE->BE


async def test_a_type_or_marking_the_agreement_does_not_cover_is_not_delivered(
    exchange: Exchange,
) -> None:
    await exchange.publish(
        "NL",
        [
            exchange.seal(make_report("NL", report_type="terrorism")),
            exchange.seal(make_report("NL", marking="TLP:AMBER+STRICT")),
        ],
    )
    await exchange.wait_completed(2)

    assert _verified(await exchange.feed("BE")) == []
    assert exchange.stats.withheld["test-nl-be:report_type_not_covered"] == 1
    assert exchange.stats.withheld["test-nl-be:marking_above_limit"] == 1


async def test_a_tampered_submission_is_refused_with_its_bytes_and_the_enforcer_goes_on(
    exchange: Exchange,
) -> None:
    good = exchange.seal(make_report("NL"))
    forged = exchange.resealed(
        exchange.seal(make_report("NL")), lambda s: tamper_signed_payload(exchange.catalog, s)
    )
    value = forged.value
    tampered = dataclasses.replace(good, value=value, key=b"tampered")
    await exchange.publish("NL", [tampered, good])
    await exchange.wait_completed(2)

    [rejection] = await exchange.rejections("NL")
    assert rejection["reason"] == "bad_signature"
    assert rejection["stage"] == "signature"
    assert rejection["original_value"] == value
    assert rejection["original_key"] == b"tampered"
    assert rejection["source_topic"] == exchange.topics.submit("NL")
    assert len(_verified(await exchange.feed("BE"))) == 1


async def test_a_value_altered_in_transit_is_refused_because_its_digest_is_not_signed(
    exchange: Exchange,
) -> None:
    good = exchange.seal(make_report("NL"))
    altered = exchange.resealed(good, lambda s: tamper_disclosure(exchange.catalog, s, "summary"))
    await exchange.publish("NL", [altered])
    await exchange.wait_completed(1)

    [rejection] = await exchange.rejections("NL")
    assert (rejection["reason"], rejection["stage"]) == ("disclosure_not_signed", "disclosure")
    assert _verified(await exchange.feed("BE")) == []


async def test_a_report_claiming_another_origin_than_its_key_is_refused(
    exchange: Exchange,
) -> None:
    forged = exchange.seal(make_report("NL"), key_nation="BE")  # BE key, BE topic, origin NL
    await exchange.publish("BE", [forged])
    await exchange.wait_completed(1)

    [rejection] = await exchange.rejections("BE")
    assert rejection["reason"] == "origin_mismatch"
    assert _verified(await exchange.feed("NL")) == []


async def test_a_sealed_submission_moved_to_another_nations_topic_does_not_open(
    exchange: Exchange,
) -> None:
    sealed_for_nl = exchange.seal(make_report("NL"))
    moved = dataclasses.replace(sealed_for_nl, topic=exchange.topics.submit("BE"))
    await exchange.publish("BE", [moved])
    await exchange.wait_completed(1)

    [rejection] = await exchange.rejections("BE")
    assert (rejection["reason"], rejection["stage"]) == ("seal_unopenable", "unseal")
    assert rejection["original_value"] == sealed_for_nl.value, "kept sealed, as it came"


async def test_a_submission_on_another_nations_topic_is_refused(exchange: Exchange) -> None:
    misplaced = exchange.seal(make_report("NL"), topic_nation="BE")  # NL key on BE's topic
    await exchange.publish("BE", [misplaced])
    await exchange.wait_completed(1)

    [rejection] = await exchange.rejections("BE")
    assert rejection["reason"] == "wrong_topic"
    assert rejection["stage"] == "identity"


async def test_an_unknown_schema_fingerprint_is_refused_even_when_correctly_signed(
    exchange: Exchange,
) -> None:
    from broker.app.assembly import signer_for
    from broker.trust.records import KeyRole

    signer = signer_for(exchange.settings, exchange.catalog, role=KeyRole.AGENCY, nation="NL")
    unknown = MAGIC + bytes.fromhex("0123456789abcdef") + b"\x00" * 20
    submission = exchange.catalog.encode(
        SUBMISSION_SCHEMA, {"envelope": signer.seal(unknown), "disclosures": []}
    )
    topic = exchange.topics.submit("NL")
    sealed = seal_signed(exchange.settings, exchange.catalog, submission, topic=topic)
    record = OutboundRecord(topic, b"k", sealed)
    garbage = OutboundRecord(exchange.topics.submit("NL"), b"g", b"not avro at all")
    await exchange.publish("NL", [record, garbage])
    await exchange.wait_completed(2)

    reasons = sorted(str(r["reason"]) for r in await exchange.rejections("NL"))
    assert reasons == ["not_single_object", "unknown_schema"]


async def test_a_delivery_altered_after_the_broker_signed_it_does_not_verify(
    exchange: Exchange,
) -> None:
    await exchange.publish("NL", [exchange.seal(make_report("NL"))])
    await exchange.wait_completed(1)
    [raw] = [
        r
        async for r in read_topic(
            exchange.bootstrap, exchange.topics.deliver("BE"), idle_timeout_s=1.5
        )
    ]
    assert raw.value is not None
    registry = RegistryFile(exchange.settings.registry_path).current()
    keys = Keystore(exchange.settings.keystore_dir)  # every nation's, as one test home holds them

    agreements = exchange.agreements

    def verify(data: bytes, recipient: str) -> None:
        verify_delivery(
            exchange.catalog,
            registry,
            data,
            recipient=recipient,
            agreements=agreements,
            keys=keys,
            topics=exchange.topics,
        )

    verify(raw.value, "BE")
    with pytest.raises(RejectedInput):
        verify(raw.value, "DE")
    altered = bytearray(raw.value)
    altered[len(altered) // 2] ^= 0x01
    with pytest.raises(RejectedInput):
        verify(bytes(altered), "BE")


async def test_a_delivery_moved_to_another_nations_topic_does_not_open_there(
    exchange: Exchange,
) -> None:
    await exchange.publish("NL", [exchange.seal(make_report("NL"))])
    await exchange.wait_completed(1)
    [raw] = [
        r
        async for r in read_topic(
            exchange.bootstrap, exchange.topics.deliver("BE"), idle_timeout_s=1.5
        )
    ]
    assert raw.value is not None
    moved = OutboundRecord(exchange.topics.deliver("DE"), raw.key, raw.value, raw.headers)
    await exchange.publish("DE", [moved])  # as an operator with write access might

    [problem] = await exchange.feed("DE")  # DE's reader, holding (in this home) every key
    assert isinstance(problem, FeedProblem)
    assert problem.reason == "seal_unopenable"
    # Not even BE's own key opens it there: the topic is bound into the seal.
    keys = Keystore(exchange.settings.keystore_dir)
    be_on_de = Opener(keys, "BE")
    with pytest.raises(RejectedInput) as caught:
        be_on_de.open(read_sealed(exchange.catalog, raw.value), topic=moved.topic)
    assert caught.value.reason == "seal_unopenable"
    assert len(_verified(await exchange.feed("BE"))) == 1, "where it belongs, it opens"


async def test_a_resubmitted_report_is_refused_as_a_replay_and_delivered_once(
    exchange: Exchange,
) -> None:
    record = exchange.seal(make_report("NL", report_id=uuid.uuid4()))
    await exchange.publish("NL", [record, record])
    await exchange.wait_completed(2)

    feed = [
        r
        async for r in read_topic(
            exchange.bootstrap, exchange.topics.deliver("BE"), idle_timeout_s=1.5
        )
    ]
    assert len(feed) == 1
    [rejection] = await exchange.rejections("NL")
    assert (rejection["reason"], rejection["stage"]) == ("replayed_report", "replay")
    assert rejection["original_value"] == record.value
