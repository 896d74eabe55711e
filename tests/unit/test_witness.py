"""A witness cosigns a checkpoint only if it extends the last one it cosigned (tlog-witness)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from broker.auditlog.checkpoints import sign_checkpoint
from broker.auditlog.witnessed import WitnessKeys
from broker.parties.witness import SIZE_CONTENT_TYPE
from broker.parties.witness_state import origin_hash
from broker.trust.keystore import Keystore
from broker.trust.note import parse_note
from broker.trust.records import KeyRole
from broker.trust.tlog import add_checkpoint_body, parse_tree_head
from tests.support.witnessing import LOG_ID, ORIGIN, START, Federation, values


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    return Federation(tmp_path)


def cosigned_note(federation: Federation, answer_body: bytes, request: bytes) -> bytes:
    """The checkpoint of ``request`` with the witness's answer appended, as the broker makes it."""
    note = request.split(b"\n\n", 1)[1]
    return note + answer_body


def test_a_first_checkpoint_is_cosigned_and_the_cosignature_verifies_under_the_registry(
    federation: Federation,
) -> None:
    shown = federation.log(values(5))
    request = shown.request(0)

    answer = federation.witnesses["BE"].add_checkpoint(request)

    assert (answer.status, answer.reason) == (200, "cosigned")
    cosigned = parse_note(cosigned_note(federation, answer.body, request))
    cosigners = WitnessKeys(federation.registry).cosigners(cosigned)
    assert set(cosigners) == {"BE"}
    assert cosigners["BE"].key_id == federation.witness_keys["BE"].key_id
    assert cosigners["BE"].key_id.startswith("witness-BE-")


def test_a_checkpoint_extending_the_cosigned_one_by_a_valid_proof_is_cosigned(
    federation: Federation,
) -> None:
    shown = federation.log(values(20))
    assert federation.witnesses["BE"].add_checkpoint(shown.request(0, 7)).status == 200

    answer = federation.witnesses["BE"].add_checkpoint(shown.request(7, 20))

    assert answer.status == 200
    latest = federation.witnesses["BE"].latest(origin_hash(ORIGIN))
    assert latest is not None
    assert parse_tree_head(parse_note(latest).text).size == 20


def test_an_old_size_other_than_the_witnesss_is_a_conflict_naming_the_witnesss_size(
    federation: Federation,
) -> None:
    shown = federation.log(values(20))
    federation.witnesses["BE"].add_checkpoint(shown.request(0, 7))

    answer = federation.witnesses["BE"].add_checkpoint(shown.request(5, 20))

    assert (answer.status, answer.reason) == (409, "old_size_mismatch")
    assert (answer.body, answer.content_type) == (b"7\n", SIZE_CONTENT_TYPE)


def test_a_fork_of_the_cosigned_tree_is_refused_kept_as_evidence_and_changes_nothing(
    federation: Federation, tmp_path: Path
) -> None:
    honest = federation.log(values(10))
    forked = federation.log([*values(9), b"edited"])
    witness = federation.witnesses["BE"]
    assert witness.add_checkpoint(honest.request(0)).status == 200
    before = witness.latest(origin_hash(ORIGIN))

    same_size = witness.add_checkpoint(forked.request(10))
    longer = federation.log([*values(9), b"edited", b"more"])
    extended_fork = witness.add_checkpoint(longer.request(10))

    assert (same_size.status, same_size.reason) == (422, "inconsistent")
    assert extended_fork.status == 422
    assert witness.latest(origin_hash(ORIGIN)) == before
    evidence = sorted((tmp_path / "witness" / "BE" / "evidence").iterdir())
    assert len(evidence) == 2
    assert evidence[0].read_bytes().startswith(f"origin {ORIGIN}\ncosigned 10 ".encode())


def test_a_restarted_witness_still_refuses_a_fork_of_what_it_cosigned_before(
    federation: Federation,
) -> None:
    honest = federation.log(values(10))
    assert federation.witnesses["NL"].add_checkpoint(honest.request(0)).status == 200

    restarted = federation.witness("NL")
    forked = federation.log([b"other", *values(9)[1:], b"x"])

    assert restarted.add_checkpoint(forked.request(10)).status == 422
    assert restarted.add_checkpoint(forked.request(0)).status == 409


def test_a_checkpoint_smaller_than_the_cosigned_one_is_never_cosigned(
    federation: Federation,
) -> None:
    shown = federation.log(values(10))
    witness = federation.witnesses["BE"]
    witness.add_checkpoint(shown.request(0))

    from_zero = witness.add_checkpoint(shown.request(0, 6))
    claiming_its_size = witness.add_checkpoint(shown.request(10, 6))

    assert from_zero.status == 409
    assert (claiming_its_size.status, claiming_its_size.reason) == (400, "malformed_request")


def test_a_checkpoint_of_an_unknown_log_is_not_found(federation: Federation) -> None:
    shown = federation.log(values(3))
    checkpoint = sign_checkpoint(
        federation.broker, LOG_ID, 3, shown.tree.root(), START, origin_prefix="elsewhere.example"
    )

    answer = federation.witnesses["BE"].add_checkpoint(add_checkpoint_body(0, [], checkpoint.note))

    assert (answer.status, answer.reason) == (404, "unknown_origin")


def test_a_checkpoint_signed_by_a_key_not_in_the_registry_is_forbidden(
    federation: Federation, tmp_path: Path
) -> None:
    _, stranger = Keystore(tmp_path / "other").generate(role=KeyRole.BROKER, nation=None)
    shown = federation.log(values(3))
    forged = sign_checkpoint(stranger, LOG_ID, 3, shown.tree.root(), START)

    answer = federation.witnesses["BE"].add_checkpoint(add_checkpoint_body(0, [], forged.note))

    assert (answer.status, answer.reason) == (403, "checkpoint_signature")


def test_a_checkpoint_with_a_broken_log_signature_is_forbidden(federation: Federation) -> None:
    note = federation.log(values(3)).checkpoint().note
    name, encoded = note.rstrip(b"\n").rsplit(b" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    broken = name + b" " + base64.b64encode(bytes(raw)) + b"\n"

    answer = federation.witnesses["BE"].add_checkpoint(add_checkpoint_body(0, [], broken))

    assert answer.status == 403


def test_a_malformed_request_is_a_bad_request(federation: Federation) -> None:
    answer = federation.witnesses["BE"].add_checkpoint(b"old 0\nnot a note\n")

    assert (answer.status, answer.reason) == (400, "malformed_request")


def test_the_witness_state_holds_the_log_signature_and_the_cosignature_only(
    federation: Federation, tmp_path: Path
) -> None:
    shown = federation.log(values(4))
    nl_answer = federation.witnesses["NL"].add_checkpoint(shown.request(0))
    with_nl = shown.checkpoint().note + nl_answer.body  # the broker passes NL's line along

    federation.witnesses["BE"].add_checkpoint(add_checkpoint_body(0, [], with_nl))

    state = json.loads((tmp_path / "witness" / "BE" / f"{origin_hash(ORIGIN)}.json").read_bytes())
    kept = parse_note(state["checkpoint"].encode())
    assert [s.name for s in kept.signatures] == [ORIGIN, federation.witness_keys["BE"].key_id]
    assert state["size"] == 4
