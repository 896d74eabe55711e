"""Reading the per-writer hash chains of one log: which entry was edited, deleted or moved.

Each writer numbers its entries 0, 1, 2, ... and links each to the SHA-256
of its previous one (broker/audit/entries.py). Read in log order, for each
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
- a number already passed that fills no hole (a repeat, or one moved even
  further) is a ``sequence_reorder`` named where it appears.

Entries of different writers may interleave in any order; only a
checkpoint's root shows a reordering between writers.

:class:`ChainReader` keeps per writer a few fields and any open holes, so a
pass costs O(1) per entry. It records findings, each with the index at
which its evidence appeared, for the verifier to pick the first from.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.audit.entries import ZERO_HASH

__all__ = ["MAX_FINDINGS", "ChainReader", "Finding"]

MAX_FINDINGS = 1000
"""Findings kept per log: the first is reported, the rest only help name it."""


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
    __slots__ = ("holes", "last_hash", "last_index", "last_offset", "next_seq")

    def __init__(self) -> None:
        self.next_seq = 0
        self.last_hash = ZERO_HASH
        self.last_index = -1
        self.last_offset = -1
        self.holes: list[_Hole] = []


class ChainReader:
    """Follows every writer's chain through one log, entry by entry."""

    __slots__ = ("_findings", "_holes", "_writers")

    def __init__(self) -> None:
        self._writers: dict[str, _Writer] = {}
        self._findings: list[Finding] = []
        self._holes: list[tuple[str, _Hole]] = []

    def read(
        self, index: int, offset: int, *, writer: str, seq: int, prev: bytes, digest: bytes
    ) -> None:
        """Read the entry at ``index`` (its chain fields and the SHA-256 of its bytes)."""
        state = self._writers.get(writer)
        if state is None:
            state = self._writers[writer] = _Writer()
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
        else:
            self._late(index, offset, writer, seq, state)
            return  # the chain continues from the furthest entry, not from this one
        state.next_seq = seq + 1
        state.last_hash = digest
        state.last_index, state.last_offset = index, offset

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

    def _late(self, index: int, offset: int, writer: str, seq: int, state: _Writer) -> None:
        for hole in state.holes:
            if hole.first <= seq < hole.end:
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
