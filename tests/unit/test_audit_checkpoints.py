"""Checkpoints: signed exactly as framed, due by count or by time, provably consistent."""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from broker.auditlog.checkpoints import (
    Checkpoint,
    Checkpointer,
    check_consistency,
    check_signature,
    checkpoint_message,
    checkpoint_verifier,
    decode_checkpoint,
    encode_checkpoint,
    log_id_of,
    sign_checkpoint,
)
from broker.auditlog.entries import AuditWriter
from broker.errors import DecodeError, RejectedInput, VerificationError
from broker.trust.merkle import MerkleLog, leaf_hash
from broker.trust.records import KeyRecord, KeyRole, PartnerRegistry
from broker.trust.signatures import SigningKey
from broker.wire.codec import SchemaCatalog
from tests.support.audit import (
    LOG_ID,
    START,
    Ed25519CheckpointSigner,
    SteppingClock,
    build_log,
    event,
    verifier,
)


def test_the_signed_input_is_the_documented_fixed_framing() -> None:
    root = bytes(range(32))

    message = checkpoint_message("ixb.audit/3", 1000, root, 1_772_366_400_123)

    assert message == (
        b"ixb-checkpoint-v1\x00"
        + b"\x00\x0b"
        + b"ixb.audit/3"
        + struct.pack(">Q", 1000)
        + root
        + struct.pack(">q", 1_772_366_400_123)
    )


def test_checkpoints_differing_in_any_field_have_different_signed_inputs() -> None:
    root = bytes(32)
    base = checkpoint_message("ixb.audit/1", 10, root, 5)

    assert checkpoint_message("ixb.audit/2", 10, root, 5) != base
    assert checkpoint_message("ixb.audit/1", 11, root, 5) != base
    assert checkpoint_message("ixb.audit/1", 10, b"\x01" + root[1:], 5) != base
    assert checkpoint_message("ixb.audit/1", 10, root, 6) != base


def test_a_checkpoint_round_trips_through_avro_and_still_verifies(
    catalog: SchemaCatalog,
) -> None:
    signer = Ed25519CheckpointSigner()
    checkpoint = sign_checkpoint(signer, LOG_ID, 7, leaf_hash(b"x"), START)

    decoded = decode_checkpoint(catalog, encode_checkpoint(catalog, checkpoint))

    assert decoded == checkpoint
    assert decoded.at == START
    check_signature(decoded, verifier(signer))


def test_a_checkpoint_with_any_field_changed_no_longer_verifies() -> None:
    signer = Ed25519CheckpointSigner()
    verify = verifier(signer)
    good = sign_checkpoint(signer, LOG_ID, 7, leaf_hash(b"x"), START)
    changes = [
        Checkpoint(
            log_id_of("ixb.audit", 1),
            7,
            good.root_hash,
            good.at_ms,
            good.signer_key_id,
            good.signature,
        ),
        Checkpoint(LOG_ID, 8, good.root_hash, good.at_ms, good.signer_key_id, good.signature),
        Checkpoint(LOG_ID, 7, leaf_hash(b"y"), good.at_ms, good.signer_key_id, good.signature),
        Checkpoint(LOG_ID, 7, good.root_hash, good.at_ms + 1, good.signer_key_id, good.signature),
    ]

    for changed in changes:
        with pytest.raises(VerificationError):
            check_signature(changed, verify)


def test_a_checkpoint_is_due_after_every_n_entries(catalog: SchemaCatalog) -> None:
    built = build_log(catalog, Ed25519CheckpointSigner(), 35, writers=2, every=10)

    assert [c.tree_size for c in built.checkpoints] == [10, 20, 30]
    log = MerkleLog()
    for value in built.values[:20]:
        log.append(leaf_hash(value))
    assert built.checkpoints[1].root_hash == log.root()


def test_a_checkpoint_is_due_after_the_time_limit_when_there_are_new_entries(
    catalog: SchemaCatalog,
) -> None:
    clock = SteppingClock()
    checkpointer = Checkpointer(
        LOG_ID, Ed25519CheckpointSigner(), clock, every_entries=1000, every_s=10
    )
    writer = AuditWriter(catalog, "w")

    assert checkpointer.append(0, writer.entry(event(0))) is None
    clock.advance(9.9)
    assert checkpointer.tick() is None
    clock.advance(0.1)
    due = checkpointer.tick()
    assert due is not None
    assert (due.tree_size, due.at) == (1, clock.now)
    clock.advance(60)
    assert checkpointer.tick() is None  # nothing new to checkpoint
    clock.advance(1)
    late = checkpointer.append(1, writer.entry(event(1)))
    assert late is not None
    assert late.tree_size == 2


def test_a_restarted_checkpointer_replays_the_log_unsigned_then_signs_it_all(
    catalog: SchemaCatalog,
) -> None:
    built = build_log(catalog, Ed25519CheckpointSigner(), 25, writers=1, every=10)
    restarted = Checkpointer(LOG_ID, Ed25519CheckpointSigner(), SteppingClock(), every_entries=10)

    restarted.extend(built.records[:24])
    first = restarted.append(24, built.values[24])

    assert first is not None
    assert first.tree_size == 25
    assert first.root_hash == built.checkpointer.log.root()


def test_the_checkpointer_refuses_a_record_out_of_offset_order(catalog: SchemaCatalog) -> None:
    checkpointer = Checkpointer(LOG_ID, Ed25519CheckpointSigner(), SteppingClock())
    writer = AuditWriter(catalog, "w")
    checkpointer.append(0, writer.entry(event(0)))

    with pytest.raises(RejectedInput) as refused:
        checkpointer.append(2, writer.entry(event(1)))

    assert refused.value.reason == "offset_gap"


def test_successive_checkpoints_are_proven_consistent_and_a_forged_one_is_not(
    catalog: SchemaCatalog,
) -> None:
    signer = Ed25519CheckpointSigner()
    built = build_log(catalog, signer, 30, writers=3, every=10)
    first, second, third = built.checkpoints
    other = build_log(catalog, signer, 30, writers=2, every=10)

    for old, new in [(first, second), (second, third), (first, third)]:
        check_consistency(old, new, built.checkpointer.consistency(old, new))
    with pytest.raises(VerificationError) as refused:
        check_consistency(first, other.checkpoints[2], built.checkpointer.consistency(first, third))
    assert refused.value.reason == "inconsistent_checkpoints"


def test_a_checkpoint_claiming_a_negative_size_is_refused_on_decode(catalog: SchemaCatalog) -> None:
    record = {
        "log_id": LOG_ID,
        "tree_size": -1,
        "root_hash": bytes(32),
        "at": 0,
        "signer_key_id": "k",
        "signature": b"",
        "note": b"",
    }

    with pytest.raises(DecodeError) as refused:
        decode_checkpoint(catalog, catalog.encode("ixb.v1.AuditCheckpoint", record))

    assert refused.value.reason == "malformed"


def test_a_restarted_checkpointer_resumes_from_the_last_checkpoint_and_signs_only_what_followed(
    catalog: SchemaCatalog,
) -> None:
    built = build_log(catalog, Ed25519CheckpointSigner(), 25, writers=2, every=10)
    clock = SteppingClock()
    restarted = Checkpointer(LOG_ID, Ed25519CheckpointSigner(), clock, every_entries=10)

    restarted.extend(built.records[:20])
    restarted.resume(built.checkpoints[1])
    assert restarted.unsigned == 0
    restarted.extend(built.records[20:24])
    assert restarted.append(24, built.values[24]) is None  # 5 since the resumed one, not 25
    clock.advance(3600)
    late = restarted.tick()

    assert late is not None
    assert late.tree_size == 25
    check_consistency(built.checkpoints[1], late, restarted.consistency(built.checkpoints[1], late))


def test_a_checkpointer_refuses_to_resume_from_a_checkpoint_its_log_does_not_match(
    catalog: SchemaCatalog,
) -> None:
    signer = Ed25519CheckpointSigner()
    built = build_log(catalog, signer, 20, writers=2, every=10)
    other = build_log(catalog, signer, 20, writers=3, every=10)
    restarted = Checkpointer(LOG_ID, signer, SteppingClock(), every_entries=10)
    restarted.extend(other.records[:15])

    with pytest.raises(VerificationError) as forked:
        restarted.resume(built.checkpoints[0])
    with pytest.raises(VerificationError) as beyond:
        restarted.resume(built.checkpoints[1])

    assert forked.value.reason == "checkpoint_root_mismatch"
    assert beyond.value.reason == "checkpoint_beyond_log"
    assert restarted.unsigned == 15


def test_a_broker_key_signs_checkpoints_only_while_the_registry_holds_it_valid() -> None:
    key = SigningKey.generate("ed25519", prefix="broker")
    revoked_at = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
    registry = PartnerRegistry(
        [
            KeyRecord(
                key_id=key.key_id,
                role=KeyRole.BROKER,
                public_key=key.public_key_b64(),
                not_before=revoked_at - dt.timedelta(days=30),
                revoked_at=revoked_at,
            )
        ]
    )
    verify = checkpoint_verifier(registry)

    def signed_at(when: dt.datetime) -> Checkpoint:
        checkpointer = Checkpointer("ixb.audit/0", key, lambda: when)
        checkpointer.extend([(0, b"an entry")])
        return checkpointer.checkpoint()

    check_signature(signed_at(revoked_at - dt.timedelta(minutes=1)), verify)
    for late in (revoked_at, revoked_at + dt.timedelta(days=1)):
        with pytest.raises(VerificationError) as refused:
            check_signature(signed_at(late), verify)
        assert refused.value.reason == "key_not_valid"
    with pytest.raises(VerificationError) as early:
        check_signature(signed_at(revoked_at - dt.timedelta(days=31)), verify)
    assert early.value.reason == "key_not_valid"
