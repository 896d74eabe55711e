"""The audit verifier: every way of tampering with a log is named, at the right entry.

The log in these tests has 60 entries from three writers taking turns
(entry i is writer i % 3's seq i // 3) and a checkpoint every 10 entries.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import pytest

from broker.auditlog.chains import _MAX_SEQ_JUMP, ChainReader
from broker.auditlog.checkpoints import Checkpoint, encode_checkpoint, log_id_of, sign_checkpoint
from broker.auditlog.entries import AuditWriter
from broker.auditor.verify import VerificationReport, verify_log
from broker.trust.merkle import MerkleLog, leaf_hash
from broker.wire.codec import SchemaCatalog
from tests.support.audit import (
    LOG_ID,
    START,
    BuiltLog,
    Ed25519CheckpointSigner,
    build_log,
    edited,
    event,
    verifier,
)

ENTRIES = 60


@pytest.fixture(scope="module")
def signer() -> Ed25519CheckpointSigner:
    return Ed25519CheckpointSigner()


@pytest.fixture(scope="module")
def built(catalog: SchemaCatalog, signer: Ed25519CheckpointSigner) -> BuiltLog:
    return build_log(catalog, signer, ENTRIES, writers=3, every=10)


def _verify(
    catalog: SchemaCatalog,
    signer: Ed25519CheckpointSigner,
    records: list[tuple[int, bytes]],
    checkpoints: list[Checkpoint] | list[bytes],
) -> VerificationReport:
    return verify_log(LOG_ID, records, checkpoints, verifier(signer), catalog=catalog)


def _renumbered(values: list[bytes]) -> list[tuple[int, bytes]]:
    """As if the topic were copied without some records: offsets contiguous again."""
    return list(enumerate(values))


def _edit_origin(catalog: SchemaCatalog, value: bytes) -> bytes:
    def change(record: dict[str, object]) -> None:
        record["origin"] = "US"

    return edited(catalog, value, change)


def test_an_untouched_log_verifies_with_every_checkpoint_and_consistency_step_checked(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    report = _verify(catalog, signer, built.records, built.encoded_checkpoints(catalog))

    assert report.ok, report.problem
    assert report.entries == ENTRIES
    assert report.checkpoints == 6
    assert report.consistency_steps == 5
    assert report.root_hash == built.checkpointer.log.root()


def test_a_signed_root_the_log_lacks_is_a_mismatch_over_the_entries_since_the_last_match(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    tampered = [*built.checkpoints[:2], _resigned(built.checkpoints[2], signer, root=bytes(32))]

    report = _verify(catalog, signer, built.records, tampered)

    assert report.problem is not None
    assert report.problem.reason == "checkpoint_root_mismatch"
    assert report.problem.indices == (20, 30)


def test_an_edited_entry_is_named_by_the_chain_when_its_writer_writes_again_first(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = list(built.values)
    values[23] = _edit_origin(catalog, values[23])  # writer 2 writes again at 26, before size 30

    report = _verify(catalog, signer, _renumbered(values), built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "chain_broken"
    assert (report.problem.index, report.problem.offset) == (23, 23)
    assert report.problem.log_id == LOG_ID
    assert "writer-2" in report.problem.detail


def test_an_edited_entry_shown_first_by_a_checkpoint_is_still_named_within_its_range(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = list(built.values)
    values[28] = _edit_origin(catalog, values[28])  # writer 1 writes again only at 31

    report = _verify(catalog, signer, _renumbered(values), built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "checkpoint_root_mismatch"
    assert report.problem.indices == (20, 30)
    assert (report.problem.index, report.problem.offset) == (28, 28)
    assert "chain_broken" in report.problem.detail


def test_an_edit_no_chain_can_see_is_named_as_the_range_between_checkpoints(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = list(built.values)
    values[59] = _edit_origin(catalog, values[59])  # writer 2's last entry: no successor

    report = _verify(catalog, signer, _renumbered(values), built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "checkpoint_root_mismatch"
    assert report.problem.indices == (50, 60)
    assert report.problem.index is None


def test_every_single_edited_entry_is_named_exactly_or_by_a_range_containing_it(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    for k in range(ENTRIES):
        values = list(built.values)
        values[k] = _edit_origin(catalog, values[k])

        problem = _verify(catalog, signer, _renumbered(values), built.checkpoints).problem

        assert problem is not None, k
        if problem.index is not None:
            assert problem.index == k, (k, problem)
        else:
            assert problem.indices is not None, (k, problem)
            assert problem.indices[0] <= k < problem.indices[1], (k, problem)


def test_a_record_read_twice_is_named_by_its_offset_going_back(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    records = [*built.records[:21], built.records[20], *built.records[21:]]

    report = _verify(catalog, signer, records, built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "offset_order"
    assert (report.problem.offset, report.problem.index) == (20, 21)


def test_a_record_missing_from_the_topic_is_named_by_its_missing_offset(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    records = [r for r in built.records if r[0] != 33]

    report = _verify(catalog, signer, records, built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "offset_gap"
    assert (report.problem.offset, report.problem.index) == (33, 33)


def test_an_entry_deleted_from_a_copied_log_shows_as_a_gap_in_its_writers_sequence(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = [v for i, v in enumerate(built.values) if i != 33]  # writer 0's seq 11

    report = _verify(catalog, signer, _renumbered(values), built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "sequence_gap"
    # Writer 0's next entry (seq 12, formerly at 36) is now at 35: the gap shows there.
    assert (report.problem.index, report.problem.offset) == (35, 35)
    assert "writer-0" in report.problem.detail
    assert "seq 11" in report.problem.detail


def test_two_entries_of_one_writer_swapped_show_as_a_reorder_at_the_first_moved(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = list(built.values)
    values[33], values[36] = values[36], values[33]  # writer 0's seq 11 and 12

    report = _verify(catalog, signer, _renumbered(values), built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "sequence_reorder"
    assert (report.problem.index, report.problem.offset) == (33, 33)


def test_two_entries_of_different_writers_swapped_show_only_in_the_checkpoint(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = list(built.values)
    values[33], values[34] = values[34], values[33]

    report = _verify(catalog, signer, _renumbered(values), built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "checkpoint_root_mismatch"
    assert report.problem.indices == (30, 40)
    assert report.problem.index is None


def test_a_batch_re_sent_after_a_partial_acknowledgement_is_counted_as_duplicates_not_a_fault(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    # Kafka acknowledged entries 50..54 of a batch 50..59 and the producer sent it all again;
    # meanwhile another process's writer got an entry in between.
    other = AuditWriter(catalog, "writer-9").entry(event(99))
    values = [*built.values[:55], other, *built.values[50:60]]
    tree = MerkleLog()
    for value in values:
        tree.append(leaf_hash(value))
    late = sign_checkpoint(signer, LOG_ID, len(values), tree.root(), START)

    report = _verify(catalog, signer, _renumbered(values), [*built.checkpoints[:5], late])

    assert report.ok, report.problem
    assert report.duplicates == 5
    assert report.consistency_steps == 5
    assert report.entries == len(values)  # the copies are leaves all the same
    assert report.root_hash == late.root_hash


def test_a_copy_of_an_entry_inserted_mid_log_passes_the_chains_but_not_the_checkpoints(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = list(built.values)
    values.insert(26, values[20])  # writer 2's seq 6 again, after its seq 7

    report = _verify(catalog, signer, _renumbered(values), built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "checkpoint_root_mismatch"
    assert report.problem.indices == (20, 30)
    assert report.duplicates == 1


@pytest.mark.parametrize(("original", "seq"), [(59, 19), (20, 6)])
def test_an_entry_with_a_number_its_writer_already_used_but_other_bytes_is_a_reorder(
    catalog: SchemaCatalog,
    signer: Ed25519CheckpointSigner,
    built: BuiltLog,
    original: int,
    seq: int,
) -> None:
    """The writer's latest number, or an older one, reused by another entry."""
    values = [*built.values, _edit_origin(catalog, built.values[original])]

    report = _verify(catalog, signer, _renumbered(values), built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "sequence_reorder"
    assert (report.problem.index, report.problem.offset) == (ENTRIES, ENTRIES)
    assert f"seq {seq} " in report.problem.detail
    assert "two entries" in report.problem.detail
    assert report.duplicates == 0


def test_an_entry_moved_later_is_a_reorder_even_though_its_bytes_are_unchanged(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = list(built.values)
    moved = values.pop(20)  # writer 2's seq 6, now after its seq 7
    values.insert(25, moved)

    report = _verify(catalog, signer, _renumbered(values), [])

    assert report.problem is not None
    assert report.problem.reason == "sequence_reorder"
    assert (report.problem.index, report.problem.offset) == (22, 22)
    assert report.duplicates == 0


def test_a_truncated_log_is_named_by_the_checkpoint_it_no_longer_reaches(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    report = _verify(catalog, signer, built.records[:55], built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "checkpoint_beyond_log"
    assert (report.problem.index, report.problem.offset) == (55, 55)
    assert "size 60" in report.problem.detail


def test_a_checkpoint_with_a_changed_signature_byte_is_refused(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    encoded = built.encoded_checkpoints(catalog)
    third = built.checkpoints[2]
    flipped = third.signature[:-1] + bytes([third.signature[-1] ^ 1])
    encoded[2] = encode_checkpoint(catalog, dataclasses.replace(third, signature=flipped))

    report = _verify(catalog, signer, built.records, encoded)

    assert report.problem is not None
    assert report.problem.reason == "checkpoint_signature"
    assert "size 30" in report.problem.detail
    assert "bad_signature" in report.problem.detail


def test_a_checkpoint_whose_c2sp_note_has_a_changed_signature_byte_is_refused(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    third = built.checkpoints[2]
    line = third.note.rstrip(b"\n").rsplit(b" ", 1)
    raw = bytearray(base64.b64decode(line[1]))
    raw[-1] ^= 1
    note = line[0] + b" " + base64.b64encode(bytes(raw)) + b"\n"
    encoded = built.encoded_checkpoints(catalog)
    encoded[2] = encode_checkpoint(catalog, dataclasses.replace(third, note=note))

    report = _verify(catalog, signer, built.records, encoded)

    assert report.problem is not None
    assert report.problem.reason == "checkpoint_signature"
    assert "size 30" in report.problem.detail
    assert "checkpoint_note_signature" in report.problem.detail


def test_a_checkpoint_by_a_key_the_verifier_does_not_know_is_refused(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    stranger = Ed25519CheckpointSigner("someone-else")
    forged = _resigned(built.checkpoints[0], stranger)

    report = _verify(catalog, signer, built.records, [forged, *built.checkpoints[1:]])

    assert report.problem is not None
    assert report.problem.reason == "checkpoint_signature"
    assert "unknown_key" in report.problem.detail


def test_two_signed_roots_for_one_size_are_a_fork(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    other = build_log(catalog, signer, 30, writers=2, every=10)  # another history, same key

    report = _verify(catalog, signer, built.records, [*built.checkpoints, other.checkpoints[2]])

    assert report.problem is not None
    assert report.problem.reason == "fork"
    assert "size 30" in report.problem.detail


def test_a_checkpoint_that_is_not_a_prefix_of_a_later_one_the_log_matches_is_a_fork(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    other = build_log(catalog, signer, 30, writers=2, every=10)
    checkpoints = list(built.checkpoints)
    checkpoints[2] = other.checkpoints[2]  # size 30 from the other history; 40 still matches

    report = _verify(catalog, signer, built.records, checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "fork"


def test_an_entry_that_does_not_decode_is_named(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = list(built.values)
    values[17] = values[17][:-3]

    report = _verify(catalog, signer, _renumbered(values), built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "undecodable_entry"
    assert (report.problem.index, report.problem.offset) == (17, 17)


def test_a_checkpoint_that_does_not_decode_is_named(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    encoded = built.encoded_checkpoints(catalog)

    report = _verify(catalog, signer, built.records, [*encoded, b"\xc3\x01not a checkpoint"])

    assert report.problem is not None
    assert report.problem.reason == "undecodable_checkpoint"


def test_checkpoints_of_other_logs_are_left_out(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    elsewhere = sign_checkpoint(signer, log_id_of("ixb.audit", 1), 5, bytes(32), START)

    report = _verify(catalog, signer, built.records, [*built.checkpoints, elsewhere])

    assert report.ok, report.problem
    assert report.checkpoints == 6


def test_the_first_problem_in_log_order_is_the_one_reported(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = list(built.values)
    values[40] = _edit_origin(catalog, values[40])
    values[12] = values[12][:-1]

    report = _verify(catalog, signer, _renumbered(values), built.checkpoints)

    assert report.problem is not None
    assert report.problem.reason == "undecodable_entry"
    assert report.problem.index == 12


def test_a_problem_detail_carries_no_entry_values(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    values = list(built.values)
    values[23] = _edit_origin(catalog, values[23])

    report = _verify(
        catalog,
        signer,
        _renumbered(values),
        [encode_checkpoint(catalog, c) for c in built.checkpoints],
    )

    assert report.problem is not None
    assert "US" not in report.problem.detail
    assert "sha256:" not in report.problem.detail


def _resigned(
    checkpoint: Checkpoint, signer: Ed25519CheckpointSigner, *, root: bytes | None = None
) -> Checkpoint:
    return sign_checkpoint(
        signer,
        checkpoint.log_id,
        checkpoint.tree_size,
        checkpoint.root_hash if root is None else root,
        checkpoint.at,
    )


def test_checkpoints_of_one_size_signed_twice_by_two_enforcers_verify_as_consistent(
    catalog: SchemaCatalog, signer: Ed25519CheckpointSigner, built: BuiltLog
) -> None:
    # The other process signed the same sizes a little later: same roots, other times.
    resigned = [
        sign_checkpoint(signer, LOG_ID, c.tree_size, c.root_hash, c.at + dt.timedelta(seconds=0.7))
        for c in built.checkpoints
    ]

    report = _verify(catalog, signer, built.records, [*built.checkpoints, *resigned])

    assert report.ok, report.problem
    assert report.checkpoints == 12
    assert report.consistency_steps == 11


def test_forged_sequence_numbers_cannot_make_the_reader_allocate_beyond_its_budget() -> None:
    """Huge jumps, or a new writer per entry, each once cost 8 MiB of index per entry."""
    jumps, writers = ChainReader(lambda _: b""), ChainReader(lambda _: b"")
    for i in range(60):
        jumps.read(i, i, writer="w", seq=i * ((1 << 20) + 1), prev=b"", digest=b"", leaf=b"")
        writers.read(i, i, writer=f"w{i}", seq=1 << 20, prev=b"", digest=b"", leaf=b"")

    for reader in (jumps, writers):
        slots = sum(len(w.indices) for w in reader._writers.values())
        assert slots <= 60 + _MAX_SEQ_JUMP
        # Still a finding for what was forged: the reader did not stop reading.
        assert reader.findings(), "every jump is a hole"
