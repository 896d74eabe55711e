"""Receipts verify offline from the checkpoint alone, and fail if any byte changes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json

import pytest

from broker.auditlog.checkpoints import Checkpoint, sign_checkpoint
from broker.auditlog.entries import AuditWriter, Outcome
from broker.auditlog.receipts import (
    Receipt,
    receipt,
    receipt_for_delivery,
    receipt_from_json,
    receipt_to_json,
    verify_receipt,
)
from broker.errors import DecodeError, RejectedInput, VerificationError
from broker.wire.codec import SchemaCatalog
from tests.support.audit import (
    LOG_ID,
    START,
    BuiltLog,
    Ed25519CheckpointSigner,
    build_log,
    event,
    verifier,
)


@pytest.fixture(scope="module")
def signer() -> Ed25519CheckpointSigner:
    return Ed25519CheckpointSigner()


@pytest.fixture(scope="module")
def built(catalog: SchemaCatalog, signer: Ed25519CheckpointSigner) -> BuiltLog:
    return build_log(catalog, signer, 37, writers=2, every=10)


def _offline(document: str) -> Receipt:
    """What a recipient holds: the receipt as JSON text, nothing else from the broker."""
    return receipt_from_json(json.loads(document))


def test_every_entry_has_a_receipt_under_every_checkpoint_covering_it_that_verifies_offline(
    built: BuiltLog, signer: Ed25519CheckpointSigner
) -> None:
    verify = verifier(signer)
    for checkpoint in built.checkpoints:
        for index in range(checkpoint.tree_size):
            issued = receipt(built.checkpointer.log, index, checkpoint)
            held = _offline(json.dumps(receipt_to_json(issued)))

            assert held == issued
            verify_receipt(held, built.values[index], verify)


def test_a_receipt_does_not_verify_for_an_entry_with_any_byte_changed(
    built: BuiltLog, signer: Ed25519CheckpointSigner
) -> None:
    issued = receipt(built.checkpointer.log, 13, built.checkpoints[1])
    entry = built.values[13]

    for position in range(len(entry)):
        changed = entry[:position] + bytes([entry[position] ^ 0x01]) + entry[position + 1 :]
        with pytest.raises(VerificationError) as refused:
            verify_receipt(issued, changed, verifier(signer))
        assert refused.value.reason == "receipt_entry_mismatch"


def test_a_receipt_with_any_byte_of_its_proof_or_checkpoint_changed_does_not_verify(
    built: BuiltLog, signer: Ed25519CheckpointSigner
) -> None:
    document = receipt_to_json(receipt(built.checkpointer.log, 13, built.checkpoints[2]))
    entry = built.values[13]
    hex_fields: list[tuple[list[str], str | int]] = [
        (["leaf_hash"], ""),
        *((["audit_path"], i) for i in range(len(document["audit_path"]))),
        (["checkpoint", "root_hash"], ""),
        (["checkpoint", "signature"], ""),
    ]
    reasons = set()

    for path, item in hex_fields:
        for nibble in (0, 17, 63):
            tampered = json.loads(json.dumps(document))
            holder = tampered
            for key in path[:-1]:
                holder = holder[key]
            key = path[-1]
            value = holder[key][item] if isinstance(item, int) else holder[key]
            flipped = value[:nibble] + format(int(value[nibble], 16) ^ 1, "x") + value[nibble + 1 :]
            if isinstance(item, int):
                holder[key][item] = flipped
            else:
                holder[key] = flipped
            with pytest.raises(VerificationError) as refused:
                verify_receipt(receipt_from_json(tampered), entry, verifier(signer))
            reasons.add(refused.value.reason)

    assert reasons == {"receipt_entry_mismatch", "receipt_inclusion", "checkpoint_signature"}


def test_a_receipt_claiming_another_index_or_size_does_not_verify(
    built: BuiltLog, signer: Ed25519CheckpointSigner
) -> None:
    document = receipt_to_json(receipt(built.checkpointer.log, 13, built.checkpoints[2]))
    moved = json.loads(json.dumps(document)) | {"index": 12}
    resized = json.loads(json.dumps(document)) | {"tree_size": 20}

    with pytest.raises(VerificationError) as wrong_index:
        verify_receipt(receipt_from_json(moved), built.values[13], verifier(signer))
    with pytest.raises(VerificationError) as wrong_size:
        verify_receipt(receipt_from_json(resized), built.values[13], verifier(signer))

    assert wrong_index.value.reason == "receipt_inclusion"
    assert wrong_size.value.reason == "receipt_size_mismatch"


def test_a_receipt_under_a_checkpoint_signed_by_an_unknown_key_does_not_verify(
    built: BuiltLog,
) -> None:
    issued = receipt(built.checkpointer.log, 3, built.checkpoints[0])

    with pytest.raises(VerificationError) as refused:
        verify_receipt(issued, built.values[3], verifier(Ed25519CheckpointSigner("other")))

    assert refused.value.reason == "checkpoint_signature"


def test_no_receipt_is_issued_for_an_entry_the_checkpoint_does_not_cover(built: BuiltLog) -> None:
    with pytest.raises(ValueError, match="not under the checkpoint"):
        receipt(built.checkpointer.log, 10, built.checkpoints[0])


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {"format": "ixb-receipt-v1"},
        {"format": "other", "index": 0},
        {
            "format": "ixb-receipt-v1",
            "index": -1,
            "tree_size": 1,
            "leaf_hash": "00" * 32,
            "audit_path": [],
            "checkpoint": {},
        },
        {
            "format": "ixb-receipt-v1",
            "index": 0,
            "tree_size": 1,
            "leaf_hash": "zz",
            "audit_path": [],
            "checkpoint": {},
        },
    ],
)
def test_a_document_that_is_not_a_receipt_is_refused_by_reason(document: object) -> None:
    with pytest.raises(DecodeError) as refused:
        receipt_from_json(document)

    assert refused.value.reason == "malformed_receipt"


def test_a_receipt_carrying_its_entry_verifies_from_the_json_alone(
    built: BuiltLog, signer: Ed25519CheckpointSigner
) -> None:
    issued = receipt(built.checkpointer.log, 13, built.checkpoints[2], entry=built.values[13])
    document = json.dumps(receipt_to_json(issued))

    held = _offline(document)

    assert held.entry == built.values[13]
    verify_receipt(held, None, verifier(signer))


def test_a_receipt_without_an_entry_and_none_given_is_refused_by_reason(
    built: BuiltLog, signer: Ed25519CheckpointSigner
) -> None:
    issued = receipt(built.checkpointer.log, 13, built.checkpoints[2])

    with pytest.raises(VerificationError) as refused:
        verify_receipt(issued, None, verifier(signer))

    assert refused.value.reason == "receipt_entry_missing"


def test_no_receipt_is_issued_carrying_bytes_that_are_not_the_logs_entry(built: BuiltLog) -> None:
    with pytest.raises(ValueError, match="not the log's entry"):
        receipt(built.checkpointer.log, 13, built.checkpoints[2], entry=built.values[12])


def test_a_receipt_whose_carried_entry_is_not_base64_is_malformed(built: BuiltLog) -> None:
    issued = receipt(built.checkpointer.log, 13, built.checkpoints[2], entry=built.values[13])
    document = receipt_to_json(issued) | {"entry": "not base64!"}

    with pytest.raises(DecodeError) as refused:
        receipt_from_json(document)

    assert refused.value.reason == "malformed_receipt"


def _delivery_id(number: int) -> str:
    """The delivery id ``tests.support.audit.event(number)`` names."""
    return hashlib.sha256(number.to_bytes(8, "big")).digest().hex()[:32]


def test_a_delivery_gets_the_receipt_of_its_latest_entry_under_the_largest_covering_checkpoint(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner
) -> None:
    built = build_log(catalog, signer, 30, writers=2, every=10)
    held = event(12)  # a delivery, decided at START
    assert held.outcome is Outcome.DELIVERED
    later = dataclasses.replace(held, outcome=Outcome.RELEASED, at=held.at + dt.timedelta(hours=1))
    values = [*built.values, AuditWriter(catalog, "releaser").entry(later)]
    built.checkpointer.append(30, values[30])
    last = built.checkpointer.checkpoint()
    logs = {LOG_ID: list(enumerate(values))}

    newest = receipt_for_delivery(
        logs, [*built.checkpoints, last], _delivery_id(12), verifier(signer), catalog=catalog
    )
    first = receipt_for_delivery(
        logs,
        built.checkpoints,
        _delivery_id(12),
        verifier(signer),
        catalog=catalog,
        outcome=Outcome.DELIVERED,
    )

    assert (newest.index, newest.tree_size, newest.entry) == (30, 31, values[30])
    assert (first.index, first.tree_size, first.entry) == (12, 30, values[12])
    verify_receipt(newest, None, verifier(signer))
    verify_receipt(first, None, verifier(signer))


def test_no_receipt_for_a_delivery_no_entry_names_or_no_valid_checkpoint_covers(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner
) -> None:
    built = build_log(catalog, signer, 36, writers=2, every=10)  # checkpoints 10, 20, 30
    logs = {LOG_ID: built.records}
    covered_by_forgery = [*built.checkpoints, _by(Ed25519CheckpointSigner(), built, 36)]

    with pytest.raises(RejectedInput) as unknown:
        receipt_for_delivery(logs, built.checkpoints, "0" * 32, verifier(signer), catalog=catalog)
    with pytest.raises(RejectedInput) as uncovered:
        receipt_for_delivery(
            logs, covered_by_forgery, _delivery_id(32), verifier(signer), catalog=catalog
        )

    assert unknown.value.reason == "receipt_no_entry"
    assert uncovered.value.reason == "receipt_not_checkpointed"


def _by(other: Ed25519CheckpointSigner, built: BuiltLog, size: int) -> Checkpoint:
    return sign_checkpoint(other, LOG_ID, size, built.checkpointer.log.root_at(size), START)
