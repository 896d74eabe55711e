"""What the auditor holds from outside the broker, against the log the broker serves.

Whoever can write both ``ixb.audit`` and ``ixb.audit.checkpoints`` can delete
checkpoints, cut the log back to an older one, or serve each party a log of
its own: the topics alone cannot show it. So :func:`check_views` weighs the
log against two more kinds of evidence:

- **checkpoints held elsewhere** (:class:`HeldCheckpoint`): a witness's latest
  cosigned checkpoint (fetched from it, or kept in a file), an auditor's own
  copy of an older one. Each was signed by a broker key; none can be taken
  back by editing the topics;
- **cosignatures**: the partners' witnesses on each checkpoint (every copy of
  one tree head merged), counted by nation (broker/auditlog/witnessed.py).

It finds, each placed where its evidence shows (as broker/auditor/verify.py
places every problem):

==========================  ===================================================
reason                      ...
==========================  ===================================================
split_view                  a checkpoint the log does not match was cosigned by a
                            witness: the broker showed that witness another log;
                            both sides' witnesses are named
checkpoint_beyond_log       a held checkpoint is larger than the log: cut back
checkpoint_root_mismatch    a held checkpoint's root is not the log's at its size
no_checkpoint               the log has entries and no checkpoint signs any of them
no_quorum                   no checkpoint the log matches has the cosignatures of
                            ``quorum`` partners' witnesses
==========================  ===================================================

and how far the log is covered: the newest checkpoint it matches, the
newest with a quorum, and who cosigned it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from broker.auditlog.checkpoints import Checkpoint
from broker.auditlog.witnessed import WitnessKeys, merged
from broker.errors import DecodeError
from broker.trust.merkle import MerkleLog
from broker.trust.note import Note, parse_note

__all__ = ["HeldCheckpoint", "ViewFinding", "Views", "check_views"]


@dataclass(frozen=True, slots=True)
class HeldCheckpoint:
    """A checkpoint the auditor holds from outside the broker's topics (signature checked)."""

    size: int
    root: bytes
    note: Note
    source: str  # where it came from: a file, a witness's URL


@dataclass(frozen=True, slots=True)
class ViewFinding:
    position: int  # entries read when its evidence shows (as in verify.py)
    reason: str
    detail: str
    offset: int | None = None
    index: int | None = None


@dataclass(frozen=True, slots=True)
class Views:
    """How far the log is covered by checkpoints, and what contradicts it."""

    newest_size: int | None  # the largest checkpoint (of any source) the log matches
    witnessed_size: int | None  # the largest the log matches with the quorum asked
    cosigners: tuple[str, ...]  # nations that cosigned that one (or the newest, without quorum)
    held: int  # checkpoints held elsewhere that were weighed
    findings: list[ViewFinding] = field(default_factory=list)


@dataclass
class _Head:
    """One tree head (size, root), every copy of it merged."""

    size: int
    root: bytes
    notes: list[Note]
    labels: list[str]
    held: bool = False
    nations: tuple[str, ...] = ()


def check_views(
    log_id: str,
    log: MerkleLog,
    signed: Sequence[Checkpoint],
    held: Sequence[HeldCheckpoint],
    *,
    witnesses: WitnessKeys | None,
    quorum: int,
    next_offset: int,
) -> Views:
    """Weigh the log's signed checkpoints and those held elsewhere (see the module doc)."""
    heads = _heads(signed, held, witnesses)
    on_log = [h for h in heads if h.size <= log.size and log.root_at(h.size) == h.root]
    off_log = [h for h in heads if h not in on_log]
    cosigned_on = sorted({n for h in on_log for n in h.nations})
    findings = []
    for head in off_log:
        finding = _contradiction(log_id, log, head, cosigned_on, next_offset)
        if finding is not None:
            findings.append(finding)
    newest = max(on_log, key=lambda h: h.size, default=None)
    witnessed = None
    if quorum:
        witnessed = max(
            (h for h in on_log if len(h.nations) >= quorum), key=lambda h: h.size, default=None
        )
    end = log.size + 1  # after every entry: the whole log was needed to know it
    if log.size and newest is None:
        findings.append(
            ViewFinding(
                end,
                "no_checkpoint",
                f"{log_id}: {log.size} entries and no checkpoint signs any of them "
                "(deleted checkpoints, or a log never checkpointed)",
            )
        )
    elif log.size and quorum and witnessed is None:
        best = max(on_log, key=lambda h: (len(h.nations), h.size))
        named = ", ".join(best.nations) or "no witness"
        findings.append(
            ViewFinding(
                end,
                "no_quorum",
                f"{log_id}: no checkpoint the log matches is cosigned by {quorum} partners' "
                f"witnesses; the best, of size {best.size}, by {len(best.nations)} ({named})",
            )
        )
    chosen = witnessed if quorum else newest
    return Views(
        newest_size=None if newest is None else newest.size,
        witnessed_size=None if witnessed is None else witnessed.size,
        cosigners=() if chosen is None else chosen.nations,
        held=len(held),
        findings=findings,
    )


def _heads(
    signed: Sequence[Checkpoint], held: Sequence[HeldCheckpoint], witnesses: WitnessKeys | None
) -> list[_Head]:
    heads: dict[tuple[int, bytes], _Head] = {}
    for checkpoint in signed:
        try:
            note = parse_note(checkpoint.note)
        except DecodeError:
            continue  # verify.py refused it already: it never gets here
        at = checkpoint.at.isoformat(timespec="milliseconds")
        label = f"the checkpoint of size {checkpoint.tree_size} at {at}"
        head = heads.setdefault(
            (checkpoint.tree_size, checkpoint.root_hash),
            _Head(checkpoint.tree_size, checkpoint.root_hash, [], []),
        )
        head.notes.append(note)
        head.labels.append(label)
    for item in held:
        head = heads.setdefault((item.size, item.root), _Head(item.size, item.root, [], []))
        head.notes.append(item.note)
        head.labels.append(f"the checkpoint of size {item.size} held from {item.source}")
        head.held = True
    for head in heads.values():
        if witnesses is not None:
            head.nations = tuple(sorted(witnesses.cosigners(merged(head.notes))))
    return sorted(heads.values(), key=lambda h: (h.size, h.root))


def _contradiction(
    log_id: str, log: MerkleLog, head: _Head, cosigned_on: list[str], next_offset: int
) -> ViewFinding | None:
    """What a tree head the log does not match says; None if verify.py names it already."""
    label = head.labels[0]
    if head.size > log.size and head.held:
        return ViewFinding(
            head.size,
            "checkpoint_beyond_log",
            f"{log_id}: {label}, but the log holds {log.size} entries: entries "
            f"{log.size}..{head.size - 1} are gone (the log was cut back)",
            next_offset,
            log.size,
        )
    if head.nations and head.size <= log.size:
        other = ", ".join(cosigned_on) or "no witness"
        return ViewFinding(
            head.size,
            "split_view",
            f"{log_id}: {label} was cosigned by {', '.join(head.nations)} but the log "
            f"served here has another root at that size (its checkpoints cosigned by {other}): "
            "the broker showed those witnesses another log",
        )
    if head.held:
        return ViewFinding(
            head.size,
            "checkpoint_root_mismatch",
            f"{log_id}: the log's first {head.size} entries do not have the root of {label}",
        )
    return None  # a signed checkpoint off the log: verify.py names it (fork, mismatch)
