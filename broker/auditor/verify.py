"""``ixb audit verify`` of one log: recompute its tree, check its checkpoints, name the first fault.

One pass over the log's records, in offset order, does the per-entry work:
offsets must run 0, 1, 2, ... (``offset_gap`` names the first missing one),
every entry must decode (``undecodable_entry``), every writer's chain must
hold (broker/auditlog/chains.py: ``chain_broken``, ``sequence_gap``,
``sequence_reorder``), and every record's leaf hash goes into a Merkle tree.
An exact copy of an entry already read from the same writer (a batch the
producer re-sent after a partial acknowledgement) is counted in
``duplicates``, not reported: it stays a leaf of the tree, which is over
every record, so checkpoints sign it like any other.
Then each checkpoint of the log is checked against that tree:

==========================  =========================================================
reason                      the checkpoint ...
==========================  =========================================================
undecodable_checkpoint      is not a well-formed ``ixb.v1.AuditCheckpoint``
checkpoint_signature        does not verify under its signer's key
checkpoint_beyond_log       is of a size the log no longer reaches (truncated)
fork                        has the size of another with a different root, or is not
                            a prefix of a later checkpoint the log matches
checkpoint_root_mismatch    has a root the log's tree of that size does not have
==========================  =========================================================

A root mismatch names the entries in question, from the largest smaller
checkpoint that matches to its size, and within them the entry a chain
names, if any. Which of the two is told apart how: when a later checkpoint
matches the log, the log is what was signed and the odd checkpoint is the
broker's fork; when none does, the log itself differs from what was signed.

Checkpoints held outside the broker's topics (a witness's latest, an
auditor's file) and the witnesses' cosignatures are weighed next
(broker/auditor/views.py: ``split_view``, a held checkpoint the log no
longer reaches or matches, ``no_checkpoint``, ``no_quorum``); the report
says how far checkpoints cover the log, who cosigned, and how many entries,
written since when, no checkpoint signs yet.

Every problem found is placed where its evidence appears: after the entry
whose reading revealed it, or after the first ``tree_size`` entries for a
checkpoint. The first one is reported; the rest only help to name it. The
pass keeps the Merkle tree (about 150 bytes an entry) and O(1) per writer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from broker.auditlog.chains import MAX_FINDINGS, ChainReader, Finding
from broker.auditlog.checkpoints import (
    Checkpoint,
    VerifySignature,
    check_signature,
    decode_checkpoint,
)
from broker.auditlog.entries import AUDIT_ENTRY_SCHEMA
from broker.auditlog.witnessed import WitnessKeys
from broker.auditor.views import HeldCheckpoint, Views, check_views
from broker.errors import DecodeError, VerificationError
from broker.trust.merkle import MerkleLog, leaf_hash, verify_consistency
from broker.wire.codec import SchemaCatalog

__all__ = ["Problem", "VerificationReport", "verify_log"]


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong with a log.

    ``offset`` and ``index`` name the entry at fault when one is known (for
    a gap, the missing offset and the index it would have had); ``indices``
    is the half-open range of entry indices in question for a root mismatch.
    """

    log_id: str
    reason: str
    detail: str
    offset: int | None = None
    index: int | None = None
    indices: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class VerificationReport:
    log_id: str
    entries: int
    checkpoints: int  # of this log, read
    consistency_steps: int  # successive checkpoint pairs proven consistent
    root_hash: bytes  # of all the entries read
    problem: Problem | None
    duplicates: int = 0  # exact repeats of a writer's entries (at-least-once), tolerated
    newest_size: int | None = None  # the largest checkpoint the log matches (any source)
    witnessed_size: int | None = None  # ... cosigned by the quorum asked, if one was
    cosigners: tuple[str, ...] = ()  # the nations whose witnesses cosigned that one
    held: int = 0  # checkpoints held outside the broker that were weighed
    unsigned_since: dt.datetime | None = None  # time of the first entry past the newest

    @property
    def unsigned(self) -> int:
        """Entries past the newest checkpoint the log matches: not yet under any signature."""
        return self.entries - (self.newest_size or 0)

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True, slots=True)
class _Mismatch:
    """A root mismatch, to be named by the first chain finding in its range."""

    checkpoint: Checkpoint
    first: int


_Placed = tuple[int, int, Problem | _Mismatch]
"""(position, order, problem): the position is the number of entries read when it shows."""


def verify_log(
    log_id: str,
    records: Iterable[tuple[int, bytes]],
    checkpoints: Iterable[bytes | Checkpoint],
    verify: VerifySignature,
    *,
    catalog: SchemaCatalog,
    held: Sequence[HeldCheckpoint] = (),
    witnesses: WitnessKeys | None = None,
    quorum: int = 0,
) -> VerificationReport:
    """Verify one log (its records in offset order) against its checkpoints.

    Checkpoints of other logs are skipped, so the whole checkpoint topic
    may be passed; they may come in any order. ``held`` are this log's
    checkpoints held outside the broker's topics, their signatures checked
    by the caller; ``quorum`` partners' witnesses (under ``witnesses``) must
    have cosigned a checkpoint the log matches.
    """
    if quorum and witnesses is None:
        raise ValueError("a quorum is counted under the registry's witness keys")
    log = MerkleLog()
    times: list[dt.datetime | None] = []
    entry_findings, next_offset, duplicates = _read_entries(records, log, catalog, times)
    placed, read, steps, signed = _check_checkpoints(
        log_id, checkpoints, log, next_offset=next_offset, verify=verify, catalog=catalog
    )
    views = check_views(
        log_id, log, signed, held, witnesses=witnesses, quorum=quorum, next_offset=next_offset
    )
    for finding in views.findings:  # a split view names the conflict before the fork it is
        order = -2 if finding.reason == "split_view" else len(placed) + 1_000_000
        found = Problem(log_id, finding.reason, finding.detail, finding.offset, finding.index)
        placed.append((finding.position, order, found))
    if entry_findings:  # only the first can come first; the rest may name a mismatch
        first_finding = entry_findings[0]
        placed.append((first_finding.seen_at + 1, -1, _as_problem(log_id, first_finding)))
    problem = None
    if placed:
        _, _, first = min(placed, key=lambda p: (p[0], p[1]))
        problem = (
            first if isinstance(first, Problem) else _name_mismatch(log_id, first, entry_findings)
        )
    return _report(
        log_id,
        log,
        read=read,
        steps=steps,
        problem=problem,
        duplicates=duplicates,
        views=views,
        times=times,
    )


def _report(
    log_id: str,
    log: MerkleLog,
    *,
    read: int,
    steps: int,
    problem: Problem | None,
    duplicates: int,
    views: Views,
    times: list[dt.datetime | None],
) -> VerificationReport:
    newest = views.newest_size or 0
    return VerificationReport(
        log_id,
        log.size,
        read,
        steps,
        log.root(),
        problem,
        duplicates,
        newest_size=views.newest_size,
        witnessed_size=views.witnessed_size,
        cosigners=views.cosigners,
        held=views.held,
        unsigned_since=times[newest] if newest < len(times) else None,
    )


def _read_entries(
    records: Iterable[tuple[int, bytes]],
    log: MerkleLog,
    catalog: SchemaCatalog,
    times: list[dt.datetime | None],
) -> tuple[list[Finding], int, int]:
    """The pass over the entries: findings in the order their evidence appeared, the next
    offset, and the duplicates let through; each entry's time goes to ``times``."""
    chains = ChainReader(log.leaf)
    found: list[Finding] = []
    expected = 0
    sha256 = hashlib.sha256
    for index, (offset, value) in enumerate(records):
        if offset != expected and len(found) < MAX_FINDINGS:
            found.append(_offset_finding(index, offset, expected))
        expected = offset + 1
        leaf = leaf_hash(value)
        log.append(leaf)
        try:
            record = catalog.decode(value, AUDIT_ENTRY_SCHEMA)
        except DecodeError as exc:
            times.append(None)
            if len(found) < MAX_FINDINGS:
                detail = f"entry at offset {offset}: {exc.reason}: {exc.detail}"
                found.append(Finding("undecodable_entry", index, offset, detail, index))
            continue
        times.append(record["at"])
        chains.read(
            index,
            offset,
            writer=record["writer"],
            seq=record["writer_seq"],
            prev=record["writer_prev"],
            digest=sha256(value).digest(),
            leaf=leaf,
        )
    found.extend(chains.findings())
    found.sort(key=lambda f: f.seen_at)  # stable: at one entry, offsets and decoding come first
    return found, expected, chains.duplicates


def _offset_finding(index: int, offset: int, expected: int) -> Finding:
    if offset > expected:
        missing = f"{expected}" if offset - expected == 1 else f"{expected}..{offset - 1}"
        detail = f"offsets {missing} missing (deleted) before offset {offset}"
        return Finding("offset_gap", index, expected, detail, index)
    detail = f"offset {offset} comes after offset {expected - 1}: offsets must increase"
    return Finding("offset_order", index, offset, detail, index)


def _check_checkpoints(
    log_id: str,
    checkpoints: Iterable[bytes | Checkpoint],
    log: MerkleLog,
    *,
    next_offset: int,
    verify: VerifySignature,
    catalog: SchemaCatalog,
) -> tuple[list[_Placed], int, int, list[Checkpoint]]:
    """Every checkpoint problem, placed; the checkpoints read; the consistency steps checked;
    the checkpoints whose signatures verified."""
    placed: list[_Placed] = []
    read = 0
    signed: list[Checkpoint] = []
    for order, item in enumerate(checkpoints):
        try:
            checkpoint = item if isinstance(item, Checkpoint) else decode_checkpoint(catalog, item)
        except DecodeError as exc:
            detail = f"checkpoint record {order}: {exc.reason}: {exc.detail}"
            placed.append((0, order, Problem(log_id, "undecodable_checkpoint", detail)))
            continue
        if checkpoint.log_id != log_id:
            continue
        read += 1
        try:
            check_signature(checkpoint, verify)
        except VerificationError as exc:
            detail = f"{_name(checkpoint)} by key {checkpoint.signer_key_id!r}: {exc.reason}"
            placed.append(
                (checkpoint.tree_size, order, Problem(log_id, "checkpoint_signature", detail))
            )
            continue
        if checkpoint.tree_size > log.size:
            detail = (
                f"{_name(checkpoint)} but the log holds {log.size} entries: "
                f"entries {log.size}..{checkpoint.tree_size - 1} are gone (truncated)"
            )
            problem = Problem(log_id, "checkpoint_beyond_log", detail, next_offset, log.size)
            placed.append((checkpoint.tree_size, order, problem))
            continue
        signed.append(checkpoint)
    steps = _compare(log_id, signed, log, placed)
    return placed, read, steps, signed  # those beyond the log are named above: truncated


def _compare(
    log_id: str,
    signed: list[Checkpoint],
    log: MerkleLog,
    placed: list[_Placed],
) -> int:
    """Checkpoints (signed, within the log) against the tree and each other; returns steps."""
    ordered = sorted(signed, key=lambda c: (c.tree_size, c.at_ms))
    matches = [log.root_at(c.tree_size) == c.root_hash for c in ordered]
    by_size: dict[int, Checkpoint] = {}
    last_match: Checkpoint | None = None
    later_match = [False] * len(ordered)  # is there a matching checkpoint of a larger size?
    for i in range(len(ordered) - 2, -1, -1):
        bigger = ordered[i + 1].tree_size > ordered[i].tree_size
        later_match[i] = later_match[i + 1] or (bigger and matches[i + 1])
    steps = 0
    for i, (checkpoint, match) in enumerate(zip(ordered, matches, strict=True)):
        size = checkpoint.tree_size
        other = by_size.setdefault(size, checkpoint)
        if other.root_hash != checkpoint.root_hash:
            detail = f"{_name(other)} and {_name(checkpoint)} have different roots"
            placed.append((size, i, Problem(log_id, "fork", detail)))
        elif not match and later_match[i]:
            detail = f"{_name(checkpoint)} is not a prefix of a later checkpoint the log matches"
            placed.append((size, i, Problem(log_id, "fork", detail)))
        elif not match:
            first = 0 if last_match is None else last_match.tree_size
            placed.append((size, i, _Mismatch(checkpoint, first)))
        if not match:
            continue
        if last_match is not None:
            proof = log.consistency_proof(last_match.tree_size, size)
            steps += 1
            if not verify_consistency(
                last_match.tree_size, size, last_match.root_hash, checkpoint.root_hash, proof
            ):  # both match the tree, so this cannot fail unless the hashing is broken
                detail = f"{_name(checkpoint)} does not extend {_name(last_match)}"
                placed.append((size, i, Problem(log_id, "fork", detail)))
        last_match = checkpoint
    return steps


def _name_mismatch(log_id: str, mismatch: _Mismatch, findings: list[Finding]) -> Problem:
    checkpoint, first = mismatch.checkpoint, mismatch.first
    end = checkpoint.tree_size
    detail = (
        f"the log's first {end} entries do not have the root of {_name(checkpoint)}; "
        f"entries {first}..{end - 1} are in question"
    )
    for finding in findings:
        if first <= finding.index < end:
            detail += f"; {finding.reason} at offset {finding.offset}: {finding.detail}"
            return Problem(
                log_id,
                "checkpoint_root_mismatch",
                detail,
                finding.offset,
                finding.index,
                (first, end),
            )
    detail += (
        "; no chain names one of them (a writer's last entry edited, entries re-linked, "
        "entries of different writers swapped, or the checkpoint signs another history: "
        "the log alone cannot tell these apart)"
    )
    return Problem(log_id, "checkpoint_root_mismatch", detail, indices=(first, end))


def _as_problem(log_id: str, finding: Finding) -> Problem:
    return Problem(log_id, finding.reason, finding.detail, finding.offset, finding.index)


def _name(checkpoint: Checkpoint) -> str:
    at = checkpoint.at.isoformat(timespec="milliseconds")
    return f"checkpoint of size {checkpoint.tree_size} at {at}"
