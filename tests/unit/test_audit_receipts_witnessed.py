"""Receipts carry the checkpoint's cosignatures, and a holder can demand a quorum of them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from broker.auditlog.checkpoints import Checkpoint, checkpoint_verifier
from broker.auditlog.receipts import (
    receipt_for_delivery,
    receipt_from_json,
    receipt_to_json,
    verify_receipt,
)
from broker.auditlog.witnessed import WitnessKeys
from broker.errors import RejectedInput, VerificationError
from broker.trust.tlog import add_checkpoint_body
from broker.wire.codec import SchemaCatalog
from tests.support.audit import LOG_ID, BuiltLog, build_log
from tests.support.witnessing import Federation


@pytest.fixture
def federation(tmp_path: Path) -> Federation:
    return Federation(tmp_path)


@pytest.fixture
def built(catalog: SchemaCatalog, federation: Federation) -> BuiltLog:
    return build_log(catalog, federation.broker, 30, writers=2, every=10)


def with_cosignature(federation: Federation, checkpoint: Checkpoint, nation: str) -> Checkpoint:
    answer = federation.witnesses[nation].add_checkpoint(
        add_checkpoint_body(0, [], checkpoint.note)
    )
    assert answer.status == 200
    return dataclasses.replace(checkpoint, note=checkpoint.note + answer.body)


def delivery_of(catalog: SchemaCatalog, built: BuiltLog, index: int) -> str:
    delivery_id = catalog.decode(built.values[index], "ixb.v1.AuditEntry")["delivery_id"]
    assert isinstance(delivery_id, str)
    return delivery_id


def issue(
    catalog: SchemaCatalog,
    *,
    federation: Federation,
    built: BuiltLog,
    checkpoints: list[Checkpoint],
    delivery_id: str,
    quorum: int = 0,
) -> dict[str, object]:
    issued = receipt_for_delivery(
        {LOG_ID: built.records},
        checkpoints,
        delivery_id,
        checkpoint_verifier(federation.registry),
        catalog=catalog,
        witnesses=WitnessKeys(federation.registry),
        quorum=quorum,
    )
    return receipt_to_json(issued)


def test_a_receipt_carries_the_cosignatures_of_every_copy_of_its_checkpoint(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    newest = built.checkpoints[-1]
    copies = [
        newest,
        with_cosignature(federation, newest, "NL"),
        with_cosignature(federation, newest, "BE"),
    ]

    document = issue(
        catalog,
        federation=federation,
        built=built,
        checkpoints=copies,
        delivery_id=delivery_of(catalog, built, 22),
    )
    held = receipt_from_json(json.loads(json.dumps(document)))

    keys = WitnessKeys(federation.registry)
    verify_receipt(held, None, checkpoint_verifier(federation.registry), witnesses=keys, quorum=2)
    with pytest.raises(VerificationError) as refused:
        verify_receipt(
            held, None, checkpoint_verifier(federation.registry), witnesses=keys, quorum=3
        )
    assert refused.value.reason == "no_quorum"
    assert "2 of the 3" in refused.value.detail


def test_with_a_quorum_the_receipt_is_under_the_latest_checkpoint_that_has_it(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    witnessed = built.checkpoints[1]  # size 20
    copies = [
        with_cosignature(federation, witnessed, "NL"),
        with_cosignature(federation, witnessed, "DE"),
        built.checkpoints[2],  # size 30, cosigned by nobody yet
    ]

    document = issue(
        catalog,
        federation=federation,
        built=built,
        checkpoints=copies,
        delivery_id=delivery_of(catalog, built, 12),
        quorum=2,
    )

    assert document["tree_size"] == 20


def test_no_receipt_is_issued_when_no_covering_checkpoint_has_the_quorum(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    copies = [with_cosignature(federation, built.checkpoints[-1], "NL")]

    with pytest.raises(RejectedInput) as refused:
        issue(
            catalog,
            federation=federation,
            built=built,
            checkpoints=copies,
            delivery_id=delivery_of(catalog, built, 24),
            quorum=2,
        )

    assert refused.value.reason == "receipt_not_checkpointed"
    assert "cosigned by 2" in refused.value.detail


def test_a_receipt_whose_cosignature_was_copied_onto_another_checkpoint_lacks_the_quorum(
    catalog: SchemaCatalog, federation: Federation, built: BuiltLog
) -> None:
    cosigned = with_cosignature(federation, built.checkpoints[-1], "NL")
    line = cosigned.note.split(b"\n\n", 1)[1].split(b"\n")[1] + b"\n"  # NL's line
    older = built.checkpoints[1]
    grafted = dataclasses.replace(older, note=older.note + line)

    document = issue(
        catalog,
        federation=federation,
        built=built,
        checkpoints=[grafted],
        delivery_id=delivery_of(catalog, built, 12),
    )
    held = receipt_from_json(document)

    with pytest.raises(VerificationError) as refused:
        verify_receipt(
            held,
            None,
            checkpoint_verifier(federation.registry),
            witnesses=WitnessKeys(federation.registry),
            quorum=1,
        )
    assert refused.value.reason == "no_quorum"
