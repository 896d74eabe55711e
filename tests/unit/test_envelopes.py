"""Keys, the partner registry and signed envelopes: what verifies and what is refused."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.errors import ConfigurationError, DecodeError, RejectedInput, VerificationError
from broker.trust.envelopes import (
    ENVELOPE_SCHEMA,
    Envelope,
    Signer,
    open_envelope,
    signing_input,
    verify_envelope,
)
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.registry_file import RegistryFile
from broker.trust.signatures import ED25519, HYBRID, SigningKey
from broker.wire.codec import HEADER_LEN, SchemaCatalog

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def keystore(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "keys")


@pytest.fixture
def nl_key(keystore: Keystore) -> tuple[KeyRecord, SigningKey]:
    return keystore.generate(role=KeyRole.AGENCY, nation="NL", now=NOW)


@pytest.fixture
def payload(catalog: SchemaCatalog) -> bytes:
    """Any single-object message will do; the signature covers its exact bytes."""
    return catalog.encode(
        "ixb.v1.Rejection",
        {
            "reason": "example",
            "detail": "a payload to sign",
            "stage": "decode",
            "retriable": False,
            "source_topic": "ixb.submit.NL",
            "source_partition": 0,
            "source_offset": 42,
            "rejected_at": NOW,
            "original_key": None,
            "original_value": b"\x00\x01\x02",
        },
    )


def key_ids(registry: PartnerRegistry) -> list[str]:
    """The registered agency and broker keys (a saved registry adds its governance key)."""
    return [k.key_id for k in registry.records() if k.role is not KeyRole.GOVERNANCE]


def reseal(catalog: SchemaCatalog, envelope: Envelope, **changes: object) -> Envelope:
    """The envelope with some fields replaced, re-encoded and opened again."""
    record: dict[str, object] = {
        "signer_key_id": envelope.signer_key_id,
        "algorithm": envelope.algorithm,
        "payload": envelope.payload,
        "signature": envelope.signature,
    }
    record.update(changes)
    return open_envelope(catalog, catalog.encode(ENVELOPE_SCHEMA, record))


# --- keys and the registry ----------------------------------------------------------


def test_a_generated_agency_key_is_named_after_its_nation_and_valid_from_just_before_now(
    nl_key: tuple[KeyRecord, SigningKey],
) -> None:
    record, private = nl_key

    assert record.key_id.startswith("NL-")
    assert record.role is KeyRole.AGENCY
    assert record.nation == "NL"
    assert record.algorithm == "ed25519"
    assert record.not_before == NOW - dt.timedelta(minutes=5)
    assert record.not_after is None
    assert record.revoked_at is None
    assert record.valid_at(NOW)
    assert record.public_key == private.public_key_b64()


def test_a_generated_broker_key_names_no_nation(keystore: Keystore) -> None:
    record, _ = keystore.generate(role=KeyRole.BROKER, nation=None, now=NOW)

    assert record.key_id.startswith("broker-")
    assert record.role is KeyRole.BROKER
    assert record.nation is None


@pytest.mark.parametrize(("role", "nation"), [(KeyRole.AGENCY, None), (KeyRole.BROKER, "NL")])
def test_an_agency_key_must_name_a_nation_and_a_broker_key_must_not(
    keystore: Keystore, role: KeyRole, nation: str | None
) -> None:
    with pytest.raises(ConfigurationError):
        keystore.generate(role=role, nation=nation, now=NOW)


def test_a_private_key_file_is_readable_by_its_owner_only(
    keystore: Keystore, nl_key: tuple[KeyRecord, SigningKey]
) -> None:
    record, _ = nl_key

    mode = stat.S_IMODE((keystore.directory / f"{record.key_id}.pem").stat().st_mode)

    assert mode == 0o600


def test_a_stored_private_key_loads_back_as_the_same_key(
    keystore: Keystore, nl_key: tuple[KeyRecord, SigningKey]
) -> None:
    record, private = nl_key

    assert keystore.private_key(record.key_id).public_key_b64() == private.public_key_b64()


def test_a_private_key_the_keystore_does_not_hold_is_a_configuration_error(
    keystore: Keystore,
) -> None:
    with pytest.raises(ConfigurationError, match="no private key"):
        keystore.private_key("NL-000000000000")


def test_a_missing_registry_file_reads_as_an_empty_registry(tmp_path: Path) -> None:
    assert len(RegistryFile(tmp_path / "registry.json").current()) == 0


def test_a_saved_registry_reads_back_with_the_same_keys(
    tmp_path: Path, keystore: Keystore, nl_key: tuple[KeyRecord, SigningKey]
) -> None:
    broker, _ = keystore.generate(role=KeyRole.BROKER, nation=None, now=NOW)
    registry = PartnerRegistry([nl_key[0], broker])
    path = tmp_path / "registry.json"

    RegistryFile(path, keystore=keystore).save(registry)
    loaded = RegistryFile(path).current()

    assert [k for k in loaded.records() if k.role is not KeyRole.GOVERNANCE] == registry.records()
    assert loaded.nations() == frozenset({"NL"})
    assert loaded.key(broker.key_id) == broker


def test_the_registry_file_reloads_when_it_changes(
    tmp_path: Path, keystore: Keystore, nl_key: tuple[KeyRecord, SigningKey]
) -> None:
    path = tmp_path / "registry.json"
    writer, reader = RegistryFile(path, keystore=keystore), RegistryFile(path)
    writer.save(PartnerRegistry([nl_key[0]]))
    assert key_ids(reader.current()) == [nl_key[0].key_id]

    be, _ = keystore.generate(role=KeyRole.AGENCY, nation="BE", now=NOW)
    writer.save(reader.current().with_key(be))

    assert reader.current().nations() == frozenset({"NL", "BE"})


def test_the_registry_file_reloads_a_revocation(
    tmp_path: Path, keystore: Keystore, nl_key: tuple[KeyRecord, SigningKey]
) -> None:
    record, _ = nl_key
    path = tmp_path / "registry.json"
    registry_file = RegistryFile(path, keystore=keystore)
    registry_file.save(PartnerRegistry([record]))
    assert registry_file.current().key(record.key_id).valid_at(NOW)

    revoked = record.model_copy(update={"revoked_at": NOW - dt.timedelta(minutes=1)})
    registry_file.save(PartnerRegistry([revoked]))

    assert not registry_file.current().key(record.key_id).valid_at(NOW)


def test_the_registry_file_reloads_a_same_size_replacement_within_one_clock_tick(
    tmp_path: Path, keystore: Keystore, nl_key: tuple[KeyRecord, SigningKey]
) -> None:
    first, _ = nl_key
    second, _ = keystore.generate(role=KeyRole.AGENCY, nation="NL", now=NOW)
    path = tmp_path / "registry.json"
    writer, reader = RegistryFile(path, keystore=keystore), RegistryFile(path)
    writer.save(PartnerRegistry([first]))
    reader.current()
    stamp = path.stat().st_mtime_ns

    writer.save(PartnerRegistry([second]))
    os.utime(path, ns=(stamp, stamp))  # what a coarse timestamp clock does on its own

    assert key_ids(reader.current()) == [second.key_id]


def test_an_invalid_registry_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text('{"format": 1, "keys": [{"key_id": "x"}]}')

    with pytest.raises(ConfigurationError, match="invalid partner registry"):
        RegistryFile(path).current()


def test_a_key_cannot_be_registered_twice(nl_key: tuple[KeyRecord, SigningKey]) -> None:
    registry = PartnerRegistry([nl_key[0]])

    with pytest.raises(ConfigurationError, match="already registered"):
        registry.with_key(nl_key[0])


def test_a_key_is_valid_from_not_before_until_not_after_and_revocation(
    nl_key: tuple[KeyRecord, SigningKey],
) -> None:
    record = nl_key[0].model_copy(
        update={"not_after": NOW + dt.timedelta(days=30), "revoked_at": NOW + dt.timedelta(days=10)}
    )

    assert not record.valid_at(record.not_before - dt.timedelta(microseconds=1))
    assert record.valid_at(record.not_before)
    assert record.valid_at(NOW + dt.timedelta(days=10) - dt.timedelta(microseconds=1))
    assert not record.valid_at(NOW + dt.timedelta(days=10))
    assert not record.model_copy(update={"revoked_at": None}).valid_at(NOW + dt.timedelta(days=30))


# --- sealing and verifying ------------------------------------------------------------


def test_a_sealed_payload_opens_and_verifies_as_signed_by_its_key(
    catalog: SchemaCatalog, nl_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = nl_key
    sealed = Signer(record.key_id, private, catalog).seal(payload)

    envelope = open_envelope(catalog, sealed)
    signer = verify_envelope(envelope, PartnerRegistry([record]), role=KeyRole.AGENCY, at=NOW)

    assert signer == record
    assert envelope.signer_key_id == record.key_id
    assert envelope.algorithm == "ed25519"
    assert envelope.payload == payload
    assert len(envelope.signature) == 64
    assert catalog.schema_of(sealed).name == ENVELOPE_SCHEMA


def test_a_broker_key_verifies_where_the_broker_role_is_required(
    catalog: SchemaCatalog, keystore: Keystore, payload: bytes
) -> None:
    record, private = keystore.generate(role=KeyRole.BROKER, nation=None, now=NOW)
    sealed = Signer(record.key_id, private, catalog).seal(payload)

    signer = verify_envelope(
        open_envelope(catalog, sealed), PartnerRegistry([record]), role=KeyRole.BROKER, at=NOW
    )

    assert signer.key_id == record.key_id


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=512))
def test_any_payload_bytes_verify_exactly_as_sealed(catalog: SchemaCatalog, data: bytes) -> None:
    private = SigningKey.generate(ED25519, prefix="NL")
    record = KeyRecord.model_validate(
        {
            "key_id": "NL-property",
            "role": "agency",
            "nation": "NL",
            "public_key": private.public_key_b64(),
            "not_before": NOW - dt.timedelta(days=1),
        }
    )
    sealed = Signer(record.key_id, private, catalog).seal(data)

    envelope = open_envelope(catalog, sealed)
    verify_envelope(envelope, PartnerRegistry([record]), role=KeyRole.AGENCY, at=NOW)

    assert envelope.payload == data


def single_bit_flips_accepted(
    catalog: SchemaCatalog, registry: PartnerRegistry, sealed: bytes, positions: range | list[int]
) -> list[tuple[int, int]]:
    """(position, bit) of every single-bit flip that still opens and verifies.

    A flip refused with anything but a DecodeError or VerificationError propagates.
    """
    accepted: list[tuple[int, int]] = []
    for position in positions:
        for bit in range(8):
            tampered = bytearray(sealed)
            tampered[position] ^= 1 << bit
            try:
                envelope = open_envelope(catalog, bytes(tampered))
                verify_envelope(envelope, registry, role=KeyRole.AGENCY, at=NOW)
            except (DecodeError, VerificationError):
                continue
            accepted.append((position, bit))
    return accepted


def test_flipping_any_single_bit_of_a_sealed_envelope_is_refused(
    catalog: SchemaCatalog,
    keystore: Keystore,
    nl_key: tuple[KeyRecord, SigningKey],
    payload: bytes,
) -> None:
    record, private = nl_key
    broker, _ = keystore.generate(role=KeyRole.BROKER, nation=None, now=NOW)
    registry = PartnerRegistry([record, broker])
    sealed = Signer(record.key_id, private, catalog).seal(payload)

    assert single_bit_flips_accepted(catalog, registry, sealed, range(len(sealed))) == []


def test_a_tampered_payload_is_refused_as_bad_signature(
    catalog: SchemaCatalog, nl_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = nl_key
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))
    tampered = bytearray(payload)
    tampered[-1] ^= 0x01

    with pytest.raises(VerificationError) as caught:
        verify_envelope(
            reseal(catalog, envelope, payload=bytes(tampered)),
            PartnerRegistry([record]),
            role=KeyRole.AGENCY,
            at=NOW,
        )

    assert caught.value.reason == "bad_signature"
    assert caught.value.stage == "signature"


def test_a_malformed_envelope_is_refused_at_the_envelope_stage(
    catalog: SchemaCatalog, nl_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = nl_key
    sealed = Signer(record.key_id, private, catalog).seal(payload)

    with pytest.raises(DecodeError) as caught:
        open_envelope(catalog, sealed[:-1])

    assert caught.value.reason == "truncated"
    assert caught.value.stage == "envelope"


def test_a_report_is_not_an_envelope(catalog: SchemaCatalog, payload: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        open_envelope(catalog, payload)

    assert caught.value.reason == "unexpected_schema"
    assert caught.value.stage == "envelope"


def test_a_signer_key_not_in_the_registry_is_refused_as_unknown_key(
    catalog: SchemaCatalog,
    keystore: Keystore,
    nl_key: tuple[KeyRecord, SigningKey],
    payload: bytes,
) -> None:
    record, private = nl_key
    other, _ = keystore.generate(role=KeyRole.AGENCY, nation="BE", now=NOW)
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, PartnerRegistry([other]), role=KeyRole.AGENCY, at=NOW)

    assert caught.value.reason == "unknown_key"
    assert caught.value.stage == "signature"


def test_an_agency_key_is_refused_where_the_broker_role_is_required(
    catalog: SchemaCatalog, nl_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = nl_key
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, PartnerRegistry([record]), role=KeyRole.BROKER, at=NOW)

    assert caught.value.reason == "wrong_key_role"


def test_a_broker_key_is_refused_where_the_agency_role_is_required(
    catalog: SchemaCatalog, keystore: Keystore, payload: bytes
) -> None:
    record, private = keystore.generate(role=KeyRole.BROKER, nation=None, now=NOW)
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, PartnerRegistry([record]), role=KeyRole.AGENCY, at=NOW)

    assert caught.value.reason == "wrong_key_role"


@pytest.mark.parametrize(
    "revoked_at",
    [NOW - dt.timedelta(seconds=1), NOW],
    ids=["revoked_before", "revoked_at_the_instant"],
)
def test_a_key_revoked_by_the_time_of_use_is_refused_as_key_not_valid(
    catalog: SchemaCatalog,
    nl_key: tuple[KeyRecord, SigningKey],
    payload: bytes,
    revoked_at: dt.datetime,
) -> None:
    record, private = nl_key
    revoked = record.model_copy(update={"revoked_at": revoked_at})
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, PartnerRegistry([revoked]), role=KeyRole.AGENCY, at=NOW)

    assert caught.value.reason == "key_not_valid"


def test_a_key_revoked_after_the_time_of_use_still_verifies(
    catalog: SchemaCatalog, nl_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = nl_key
    revoked = record.model_copy(update={"revoked_at": NOW + dt.timedelta(seconds=1)})
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    assert verify_envelope(envelope, PartnerRegistry([revoked]), role=KeyRole.AGENCY, at=NOW)


@pytest.mark.parametrize(
    "at",
    [NOW - dt.timedelta(minutes=6), NOW + dt.timedelta(days=1)],
    ids=["before_not_before", "at_not_after"],
)
def test_a_key_outside_its_validity_is_refused_as_key_not_valid(
    catalog: SchemaCatalog,
    nl_key: tuple[KeyRecord, SigningKey],
    payload: bytes,
    at: dt.datetime,
) -> None:
    record, private = nl_key
    bounded = record.model_copy(update={"not_after": NOW + dt.timedelta(days=1)})
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, PartnerRegistry([bounded]), role=KeyRole.AGENCY, at=at)

    assert caught.value.reason == "key_not_valid"


def test_an_envelope_algorithm_other_than_the_keys_is_refused(
    catalog: SchemaCatalog, nl_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = nl_key
    other_algorithm = record.model_copy(update={"algorithm": "ml-dsa-65"})
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, PartnerRegistry([other_algorithm]), role=KeyRole.AGENCY, at=NOW)

    assert caught.value.reason == "algorithm_mismatch"


def test_a_signature_relabelled_with_another_key_id_is_refused_as_bad_signature(
    catalog: SchemaCatalog,
    keystore: Keystore,
    nl_key: tuple[KeyRecord, SigningKey],
    payload: bytes,
) -> None:
    record, private = nl_key
    other, _ = keystore.generate(role=KeyRole.AGENCY, nation="NL", now=NOW)
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    with pytest.raises(VerificationError) as caught:
        verify_envelope(
            reseal(catalog, envelope, signer_key_id=other.key_id),
            PartnerRegistry([record, other]),
            role=KeyRole.AGENCY,
            at=NOW,
        )

    assert caught.value.reason == "bad_signature"


def test_a_signer_claiming_another_keys_id_is_refused_as_bad_signature(
    catalog: SchemaCatalog,
    keystore: Keystore,
    nl_key: tuple[KeyRecord, SigningKey],
    payload: bytes,
) -> None:
    record, private = nl_key
    other, _ = keystore.generate(role=KeyRole.AGENCY, nation="NL", now=NOW)
    sealed = Signer(other.key_id, private, catalog).seal(payload)

    with pytest.raises(VerificationError) as caught:
        verify_envelope(
            open_envelope(catalog, sealed),
            PartnerRegistry([record, other]),
            role=KeyRole.AGENCY,
            at=NOW,
        )

    assert caught.value.reason == "bad_signature"


def test_a_signature_over_the_bare_payload_is_refused_as_bad_signature(
    catalog: SchemaCatalog, nl_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = nl_key
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))
    undomained = private.sign(payload)
    assert undomained != private.sign(signing_input(record.key_id, payload))

    with pytest.raises(VerificationError) as caught:
        verify_envelope(
            reseal(catalog, envelope, signature=undomained),
            PartnerRegistry([record]),
            role=KeyRole.AGENCY,
            at=NOW,
        )

    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize("length", [0, 63, 65, 128])
def test_a_signature_of_the_wrong_length_is_refused_as_bad_signature(
    catalog: SchemaCatalog,
    nl_key: tuple[KeyRecord, SigningKey],
    payload: bytes,
    length: int,
) -> None:
    record, private = nl_key
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))
    signature = (envelope.signature * 2)[:length]

    with pytest.raises(VerificationError) as caught:
        verify_envelope(
            reseal(catalog, envelope, signature=signature),
            PartnerRegistry([record]),
            role=KeyRole.AGENCY,
            at=NOW,
        )

    assert caught.value.reason == "bad_signature"


def test_the_envelope_header_names_the_envelope_schema(
    catalog: SchemaCatalog, nl_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = nl_key

    sealed = Signer(record.key_id, private, catalog).seal(payload)

    assert sealed[:HEADER_LEN] == catalog.schema(ENVELOPE_SCHEMA).header


def test_every_refusal_of_an_envelope_is_rejected_input() -> None:
    assert issubclass(DecodeError, RejectedInput)
    assert issubclass(VerificationError, RejectedInput)


def test_an_envelope_in_a_non_canonical_encoding_is_refused(catalog: SchemaCatalog) -> None:
    """An over-long varint reads as the same value: the unsigned bytes would vary."""
    envelope = catalog.encode(
        ENVELOPE_SCHEMA,
        {"signer_key_id": "NL-key", "algorithm": "ed25519", "payload": b"", "signature": b""},
    )
    assert envelope[HEADER_LEN] == 0x0C  # the key id's length, 6, as one zig-zag byte
    over_long = envelope[:HEADER_LEN] + b"\x8c\x00" + envelope[HEADER_LEN + 1 :]

    with pytest.raises(DecodeError) as caught:
        open_envelope(catalog, over_long)

    assert caught.value.reason == "non_canonical"
    assert caught.value.stage == "envelope"


# --- hybrid Ed25519 + ML-DSA-65 keys -----------------------------------------------------


@pytest.fixture
def hybrid_key(keystore: Keystore) -> tuple[KeyRecord, SigningKey]:
    return keystore.generate(role=KeyRole.AGENCY, nation="NL", algorithm=HYBRID, now=NOW)


def test_a_payload_sealed_with_a_hybrid_key_verifies_and_names_the_hybrid_algorithm(
    catalog: SchemaCatalog, hybrid_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = hybrid_key
    sealed = Signer(record.key_id, private, catalog).seal(payload)

    envelope = open_envelope(catalog, sealed)
    signer = verify_envelope(envelope, PartnerRegistry([record]), role=KeyRole.AGENCY, at=NOW)

    assert signer == record
    assert record.algorithm == "ed25519+ml-dsa-65"
    assert envelope.algorithm == "ed25519_mldsa65"
    assert len(envelope.signature) == 64 + 3309


def test_a_hybrid_envelope_relabelled_as_ed25519_is_refused_as_algorithm_mismatch(
    catalog: SchemaCatalog, hybrid_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = hybrid_key
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    with pytest.raises(VerificationError) as caught:
        verify_envelope(
            reseal(catalog, envelope, algorithm="ed25519", signature=envelope.signature[:64]),
            PartnerRegistry([record]),
            role=KeyRole.AGENCY,
            at=NOW,
        )

    assert caught.value.reason == "algorithm_mismatch"


def test_a_hybrid_envelope_with_its_ml_dsa_half_stripped_is_refused_as_bad_signature(
    catalog: SchemaCatalog, hybrid_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = hybrid_key
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    with pytest.raises(VerificationError) as caught:
        verify_envelope(
            reseal(catalog, envelope, signature=envelope.signature[:64]),
            PartnerRegistry([record]),
            role=KeyRole.AGENCY,
            at=NOW,
        )

    assert caught.value.reason == "bad_signature"


def test_a_hybrid_key_signing_after_its_revocation_is_refused_and_before_it_verifies(
    catalog: SchemaCatalog, hybrid_key: tuple[KeyRecord, SigningKey], payload: bytes
) -> None:
    record, private = hybrid_key
    revoked = PartnerRegistry([record]).revoking(record.key_id, NOW)
    envelope = open_envelope(catalog, Signer(record.key_id, private, catalog).seal(payload))

    verify_envelope(envelope, revoked, role=KeyRole.AGENCY, at=NOW - dt.timedelta(seconds=1))
    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, revoked, role=KeyRole.AGENCY, at=NOW)

    assert caught.value.reason == "key_not_valid"
