"""Reading the per-writer hash chains of one log: which entry was edited, deleted or moved.

Each writer numbers its entries 0, 1, 2, ... and links each to the SHA-256
of its previous one (broker/auditlog/entries.py). Read in log order, for each
writer:

- the next number with the right link is fine;
- the next number with another link means the writer's previous entry is
  not what it was when the link was made: ``chain_broken`` names that
  previous entry (the edited one), not the entry where it shows;
- a number further on than the next leaves a hole. Whether the missing
  entries were deleted or only moved is known only later: if one of them
  turns up afterwards it is a ``sequence_reorder`` (named at the entry that
  came too early), otherwise a ``sequence_gap`` (named at the entry after
  the hole);
- a number already passed whose entry is byte for byte the one already read
  with that number is a duplicate: at-least-once noise (the producer re-sent
  a batch Kafka had partly acknowledged), counted, not a fault. It is still a
  leaf of the tree; only the chain reading lets it pass. An exact copy adds
  nothing an auditor could be misled by: it names the same decision again;
- a number already passed that fills no hole and is not such a copy (another
  entry with a reused number, or one moved even further) is a
  ``sequence_reorder`` named where it appears.

Entries of different writers may interleave in any order; only a
checkpoint's root shows a reordering between writers.

:class:`ChainReader` keeps per writer a few fields, any open holes and the
log index of each sequence number (8 bytes an entry, against the tree's
150), so a pass costs O(1) per entry; a repeat is compared with the first
entry by its leaf hash, which the tree already holds. It records findings,
each with the index at which its evidence appeared, for the verifier to pick
the first from.
"""

from __future__ import annotations

import hmac
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from broker.auditlog.entries import ZERO_HASH

__all__ = ["MAX_FINDINGS", "ChainReader", "Finding"]

MAX_FINDINGS = 1000
"""Findings kept per log: the first is reported, the rest only help name it."""

_MAX_SEQ_JUMP = 1 << 20
"""Index slots allowed beyond one per entry read, over all writers together. A sequence
number past that budget is not indexed (its repeats then read as reorders): forged huge
numbers, or a new writer per entry, must not make the reader allocate for them. An
honest log never reaches it: each writer's numbers are dense, one slot per entry."""
_UNSEEN = -1


@dataclass(frozen=True, slots=True)
class Finding:
    """Something wrong at one entry: ``index``/``offset`` name the entry, ``seen_at`` the
    index of the entry whose reading revealed it."""

    reason: str
    index: int
    offset: int
    detail: str
    seen_at: int


class _Hole:
    """Sequence numbers [first, end) of a writer missing before the entry at ``index``."""

    __slots__ = ("after_offset", "end", "filled_at", "first", "index", "offset", "seq")

    def __init__(
        self, first: int, end: int, *, index: int, offset: int, seq: int, after_offset: int
    ) -> None:
        self.first, self.end = first, end
        self.index, self.offset, self.seq = index, offset, seq
        self.after_offset = after_offset  # of the writer's entry before the hole; -1: none
        self.filled_at: tuple[int, int, int] | None = None  # (seq, index, offset) that came late


class _Writer:
    __slots__ = ("holes", "indices", "last_hash", "last_index", "last_offset", "next_seq")

    def __init__(self) -> None:
        self.next_seq = 0
        self.last_hash = ZERO_HASH
        self.last_index = -1
        self.last_offset = -1
        self.holes: list[_Hole] = []
        self.indices = array("q")  # seq -> log index of its first entry, _UNSEEN if none yet

    def index_of(self, seq: int) -> int:
        return self.indices[seq] if seq < len(self.indices) else _UNSEEN

    def place(self, seq: int, index: int, room: int) -> int:
        """Remember where ``seq`` was first read (a later repeat is compared with it).

        At most ``room`` new slots are allocated; returns how many were.
        """
        known = len(self.indices)
        if seq < known:
            if self.indices[seq] == _UNSEEN:
                self.indices[seq] = index
            return 0
        added = seq + 1 - known
        if added > room:
            return 0
        self.indices.extend([_UNSEEN] * (seq - known))
        self.indices.append(index)
        return added


class ChainReader:
    """Follows every writer's chain through one log, entry by entry.

    ``leaf_at(index)`` is the leaf hash of the entry at ``index`` of the same
    log (the tree being built alongside); ``duplicates`` counts the exact
    repeats let through.
    """

    __slots__ = ("_findings", "_holes", "_leaf_at", "_slots", "_writers", "duplicates")

    def __init__(self, leaf_at: Callable[[int], bytes]) -> None:
        self._leaf_at = leaf_at
        self._writers: dict[str, _Writer] = {}
        self._slots = 0  # index slots of all writers together (see _MAX_SEQ_JUMP)
        self._findings: list[Finding] = []
        self._holes: list[tuple[str, _Hole]] = []
        self.duplicates = 0

    def read(
        self,
        index: int,
        offset: int,
        *,
        writer: str,
        seq: int,
        prev: bytes,
        digest: bytes,
        leaf: bytes,
    ) -> None:
        """Read the entry at ``index``: its chain fields, the SHA-256 and leaf hash of its bytes."""
        state = self._writers.get(writer)
        if state is None:
            state = self._writers[writer] = _Writer()
        if seq < state.next_seq:
            self._late(index, offset, writer=writer, seq=seq, leaf=leaf, state=state)
            return  # the chain continues from the furthest entry, not from this one
        self._place(state, seq, index)
        if seq == state.next_seq:
            if prev != state.last_hash:
                self._link_mismatch(index, offset, writer, seq, state)
        elif seq > state.next_seq:
            hole = _Hole(
                state.next_seq,
                seq,
                index=index,
                offset=offset,
                seq=seq,
                after_offset=state.last_offset,
            )
            state.holes.append(hole)
            if len(self._holes) + len(self._findings) < MAX_FINDINGS:
                self._holes.append((writer, hole))
        state.next_seq = seq + 1
        state.last_hash = digest
        state.last_index, state.last_offset = index, offset

    def _place(self, state: _Writer, seq: int, index: int) -> None:
        self._slots += state.place(seq, index, room=index + 1 + _MAX_SEQ_JUMP - self._slots)

    def findings(self) -> list[Finding]:
        """Everything found, in the order the evidence appeared; holes decided by now."""
        found = list(self._findings)
        for writer, hole in self._holes:
            found.append(_hole_finding(writer, hole))
        found.sort(key=lambda f: f.seen_at)  # stable: ties keep the order they were found in
        return found

    def _link_mismatch(
        self, index: int, offset: int, writer: str, seq: int, state: _Writer
    ) -> None:
        if seq == 0:  # nothing came before: the first entry itself is wrong
            self._add(
                Finding(
                    "chain_broken",
                    index,
                    offset,
                    f"writer {writer}: entry seq 0 at offset {offset} links to a predecessor "
                    "that a first entry cannot have",
                    index,
                )
            )
            return
        self._add(
            Finding(
                "chain_broken",
                state.last_index,
                state.last_offset,
                f"writer {writer}: the entry seq {seq - 1} at offset {state.last_offset} is not "
                f"the one its successor seq {seq} at offset {offset} was linked to (edited)",
                index,
            )
        )

    def _late(
        self, index: int, offset: int, *, writer: str, seq: int, leaf: bytes, state: _Writer
    ) -> None:
        first = state.index_of(seq)
        if first != _UNSEEN:
            if hmac.compare_digest(self._leaf_at(first), leaf):
                self.duplicates += 1  # the same bytes again: re-sent, not reordered
                return
            self._add(
                Finding(
                    "sequence_reorder",
                    index,
                    offset,
                    f"writer {writer}: seq {seq} at offset {offset} is not the entry first read "
                    f"with that number (index {first}): one number, two entries",
                    index,
                )
            )
            return
        for hole in state.holes:
            if hole.first <= seq < hole.end:
                self._place(state, seq, index)
                if hole.filled_at is None:
                    hole.filled_at = (seq, index, offset)
                return
        self._add(
            Finding(
                "sequence_reorder",
                index,
                offset,
                f"writer {writer}: seq {seq} at offset {offset} comes after seq "
                f"{state.next_seq - 1} (offset {state.last_offset}): repeated or out of order",
                index,
            )
        )

    def _add(self, finding: Finding) -> None:
        if len(self._findings) + len(self._holes) < MAX_FINDINGS:
            self._findings.append(finding)


def _hole_finding(writer: str, hole: _Hole) -> Finding:
    missing = (
        f"seq {hole.first}" if hole.end - hole.first == 1 else f"seq {hole.first}..{hole.end - 1}"
    )
    if hole.filled_at is not None:
        seq, _, late_offset = hole.filled_at
        return Finding(
            "sequence_reorder",
            hole.index,
            hole.offset,
            f"writer {writer}: seq {hole.seq} at offset {hole.offset} comes before seq {seq}, "
            f"which is at offset {late_offset}",
            hole.index,
        )
    after = (
        "at the writer's start" if hole.after_offset < 0 else f"after offset {hole.after_offset}"
    )
    return Finding(
        "sequence_gap",
        hole.index,
        hole.offset,
        f"writer {writer}: {missing} missing (deleted) {after}, before seq {hole.seq} "
        f"at offset {hole.offset}",
        hole.index,
    )
