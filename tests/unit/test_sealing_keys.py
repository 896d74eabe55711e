"""Sealing keys in the partner registry: beside signing keys, governed, rotated, revoked alike."""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner, Result

from broker.cli.keys import keys_app
from broker.errors import ConfigurationError, VerificationError
from broker.trust.governance import parse_document
from broker.trust.key_checks import check_key
from broker.trust.keystore import Keystore
from broker.trust.records import KeyRecord, KeyRole, KeyUse, PartnerRegistry
from broker.trust.registry_file import RegistryFile
from broker.trust.sealing.keys import X25519, XWING, DecryptionKey
from broker.trust.sealing.parties import newest_sealing_key, submission_recipients

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
runner = CliRunner()


@pytest.fixture
def keystore(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "home" / "keys")


def _registry(keystore: Keystore, *records: KeyRecord) -> PartnerRegistry:
    return PartnerRegistry(records)


@pytest.mark.parametrize(("algorithm", "public_bytes"), [(X25519, 32), (XWING, 1184 + 32)])
def test_a_sealing_key_is_registered_with_its_use_told_by_its_algorithm(
    keystore: Keystore, algorithm: str, public_bytes: int
) -> None:
    record, private = keystore.generate_sealing(
        role=KeyRole.AGENCY, nation="BE", algorithm=algorithm, now=NOW
    )

    assert record.use is KeyUse.SEALING
    assert record.algorithm == algorithm
    assert len(base64.b64decode(record.public_key)) == public_bytes
    assert record.public_key == private.public_key_b64()
    assert record.key_id.startswith("BE-seal-")


@pytest.mark.parametrize("algorithm", [X25519, XWING])
def test_a_private_sealing_key_reads_back_from_its_file_and_shows_no_material(
    keystore: Keystore, algorithm: str
) -> None:
    record, _ = keystore.generate_sealing(role=KeyRole.BROKER, nation=None, algorithm=algorithm)
    path = keystore.directory / f"{record.key_id}.pem"

    again = Keystore(keystore.directory).decryption_key(record.key_id)

    assert again is not None
    assert again.algorithm == algorithm
    assert again.public_key_b64() == record.public_key
    assert path.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE" not in repr(again)
    assert DecryptionKey.from_pem(record.key_id, path.read_bytes()).algorithm == algorithm


def test_a_keystore_without_the_key_says_so_rather_than_failing(keystore: Keystore) -> None:
    assert keystore.decryption_key("BE-seal-000000000000") is None


def test_the_hybrid_public_key_is_ml_kem_768_then_x25519_as_x_wing_encodes_it(
    keystore: Keystore,
) -> None:
    _, private = keystore.generate_sealing(role=KeyRole.AGENCY, nation="BE", algorithm=XWING)
    raw = base64.b64decode(private.public_key_b64())

    x25519_part = private._x25519.public_key().public_bytes_raw()
    assert private._mlkem768 is not None
    mlkem_part = private._mlkem768.public_key().public_bytes_raw()

    assert raw == mlkem_part + x25519_part


@pytest.mark.parametrize(
    ("role", "nation", "algorithm", "problem"),
    [
        (KeyRole.GOVERNANCE, None, X25519, "cannot be sealing keys"),
        (KeyRole.AUDITOR, "BE", "ed25519", "they are sealing keys"),
        (KeyRole.AUDITOR, None, X25519, "name a nation"),
        (KeyRole.BROKER, "BE", X25519, "name a nation"),
    ],
)
def test_a_key_whose_role_cannot_have_its_use_is_refused(
    keystore: Keystore, role: KeyRole, nation: str | None, algorithm: str, problem: str
) -> None:
    good, _ = keystore.generate_sealing(role=KeyRole.BROKER, nation=None, algorithm=X25519)
    signing, _ = keystore.generate(role=KeyRole.BROKER, nation=None)
    public = good.public_key if algorithm == X25519 else signing.public_key
    with pytest.raises(ValidationError, match=problem):
        KeyRecord(
            key_id="some-key-id",
            role=role,
            nation=nation,
            algorithm=algorithm,
            public_key=public,
            not_before=NOW,
        )


def test_a_sealing_public_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValidationError, match="x25519 public key has 32 bytes, not 31"):
        KeyRecord(
            key_id="BE-seal-short",
            role=KeyRole.AGENCY,
            nation="BE",
            algorithm=X25519,
            public_key=base64.b64encode(os.urandom(31)).decode(),
            not_before=NOW,
        )


def test_a_signer_is_never_handed_a_sealing_key_however_new(keystore: Keystore) -> None:
    signing, _ = keystore.generate(role=KeyRole.AGENCY, nation="BE", now=NOW)
    sealing, _ = keystore.generate_sealing(
        role=KeyRole.AGENCY, nation="BE", now=NOW + dt.timedelta(hours=1)
    )
    registry = _registry(keystore, signing, sealing)

    chosen = keystore.newest_usable(
        registry, role=KeyRole.AGENCY, nation="BE", now=NOW + dt.timedelta(hours=2)
    )

    assert chosen.key_id == signing.key_id


def test_a_sealing_key_verifies_no_signature(keystore: Keystore) -> None:
    sealing, _ = keystore.generate_sealing(role=KeyRole.BROKER, nation=None, now=NOW)

    with pytest.raises(VerificationError) as caught:
        check_key(
            PartnerRegistry([sealing]), sealing.key_id, role=KeyRole.BROKER, algorithm=None, at=NOW
        )

    assert caught.value.reason == "wrong_key_use"


def test_rotating_a_sealing_key_leaves_the_signing_key_as_it_was(keystore: Keystore) -> None:
    signing, _ = keystore.generate(role=KeyRole.AGENCY, nation="BE", now=NOW)
    sealing, _ = keystore.generate_sealing(role=KeyRole.AGENCY, nation="BE", now=NOW)
    later = NOW + dt.timedelta(days=1)

    rotated, new = keystore.rotate(
        _registry(keystore, signing, sealing),
        role=KeyRole.AGENCY,
        nation="BE",
        use=KeyUse.SEALING,
        algorithm=XWING,
        overlap=dt.timedelta(hours=1),
        now=later,
    )

    assert new.use is KeyUse.SEALING
    assert new.algorithm == XWING
    assert rotated.key(signing.key_id).not_after is None
    assert rotated.key(sealing.key_id).not_after == later + dt.timedelta(hours=1)
    during = newest_sealing_key(
        rotated, role=KeyRole.AGENCY, nation="BE", at=later + dt.timedelta(minutes=30)
    )
    assert during.key_id == new.key_id, "senders seal to the new key at once"
    assert rotated.key(sealing.key_id).valid_at(later + dt.timedelta(minutes=30))
    assert not rotated.key(sealing.key_id).valid_at(later + dt.timedelta(hours=1))


def test_a_revoked_sealing_key_is_sealed_to_no_more(keystore: Keystore) -> None:
    sealing, _ = keystore.generate_sealing(role=KeyRole.BROKER, nation=None, now=NOW)
    registry = PartnerRegistry([sealing]).revoking(sealing.key_id, NOW + dt.timedelta(hours=1))

    assert newest_sealing_key(registry, role=KeyRole.BROKER, nation=None, at=NOW).key_id == (
        sealing.key_id
    )
    with pytest.raises(ConfigurationError, match="ixb keys generate --broker --sealing"):
        newest_sealing_key(
            registry, role=KeyRole.BROKER, nation=None, at=NOW + dt.timedelta(hours=1)
        )


def test_a_submission_is_sealed_to_the_broker_and_the_origins_own_auditor_only(
    keystore: Keystore,
) -> None:
    broker, _ = keystore.generate_sealing(role=KeyRole.BROKER, nation=None, now=NOW)
    nl_auditor, _ = keystore.generate_sealing(role=KeyRole.AUDITOR, nation="NL", now=NOW)
    be_auditor, _ = keystore.generate_sealing(role=KeyRole.AUDITOR, nation="BE", now=NOW)
    nl_agency, _ = keystore.generate_sealing(role=KeyRole.AGENCY, nation="NL", now=NOW)
    registry = PartnerRegistry([broker, nl_auditor, be_auditor, nl_agency])

    assert [k.key_id for k in submission_recipients(registry, "NL", NOW)] == [
        broker.key_id,
        nl_auditor.key_id,
    ]
    assert [k.key_id for k in submission_recipients(registry, "DE", NOW)] == [broker.key_id]


def test_an_auditors_key_makes_no_partner_nation(keystore: Keystore) -> None:
    auditor, _ = keystore.generate_sealing(role=KeyRole.AUDITOR, nation="FR", now=NOW)
    agency, _ = keystore.generate(role=KeyRole.AGENCY, nation="NL", now=NOW)

    assert PartnerRegistry([auditor, agency]).nations() == {"NL"}


# --- `ixb keys` ---------------------------------------------------------------


def _ixb(home: Path, *args: str) -> Result:
    return runner.invoke(keys_app, list(args), env={"IXB_HOME": str(home), "COLUMNS": "300"})


def test_the_cli_registers_sealing_keys_under_the_registrys_governance(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args in (
        ("--nation", "BE"),
        ("--nation", "BE", "--sealing", "--algorithm", XWING),
        ("--broker", "--sealing"),
        ("--auditor", "BE"),  # an auditor's key is a sealing key
    ):
        result = _ixb(home, "generate", *args)
        assert result.exit_code == 0, result.output

    document = parse_document((home / "registry.json").read_bytes())
    kinds = sorted((k.role.value, k.nation or "-", k.use.value, k.algorithm) for k in document.keys)
    assert kinds == [
        ("agency", "BE", "sealing", XWING),
        ("agency", "BE", "signing", "ed25519"),
        ("auditor", "BE", "sealing", X25519),
        ("broker", "-", "sealing", X25519),
        ("governance", "-", "signing", "ed25519"),
    ]
    assert document.version == 4
    assert RegistryFile(home / "registry.json").current().key(document.keys[0].key_id)


def test_the_cli_refuses_an_algorithm_of_the_other_use(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = _ixb(home, "generate", "--nation", "BE", "--sealing", "--algorithm", "ed25519")

    assert result.exit_code == 2
    assert "not a sealing algorithm" in result.output
    assert not (tmp_path / "home" / "registry.json").exists()


def test_the_cli_rotates_a_sealing_key_with_an_overlap(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _ixb(home, "generate", "--nation", "BE", "--sealing").exit_code == 0

    result = _ixb(home, "rotate", "--nation", "BE", "--sealing", "--overlap", "2h")

    assert result.exit_code == 0, result.output
    assert "may be sealed to for another 2h" in result.output
    records = RegistryFile(home / "registry.json").current().records()
    sealing = [k for k in records if k.use is KeyUse.SEALING]
    assert sorted(k.not_after is None for k in sealing) == [False, True]
