"""Ed25519 and hybrid Ed25519 + ML-DSA-65 signatures: what verifies and what is refused."""

from __future__ import annotations

import base64
import datetime as dt
import random
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from broker.errors import ConfigurationError, VerificationError
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRecord, KeyRole
from broker.trust.signatures import (
    ALGORITHMS,
    ED25519,
    ED25519_SIGNATURE_BYTES,
    HYBRID,
    MLDSA65_SIGNATURE_BYTES,
    PUBLIC_KEY_BYTES,
    SigningKey,
    verify_signature,
)

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
MESSAGE = b"ixb-test-v1\x00a message whose exact bytes are signed"


def record_for(key: SigningKey) -> KeyRecord:
    return KeyRecord(
        key_id=key.key_id,
        role=KeyRole.AGENCY,
        nation="NL",
        algorithm=key.algorithm,
        public_key=key.public_key_b64(),
        not_before=NOW,
    )


@pytest.fixture(scope="module")
def hybrid() -> SigningKey:
    return SigningKey.generate(HYBRID, prefix="NL")


@pytest.fixture(scope="module")
def hybrid_signature(hybrid: SigningKey) -> bytes:
    return hybrid.sign(MESSAGE)


def refusal(record: KeyRecord, signature: bytes, message: bytes = MESSAGE) -> str:
    with pytest.raises(VerificationError) as caught:
        verify_signature(record, signature, message)
    assert caught.value.stage == "signature"
    return caught.value.reason


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_signature_verifies_against_the_registered_public_key(algorithm: str) -> None:
    key = SigningKey.generate(algorithm, prefix="NL")

    verify_signature(record_for(key), key.sign(MESSAGE), MESSAGE)

    assert key.key_id.startswith("NL-")
    assert key.algorithm == algorithm


def test_a_hybrid_signature_is_the_ed25519_signature_followed_by_the_ml_dsa_65_one(
    hybrid: SigningKey, hybrid_signature: bytes
) -> None:
    assert len(hybrid_signature) == ED25519_SIGNATURE_BYTES + MLDSA65_SIGNATURE_BYTES
    assert len(base64.b64decode(record_for(hybrid).public_key)) == PUBLIC_KEY_BYTES[HYBRID]
    # The first part is a plain Ed25519 signature under the first 32 bytes of the public key.
    ed25519_public = Ed25519PublicKey.from_public_bytes(
        base64.b64decode(hybrid.public_key_b64())[:32]
    )
    ed25519_public.verify(hybrid_signature[:ED25519_SIGNATURE_BYTES], MESSAGE)


@pytest.mark.parametrize("half", ["ed25519", "ml-dsa-65"])
def test_a_hybrid_signature_with_either_half_tampered_alone_is_refused(
    hybrid: SigningKey, hybrid_signature: bytes, half: str
) -> None:
    tampered = bytearray(hybrid_signature)
    tampered[10 if half == "ed25519" else ED25519_SIGNATURE_BYTES + 10] ^= 0x01

    assert refusal(record_for(hybrid), bytes(tampered)) == "bad_signature"


@pytest.mark.parametrize("half", ["ed25519", "ml-dsa-65"])
def test_a_hybrid_signature_with_either_half_from_another_key_is_refused(
    hybrid: SigningKey, hybrid_signature: bytes, half: str
) -> None:
    """Each half is a valid signature of the message, just not by this key's other half."""
    other = SigningKey.generate(HYBRID, prefix="NL").sign(MESSAGE)
    if half == "ed25519":
        mixed = other[:ED25519_SIGNATURE_BYTES] + hybrid_signature[ED25519_SIGNATURE_BYTES:]
    else:
        mixed = hybrid_signature[:ED25519_SIGNATURE_BYTES] + other[ED25519_SIGNATURE_BYTES:]

    assert refusal(record_for(hybrid), mixed) == "bad_signature"


def test_flipping_sampled_bits_anywhere_in_a_hybrid_signature_is_refused(
    hybrid: SigningKey, hybrid_signature: bytes
) -> None:
    """Every bit of the Ed25519 half and of the seam, and a random sample of the rest."""
    record = record_for(hybrid)
    seam = range(ED25519_SIGNATURE_BYTES - 4, ED25519_SIGNATURE_BYTES + 4)
    last = range(len(hybrid_signature) - 4, len(hybrid_signature))
    bits = [p * 8 + b for p in [*range(ED25519_SIGNATURE_BYTES), *seam, *last] for b in range(8)]
    bits += random.Random(204).sample(range(len(hybrid_signature) * 8), 400)

    accepted = []
    for bit in sorted(set(bits)):
        tampered = bytearray(hybrid_signature)
        tampered[bit // 8] ^= 1 << (bit % 8)
        try:
            verify_signature(record, bytes(tampered), MESSAGE)
        except VerificationError:
            continue
        accepted.append(bit)

    assert accepted == []


def test_a_hybrid_signature_over_other_bytes_is_refused(
    hybrid: SigningKey, hybrid_signature: bytes
) -> None:
    assert refusal(record_for(hybrid), hybrid_signature, MESSAGE + b"!") == "bad_signature"


@pytest.mark.parametrize(
    "length",
    [0, ED25519_SIGNATURE_BYTES, ED25519_SIGNATURE_BYTES + MLDSA65_SIGNATURE_BYTES - 1, 4000],
)
def test_a_hybrid_signature_of_the_wrong_length_is_refused(
    hybrid: SigningKey, hybrid_signature: bytes, length: int
) -> None:
    signature = (hybrid_signature * 2)[:length]

    assert refusal(record_for(hybrid), signature) == "bad_signature"


def test_an_ed25519_signature_is_refused_for_a_key_registered_as_hybrid(
    hybrid: SigningKey,
) -> None:
    """Stripping the ML-DSA half leaves a valid Ed25519 signature: the registry says both."""
    stripped = hybrid.sign(MESSAGE)[:ED25519_SIGNATURE_BYTES]

    assert refusal(record_for(hybrid), stripped) == "bad_signature"


def test_a_key_registered_with_an_unknown_algorithm_is_refused_as_algorithm_mismatch() -> None:
    key = SigningKey.generate(ED25519, prefix="NL")
    record = record_for(key).model_copy(update={"algorithm": "ml-dsa-65"})

    assert refusal(record, key.sign(MESSAGE)) == "algorithm_mismatch"


@pytest.mark.parametrize(
    ("algorithm", "length"), [(ED25519, 31), (ED25519, PUBLIC_KEY_BYTES[HYBRID]), (HYBRID, 32)]
)
def test_a_registry_record_whose_public_key_does_not_fit_its_algorithm_is_invalid(
    algorithm: str, length: int
) -> None:
    with pytest.raises(ValidationError, match="public key has"):
        KeyRecord.model_validate(
            {
                "key_id": "NL-short",
                "role": "agency",
                "nation": "NL",
                "algorithm": algorithm,
                "public_key": base64.b64encode(bytes(length)).decode(),
                "not_before": NOW,
            }
        )


def test_an_unknown_algorithm_cannot_be_generated() -> None:
    with pytest.raises(ConfigurationError, match="unknown signature algorithm"):
        SigningKey.generate("rsa", prefix="NL")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_stored_private_key_loads_back_and_signs_as_the_same_key(
    tmp_path: Path, algorithm: str
) -> None:
    keystore = Keystore(tmp_path / "keys")
    record, _ = keystore.generate(role=KeyRole.AGENCY, nation="NL", algorithm=algorithm, now=NOW)

    loaded = keystore.private_key(record.key_id)

    assert loaded.algorithm == algorithm
    assert loaded.public_key_b64() == record.public_key
    verify_signature(record, loaded.sign(MESSAGE), MESSAGE)


def test_a_hybrid_private_key_is_one_owner_only_file_of_two_pkcs8_pem_blocks(
    tmp_path: Path,
) -> None:
    keystore = Keystore(tmp_path / "keys")
    record, _ = keystore.generate(role=KeyRole.BROKER, nation=None, algorithm=HYBRID, now=NOW)
    path = keystore.directory / f"{record.key_id}.pem"

    text = path.read_text()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert text.count("-----BEGIN PRIVATE KEY-----") == 2
    assert text.count("-----END PRIVATE KEY-----") == 2


def test_a_private_key_file_that_is_not_a_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not readable"):
        SigningKey.from_pem(
            "NL-broken", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )


def test_a_signing_key_shows_no_key_material(hybrid: SigningKey) -> None:
    shown = repr(hybrid)

    assert hybrid.key_id in shown
    assert "Ed25519PrivateKey" not in shown
    assert "MLDSA65PrivateKey" not in shown


@settings(max_examples=25, deadline=None)
@given(message=st.binary(max_size=2048))
def test_any_message_signed_with_a_hybrid_key_verifies_and_a_changed_one_does_not(
    hybrid: SigningKey, message: bytes
) -> None:
    record = record_for(hybrid)
    signature = hybrid.sign(message)

    verify_signature(record, signature, message)
    assert refusal(record, signature, message + b"\x00") == "bad_signature"
