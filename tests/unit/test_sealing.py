"""The sealing primitive: only the reader sealed to opens it, on the topic it was sealed for."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import DecodeError, RejectedInput, VerificationError
from broker.trust.records import KeyRecord, KeyRole
from broker.trust.sealing.envelope import (
    SEALED_SCHEMA,
    ContentKey,
    Opener,
    read_sealed,
    seal,
)
from broker.trust.sealing.keys import X25519, XWING, DecryptionKey, Keyring
from broker.trust.sealing.parties import BROKER_PARTY
from broker.wire.codec import SchemaCatalog

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
TOPIC = "ixb.deliver.BE"
PAYLOAD = b"\xc3\x01" + bytes(8) + b"CANARY-sealed-payload" * 20


def _key(
    role: KeyRole, nation: str | None, algorithm: str = X25519
) -> tuple[KeyRecord, DecryptionKey]:
    private = DecryptionKey.generate(algorithm, prefix=f"{nation or role.value}-seal")
    record = KeyRecord(
        key_id=private.key_id,
        role=role,
        nation=nation,
        algorithm=private.algorithm,
        public_key=private.public_key_b64(),
        not_before=NOW,
    )
    return record, private


def _refusal(catalog: SchemaCatalog, data: bytes, opener: Opener, topic: str = TOPIC) -> str:
    with pytest.raises(RejectedInput) as caught:
        opener.open(read_sealed(catalog, data), topic=topic)
    assert caught.value.stage == "unseal"
    return caught.value.reason


@pytest.mark.parametrize("algorithm", [X25519, XWING])
def test_the_reader_sealed_to_opens_the_payload_and_the_bytes_hide_it(
    catalog: SchemaCatalog, algorithm: str
) -> None:
    be, private = _key(KeyRole.AGENCY, "BE", algorithm)

    sealed = seal(catalog, PAYLOAD, topic=TOPIC, to=[be])

    assert b"CANARY" not in sealed
    assert Opener(Keyring([private]), "BE").open(read_sealed(catalog, sealed), topic=TOPIC) == (
        PAYLOAD
    )


@pytest.mark.parametrize("algorithm", [X25519, XWING])
def test_a_sealed_record_moved_to_another_topic_does_not_open(
    catalog: SchemaCatalog, algorithm: str
) -> None:
    be, private = _key(KeyRole.AGENCY, "BE", algorithm)
    sealed = seal(catalog, PAYLOAD, topic=TOPIC, to=[be])

    reason = _refusal(catalog, sealed, Opener(Keyring([private]), "BE"), topic="ixb.deliver.NL")

    assert reason == "seal_unopenable"


def test_a_payload_sealed_for_one_party_does_not_open_as_another_with_the_same_key(
    catalog: SchemaCatalog,
) -> None:
    be, private = _key(KeyRole.AGENCY, "BE")
    sealed = seal(catalog, PAYLOAD, topic=TOPIC, to=[be])

    assert _refusal(catalog, sealed, Opener(Keyring([private]), "NL")) == "seal_unopenable"


def test_a_reader_renamed_to_another_key_id_of_the_same_private_key_does_not_open(
    catalog: SchemaCatalog,
) -> None:
    be, private = _key(KeyRole.AGENCY, "BE")
    alias = dataclasses.replace(private, key_id="BE-seal-alias")
    sealed = catalog.decode(seal(catalog, PAYLOAD, topic=TOPIC, to=[be]), SEALED_SCHEMA)
    sealed["readers"][0]["key_id"] = alias.key_id
    renamed = catalog.encode(SEALED_SCHEMA, sealed)

    assert _refusal(catalog, renamed, Opener(Keyring([alias]), "BE")) == "seal_unopenable"


def test_a_reader_whose_key_has_another_suite_is_refused_as_a_suite_mismatch(
    catalog: SchemaCatalog,
) -> None:
    hybrid, _ = _key(KeyRole.AGENCY, "BE", XWING)
    _, classical = _key(KeyRole.AGENCY, "BE", X25519)
    sealed = seal(catalog, PAYLOAD, topic=TOPIC, to=[hybrid])

    same_id = dataclasses.replace(classical, key_id=hybrid.key_id)

    assert _refusal(catalog, sealed, Opener(Keyring([same_id]), "BE")) == "suite_mismatch"


def test_a_suite_relabelled_in_the_envelope_is_refused_before_any_cryptography(
    catalog: SchemaCatalog,
) -> None:
    be, _ = _key(KeyRole.AGENCY, "BE", X25519)
    sealed = catalog.decode(seal(catalog, PAYLOAD, topic=TOPIC, to=[be]), SEALED_SCHEMA)
    sealed["readers"][0]["suite"] = "mlkem768_x25519"

    with pytest.raises(VerificationError) as caught:
        read_sealed(catalog, catalog.encode(SEALED_SCHEMA, sealed))

    assert caught.value.reason == "bad_seal"


def test_a_submission_stripped_of_its_auditor_no_longer_opens_for_the_broker(
    catalog: SchemaCatalog,
) -> None:
    broker, broker_private = _key(KeyRole.BROKER, None)
    auditor, _ = _key(KeyRole.AUDITOR, "NL")
    topic = "ixb.submit.NL"
    sealed = catalog.decode(
        seal(catalog, PAYLOAD, topic=topic, to=[broker, auditor]), SEALED_SCHEMA
    )
    sealed["readers"] = sealed["readers"][:1]
    stripped = catalog.encode(SEALED_SCHEMA, sealed)

    opener = Opener(Keyring([broker_private]), BROKER_PARTY)
    assert _refusal(catalog, stripped, opener, topic=topic) == "seal_unopenable"


def test_every_reader_of_a_submission_opens_the_same_payload(catalog: SchemaCatalog) -> None:
    broker, broker_private = _key(KeyRole.BROKER, None)
    auditor, auditor_private = _key(KeyRole.AUDITOR, "NL", XWING)
    topic = "ixb.submit.NL"

    sealed = read_sealed(catalog, seal(catalog, PAYLOAD, topic=topic, to=[broker, auditor]))

    assert sealed.key_ids == (broker.key_id, auditor.key_id)
    assert Opener(Keyring([broker_private]), BROKER_PARTY).open(sealed, topic=topic) == PAYLOAD
    assert Opener(Keyring([auditor_private]), "auditor.NL").open(sealed, topic=topic) == PAYLOAD


def test_an_altered_ciphertext_does_not_open(catalog: SchemaCatalog) -> None:
    be, private = _key(KeyRole.AGENCY, "BE")
    sealed = catalog.decode(seal(catalog, PAYLOAD, topic=TOPIC, to=[be]), SEALED_SCHEMA)
    ciphertext = bytearray(sealed["ciphertext"])
    ciphertext[5] ^= 0x01
    sealed["ciphertext"] = bytes(ciphertext)

    altered = catalog.encode(SEALED_SCHEMA, sealed)

    assert _refusal(catalog, altered, Opener(Keyring([private]), "BE")) == "seal_unopenable"


def test_an_envelope_sealed_to_none_of_the_openers_keys_says_so(catalog: SchemaCatalog) -> None:
    be, _ = _key(KeyRole.AGENCY, "BE")
    _, other = _key(KeyRole.AGENCY, "BE")
    sealed = seal(catalog, PAYLOAD, topic=TOPIC, to=[be])

    assert _refusal(catalog, sealed, Opener(Keyring([other]), "BE")) == "not_sealed_to_us"


@pytest.mark.parametrize(
    ("readers", "reason"),
    [(0, "bad_seal"), (9, "bad_seal")],
)
def test_an_envelope_with_no_reader_or_too_many_is_refused(
    catalog: SchemaCatalog, readers: int, reason: str
) -> None:
    be, _ = _key(KeyRole.AGENCY, "BE")
    sealed = catalog.decode(seal(catalog, PAYLOAD, topic=TOPIC, to=[be]), SEALED_SCHEMA)
    sealed["readers"] = [
        {**sealed["readers"][0], "key_id": f"BE-seal-{i:012d}"} for i in range(readers)
    ]

    with pytest.raises(VerificationError) as caught:
        read_sealed(catalog, catalog.encode(SEALED_SCHEMA, sealed))

    assert caught.value.reason == reason


def test_a_reader_named_twice_is_refused(catalog: SchemaCatalog) -> None:
    be, _ = _key(KeyRole.AGENCY, "BE")
    sealed = catalog.decode(seal(catalog, PAYLOAD, topic=TOPIC, to=[be]), SEALED_SCHEMA)
    sealed["readers"] = sealed["readers"] * 2

    with pytest.raises(VerificationError, match="named twice"):
        read_sealed(catalog, catalog.encode(SEALED_SCHEMA, sealed))


def test_a_non_canonical_encoding_is_refused_at_the_unseal_stage(catalog: SchemaCatalog) -> None:
    be, _ = _key(KeyRole.AGENCY, "BE")
    sealed = seal(catalog, PAYLOAD, topic=TOPIC, to=[be])
    # The readers' block count 1 (zigzag 0x02) as an over-long varint: the same value.
    header = len(catalog.schema(SEALED_SCHEMA).header)
    assert sealed[header] == 0x02
    padded = sealed[:header] + b"\x82\x00" + sealed[header + 1 :]

    with pytest.raises(DecodeError) as caught:
        read_sealed(catalog, padded)

    assert (caught.value.reason, caught.value.stage) == ("non_canonical", "unseal")


def test_one_content_key_seals_many_records_each_opening_on_its_own(
    catalog: SchemaCatalog,
) -> None:
    be, private = _key(KeyRole.AGENCY, "BE", XWING)
    content = ContentKey(TOPIC, [be])

    first, second = content.seal(catalog, PAYLOAD), content.seal(catalog, PAYLOAD + b"!")

    a, b = read_sealed(catalog, first), read_sealed(catalog, second)
    assert a.readers == b.readers, "one encapsulation for both"
    assert a.nonce != b.nonce
    assert Opener(Keyring([private]), "BE").open(b, topic=TOPIC) == PAYLOAD + b"!"
    assert Opener(Keyring([private]), "BE").open(a, topic=TOPIC) == PAYLOAD


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_are_refused_with_a_reason_or_parse(data: bytes) -> None:
    catalog = SchemaCatalog.load()
    header = catalog.schema(SEALED_SCHEMA).header
    stage = "parsed"
    try:
        read_sealed(catalog, header + data)
    except RejectedInput as exc:
        stage = exc.stage
    assert stage in {"parsed", "unseal"}


def test_an_opener_holding_several_parties_keys_opens_with_its_own_partys(
    catalog: SchemaCatalog,
) -> None:
    broker, broker_private = _key(KeyRole.BROKER, None)
    auditor, auditor_private = _key(KeyRole.AUDITOR, "NL")
    topic = "ixb.submit.NL"
    sealed = read_sealed(catalog, seal(catalog, PAYLOAD, topic=topic, to=[broker, auditor]))
    both = Keyring([broker_private, auditor_private])  # one home holding every key, as in a demo

    assert Opener(both, "auditor.NL").open(sealed, topic=topic) == PAYLOAD
    assert Opener(both, BROKER_PARTY).open(sealed, topic=topic) == PAYLOAD
    with pytest.raises(VerificationError) as caught:
        Opener(both, "auditor.BE").open(sealed, topic=topic)
    assert caught.value.reason == "seal_unopenable"


def test_a_submission_whose_auditors_copy_was_damaged_does_not_open_for_the_broker_either(
    catalog: SchemaCatalog,
) -> None:
    """Otherwise the broker would accept what the authority can never replay."""
    broker, broker_private = _key(KeyRole.BROKER, None)
    auditor, _ = _key(KeyRole.AUDITOR, "NL")
    topic = "ixb.submit.NL"
    sealed = catalog.decode(
        seal(catalog, PAYLOAD, topic=topic, to=[broker, auditor]), SEALED_SCHEMA
    )
    copy = bytearray(sealed["readers"][1]["sealed_key"])
    copy[-1] ^= 0x01
    sealed["readers"][1]["sealed_key"] = bytes(copy)
    damaged = catalog.encode(SEALED_SCHEMA, sealed)

    opener = Opener(Keyring([broker_private]), BROKER_PARTY)
    assert _refusal(catalog, damaged, opener, topic=topic) == "seal_unopenable"
