"""The signed, versioned partner registry: who may change it, and what a reader refuses."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broker.errors import ConfigurationError, RegistryRefused
from broker.trust.governance import (
    RegistryDocument,
    content_hash,
    document_bytes,
    parse_document,
    sign_document,
)
from broker.trust.keystore import Keystore
from broker.trust.records import GovernanceRule, KeyRecord, KeyRole, PartnerRegistry
from broker.trust.registry_file import RegistryFile
from broker.trust.signatures import HYBRID

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "registry.json"


@pytest.fixture
def keystore(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "home" / "keys")


@pytest.fixture
def nl(keystore: Keystore) -> KeyRecord:
    return keystore.generate(role=KeyRole.AGENCY, nation="NL", now=NOW)[0]


def refusal_reason(path: Path) -> str:
    """What a reader that never accepted anything says of the file (a fresh process)."""
    with pytest.raises(RegistryRefused) as caught:
        RegistryFile(path).current()
    return caught.value.reason


def governors(count: int, tmp_path: Path) -> list[tuple[Keystore, KeyRecord]]:
    """``count`` governance keys, each held in its own keystore (its own holder)."""
    held = []
    for n in range(count):
        keystore = Keystore(tmp_path / f"governor-{n}")
        held.append((keystore, keystore.generate(role=KeyRole.GOVERNANCE, nation=None)[0]))
    return held


def two_of_three(
    tmp_path: Path, path: Path, nl: KeyRecord
) -> tuple[list[tuple[Keystore, KeyRecord]], RegistryDocument]:
    """A first version governed 2-of-3, signed by governors 0 and 1, installed at ``path``."""
    held = governors(3, tmp_path)
    rule = GovernanceRule(threshold=2, key_ids=tuple(g.key_id for _, g in held))
    registry = PartnerRegistry([nl, *(g for _, g in held)], governance=rule)
    document = RegistryFile(path).propose(registry)
    for keystore, governor in held[:2]:
        document = sign_document(document, [keystore.private_key(governor.key_id)])
    RegistryFile(path).install(document)
    return held, document


# --- writing ----------------------------------------------------------------------------


def test_saving_a_fresh_registry_creates_a_one_of_one_governance_key_and_signs_with_it(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    RegistryFile(path, keystore=keystore).save(PartnerRegistry([nl]))

    document = parse_document(path.read_bytes())
    [governor] = [k for k in document.keys if k.role is KeyRole.GOVERNANCE]
    assert document.format == 2
    assert document.version == 1
    assert document.governance == GovernanceRule(threshold=1, key_ids=(governor.key_id,))
    assert [s.key_id for s in document.signatures] == [governor.key_id]
    assert keystore.holds(governor.key_id)


def test_every_save_is_the_next_version_and_keeps_the_governance(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    registry_file = RegistryFile(path, keystore=keystore)
    registry_file.save(PartnerRegistry([nl]))
    first = parse_document(path.read_bytes())
    be, _ = keystore.generate(role=KeyRole.AGENCY, nation="BE", now=NOW)

    registry_file.save(PartnerRegistry([nl, be]))  # built without the governance key
    second = parse_document(path.read_bytes())

    assert second.version == first.version + 1
    assert second.governance == first.governance
    assert RegistryFile(path).current().nations() == frozenset({"NL", "BE"})


def test_saving_without_a_keystore_when_there_is_no_governance_is_a_configuration_error(
    path: Path, nl: KeyRecord
) -> None:
    with pytest.raises(ConfigurationError, match="no governance key"):
        RegistryFile(path).save(PartnerRegistry([nl]))


def test_saving_with_fewer_governance_keys_than_the_threshold_says_how_many_are_needed(
    tmp_path: Path, path: Path, nl: KeyRecord
) -> None:
    held, _ = two_of_three(tmp_path, path, nl)
    keystore, _ = held[0]

    with pytest.raises(ConfigurationError, match=r"1 of the 2 signature\(s\)"):
        RegistryFile(path, keystore=keystore).save(RegistryFile(path).current())


def test_a_registry_file_holds_no_private_key_material(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    RegistryFile(path, keystore=keystore).save(PartnerRegistry([nl]))
    written = path.read_text() + path.with_name("registry.json.state.json").read_text()

    for pem in keystore.directory.glob("*.pem"):
        assert "PRIVATE KEY" not in written
        assert pem.read_text().splitlines()[1] not in written


# --- rollback and forks -----------------------------------------------------------------


def test_a_registry_rolled_back_to_an_older_version_is_refused_even_after_a_restart(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    writer = RegistryFile(path, keystore=keystore)
    writer.save(PartnerRegistry([nl]))
    old = path.read_bytes()
    writer.save(writer.current().revoking(nl.key_id, NOW))

    path.write_bytes(old)  # a validly signed, older version

    assert refusal_reason(path) == "registry_rollback"


def test_a_lower_version_is_refused_even_when_signed_again_with_a_later_date(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    writer = RegistryFile(path, keystore=keystore)
    writer.save(PartnerRegistry([nl]))
    old = parse_document(path.read_bytes())
    writer.save(writer.current().revoking(nl.key_id, NOW))
    redated = old.model_copy(update={"issued_at": utc_now(), "signatures": ()})

    path.write_bytes(
        document_bytes(writer.sign(redated))  # by the real governance key, dated after v2
    )

    assert refusal_reason(path) == "registry_rollback"


def test_a_reader_that_accepted_a_newer_version_keeps_it_and_logs_the_refused_rollback(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    writer = RegistryFile(path, keystore=keystore)
    writer.save(PartnerRegistry([nl]))
    old = path.read_bytes()
    writer.save(writer.current().revoking(nl.key_id, NOW))
    reader = RegistryFile(path)
    assert reader.current().key(nl.key_id).revoked_at == NOW

    path.write_bytes(old)
    with capture_logs() as logs:
        kept = reader.current()

    assert kept.key(nl.key_id).revoked_at == NOW
    assert kept.version == 2
    assert logs == [
        {
            "event": "registry_refused",
            "log_level": "warning",
            "reason": "registry_rollback",
            "path": str(path),
        }
    ]


def test_the_refusal_survives_the_state_file_being_the_only_memory(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    """A fresh RegistryFile has no cache: only the persisted state knows version 2 was seen."""
    RegistryFile(path, keystore=keystore).save(PartnerRegistry([nl]))
    old = path.read_bytes()
    RegistryFile(path, keystore=keystore).save(PartnerRegistry([nl]))
    path.write_bytes(old)

    state = json.loads(path.with_name("registry.json.state.json").read_text())

    assert state["version"] == 2
    assert refusal_reason(path) == "registry_rollback"


def test_the_same_version_with_other_content_is_refused_as_a_fork(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    registry_file = RegistryFile(path, keystore=keystore)
    registry_file.save(PartnerRegistry([nl]))
    accepted = parse_document(path.read_bytes())
    [governor] = accepted.governance.key_ids
    be, _ = keystore.generate(role=KeyRole.AGENCY, nation="BE", now=NOW)
    fork = accepted.model_copy(update={"keys": (*accepted.keys, be), "signatures": ()})
    fork = sign_document(fork, [keystore.private_key(governor)])  # by the real governance key

    path.write_bytes(document_bytes(fork))

    assert content_hash(fork) != content_hash(accepted)
    assert refusal_reason(path) == "registry_fork"


def test_the_same_version_and_content_read_again_is_accepted(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    RegistryFile(path, keystore=keystore).save(PartnerRegistry([nl]))
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # other bytes, same document

    assert nl.key_id in RegistryFile(path).current()


def test_a_newer_version_dated_before_the_accepted_one_is_refused(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    registry_file = RegistryFile(path, keystore=keystore)
    registry_file.save(PartnerRegistry([nl]))
    backdated = registry_file.sign(
        registry_file.propose(registry_file.current(), now=utc_now() - dt.timedelta(days=1))
    )

    with pytest.raises(RegistryRefused) as caught:
        registry_file.install(backdated)

    assert caught.value.reason == "registry_rollback"


def test_a_version_dated_in_the_future_is_refused(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    registry_file = RegistryFile(path, keystore=keystore)
    ahead = registry_file.sign(
        registry_file.propose(PartnerRegistry([nl]), now=utc_now() + dt.timedelta(hours=1))
    )

    with pytest.raises(RegistryRefused) as caught:
        registry_file.install(ahead)

    assert caught.value.reason == "registry_from_the_future"


# --- governance -------------------------------------------------------------------------


def test_a_governance_swap_signed_only_by_the_new_keys_is_refused(
    tmp_path: Path, path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    RegistryFile(path, keystore=keystore).save(PartnerRegistry([nl]))
    thief = Keystore(tmp_path / "thief")
    stolen_rule, _ = thief.generate(role=KeyRole.GOVERNANCE, nation=None)
    attacker = thief.generate(role=KeyRole.AGENCY, nation="NL")[0]
    accepted = parse_document(path.read_bytes())
    swapped = RegistryDocument(
        version=accepted.version + 1,
        issued_at=utc_now(),
        governance=GovernanceRule(threshold=1, key_ids=(stolen_rule.key_id,)),
        keys=(attacker, stolen_rule),
    )
    path.write_bytes(
        document_bytes(sign_document(swapped, [thief.private_key(stolen_rule.key_id)]))
    )

    assert refusal_reason(path) == "registry_under_signed"


def test_a_governance_change_signed_by_the_old_and_the_new_keys_is_accepted(
    path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    registry_file = RegistryFile(path, keystore=keystore)
    registry_file.save(PartnerRegistry([nl]))
    [old] = parse_document(path.read_bytes()).governance.key_ids
    new, _ = keystore.generate(role=KeyRole.GOVERNANCE, nation=None)
    registry = registry_file.current().with_key(new)

    registry_file.save(registry.with_governance(GovernanceRule(threshold=1, key_ids=(new.key_id,))))
    document = parse_document(path.read_bytes())

    assert sorted(s.key_id for s in document.signatures) == sorted([old, new.key_id])
    assert RegistryFile(path).current().governance == GovernanceRule(
        threshold=1, key_ids=(new.key_id,)
    )


def test_after_a_governance_change_only_the_new_governance_can_sign(
    tmp_path: Path, path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    registry_file = RegistryFile(path, keystore=keystore)
    registry_file.save(PartnerRegistry([nl]))
    [old] = parse_document(path.read_bytes()).governance.key_ids
    successor = Keystore(tmp_path / "successor")
    new, _ = successor.generate(role=KeyRole.GOVERNANCE, nation=None)
    handover = registry_file.propose(
        registry_file.current()
        .with_key(new)
        .with_governance(GovernanceRule(threshold=1, key_ids=(new.key_id,)))
    )
    handover = sign_document(
        handover, [keystore.private_key(old), successor.private_key(new.key_id)]
    )
    registry_file.install(handover)

    be, _ = keystore.generate(role=KeyRole.AGENCY, nation="BE")
    with pytest.raises(ConfigurationError, match="does not hold enough governance keys"):
        registry_file.save(registry_file.current().with_key(be))  # holds only the old key


def test_two_of_three_governance_refuses_one_signature_and_accepts_two(
    tmp_path: Path, path: Path, nl: KeyRecord
) -> None:
    held, _ = two_of_three(tmp_path, path, nl)
    (first, g0), (second, g1), _ = held
    registry_file = RegistryFile(path)
    proposal = registry_file.propose(registry_file.current().revoking(nl.key_id, NOW))
    once = sign_document(proposal, [first.private_key(g0.key_id)])

    with pytest.raises(RegistryRefused) as caught:
        registry_file.install(once)
    assert caught.value.reason == "registry_under_signed"
    assert RegistryFile(path).current().version == 1

    twice = sign_document(once, [second.private_key(g1.key_id)])
    registry_file.install(twice)

    assert RegistryFile(path).current().key(nl.key_id).revoked_at == NOW
    assert RegistryFile(path).current().version == 2


def test_a_file_with_fewer_signatures_than_the_threshold_is_refused_by_a_reader(
    tmp_path: Path, path: Path, nl: KeyRecord
) -> None:
    held, _ = two_of_three(tmp_path, path, nl)
    (first, g0), *_ = held
    proposal = RegistryFile(path).propose(RegistryFile(path).current())

    path.write_bytes(document_bytes(sign_document(proposal, [first.private_key(g0.key_id)])))

    assert refusal_reason(path) == "registry_under_signed"


def test_one_key_listed_under_two_ids_counts_as_one_signature(
    tmp_path: Path, path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    governor, signing = keystore.generate(role=KeyRole.GOVERNANCE, nation=None)
    alias = governor.model_copy(update={"key_id": "governance-alias"})
    rule = GovernanceRule(threshold=2, key_ids=(governor.key_id, alias.key_id))
    document = RegistryFile(path).propose(PartnerRegistry([nl, governor, alias], governance=rule))
    signed = sign_document(document, [signing, signing.with_key_id(alias.key_id)])

    with pytest.raises(RegistryRefused) as caught:
        RegistryFile(path).install(signed)

    assert caught.value.reason == "registry_under_signed"


def test_a_registry_altered_after_signing_is_refused(
    tmp_path: Path, path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    RegistryFile(path, keystore=keystore).save(PartnerRegistry([nl]))
    thief = Keystore(tmp_path / "thief").generate(role=KeyRole.AGENCY, nation="NL")[0]
    document = json.loads(path.read_text())
    document["version"] = 2
    [entry] = [k for k in document["keys"] if k["key_id"] == nl.key_id]
    entry["public_key"] = thief.public_key

    path.write_text(json.dumps(document))

    assert refusal_reason(path) == "registry_under_signed"


def test_a_governance_key_revoked_before_a_version_is_dated_does_not_count(
    tmp_path: Path, path: Path, nl: KeyRecord
) -> None:
    (first, g0), (second, g1), (third, g2) = governors(3, tmp_path)
    revoked = g1.model_copy(update={"revoked_at": utc_now() - dt.timedelta(seconds=1)})
    rule = GovernanceRule(threshold=2, key_ids=(g0.key_id, g1.key_id, g2.key_id))
    document = RegistryFile(path).propose(PartnerRegistry([nl, g0, revoked, g2], governance=rule))
    document = sign_document(
        document, [first.private_key(g0.key_id), second.private_key(g1.key_id)]
    )

    with pytest.raises(RegistryRefused) as caught:
        RegistryFile(path).install(document)
    assert caught.value.reason == "registry_under_signed"

    document = sign_document(document, [third.private_key(g2.key_id)])
    assert RegistryFile(path).install(document).version == 1


def test_revoking_a_governance_key_takes_it_out_of_the_governance_rule(
    tmp_path: Path, path: Path, nl: KeyRecord
) -> None:
    held, _ = two_of_three(tmp_path, path, nl)
    (first, g0), (_, g1), (third, g2) = held
    revoke = RegistryFile(path).propose(RegistryFile(path).current().revoking(g1.key_id, NOW))
    revoke = sign_document(revoke, [first.private_key(g0.key_id), third.private_key(g2.key_id)])

    registry = RegistryFile(path).install(revoke)

    assert registry.governance == GovernanceRule(threshold=2, key_ids=(g0.key_id, g2.key_id))
    assert registry.key(g1.key_id).revoked_at == NOW


def test_a_registry_revoking_a_governance_key_below_the_threshold_cannot_be_made(
    tmp_path: Path, path: Path, nl: KeyRecord
) -> None:
    held, _ = two_of_three(tmp_path, path, nl)
    registry = RegistryFile(path).current().revoking(held[0][1].key_id, NOW)

    with pytest.raises(ConfigurationError, match="threshold of 2"):
        registry.revoking(held[1][1].key_id, NOW)


# --- first use and trust anchors --------------------------------------------------------


def test_a_first_registry_without_an_anchor_is_trusted_on_first_use_with_a_warning(
    tmp_path: Path, path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    RegistryFile(path, keystore=keystore).save(PartnerRegistry([nl]))
    elsewhere = tmp_path / "partner" / "registry.json"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(path.read_bytes())

    with capture_logs() as logs:
        registry = RegistryFile(elsewhere).current()

    assert nl.key_id in registry
    assert [e["event"] for e in logs] == ["registry_trust_on_first_use"]


def test_a_first_registry_not_signed_by_the_pinned_anchor_is_refused(
    tmp_path: Path, path: Path, keystore: Keystore, nl: KeyRecord
) -> None:
    RegistryFile(path, keystore=keystore).save(PartnerRegistry([nl]))
    pinned = RegistryFile(path).document()
    other_home = tmp_path / "other"
    RegistryFile(other_home / "registry.json", keystore=Keystore(other_home / "keys")).save(
        PartnerRegistry([nl])
    )
    partner = tmp_path / "partner" / "registry.json"
    partner.parent.mkdir()
    assert pinned is not None
    partner.with_name("registry.json.anchor.json").write_text(pinned.trust().model_dump_json())

    partner.write_bytes((other_home / "registry.json").read_bytes())
    assert refusal_reason(partner) == "registry_under_signed"

    partner.write_bytes(path.read_bytes())
    with capture_logs() as logs:
        assert nl.key_id in RegistryFile(partner).current()
    assert logs == []


def test_an_unsigned_format_1_registry_is_refused(path: Path, nl: KeyRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "keys": [nl.model_dump(mode="json")]}))

    assert refusal_reason(path) == "registry_unsigned"


# --- rotation and revocation ------------------------------------------------------------


def test_a_revoked_key_is_valid_before_the_revocation_time_and_not_from_it(
    nl: KeyRecord,
) -> None:
    revoked = PartnerRegistry([nl]).revoking(nl.key_id, NOW).key(nl.key_id)

    assert revoked.valid_at(NOW - dt.timedelta(microseconds=1))
    assert not revoked.valid_at(NOW)
    assert not revoked.valid_at(NOW + dt.timedelta(days=1))


def test_revoking_again_can_only_move_the_revocation_earlier(nl: KeyRecord) -> None:
    registry = PartnerRegistry([nl]).revoking(nl.key_id, NOW)

    later = registry.revoking(nl.key_id, NOW + dt.timedelta(days=1)).key(nl.key_id)
    earlier = registry.revoking(nl.key_id, NOW - dt.timedelta(days=1)).key(nl.key_id)

    assert later.revoked_at == NOW
    assert earlier.revoked_at == NOW - dt.timedelta(days=1)


def test_after_a_rotation_both_keys_verify_during_the_overlap_and_the_new_one_signs(
    keystore: Keystore, nl: KeyRecord
) -> None:
    registry, new = keystore.rotate(
        PartnerRegistry([nl]),
        role=KeyRole.AGENCY,
        nation="NL",
        overlap=dt.timedelta(hours=24),
        now=NOW,
    )
    old = registry.key(nl.key_id)

    assert old.not_after == NOW + dt.timedelta(hours=24)
    assert old.valid_at(NOW + dt.timedelta(hours=23))
    assert new.valid_at(NOW + dt.timedelta(hours=23))
    assert not old.valid_at(NOW + dt.timedelta(hours=24))
    assert new.valid_at(NOW + dt.timedelta(hours=24))
    assert keystore.newest_usable(registry, role=KeyRole.AGENCY, nation="NL", now=NOW) == new


def test_a_rotation_keeps_the_algorithm_unless_told_otherwise(
    keystore: Keystore, nl: KeyRecord
) -> None:
    registry, same = keystore.rotate(
        PartnerRegistry([nl]), role=KeyRole.AGENCY, nation="NL", now=NOW
    )
    _, hybrid = keystore.rotate(
        registry, role=KeyRole.AGENCY, nation="NL", algorithm=HYBRID, now=NOW
    )

    assert same.algorithm == "ed25519"
    assert hybrid.algorithm == HYBRID


def test_rotating_without_a_valid_key_is_a_configuration_error(
    keystore: Keystore, nl: KeyRecord
) -> None:
    revoked = PartnerRegistry([nl]).revoking(nl.key_id, NOW)

    with pytest.raises(ConfigurationError, match="no valid agency key"):
        keystore.rotate(revoked, role=KeyRole.AGENCY, nation="NL", now=NOW)
