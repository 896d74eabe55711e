"""Checkpoints an auditor holds from outside the broker: files it kept, witnesses it asks.

An auditor who keeps the checkpoints it was once shown, or asks the partners'
witnesses for the last one each cosigned (tlog-witness's monitor endpoint),
holds evidence nobody who writes the broker's topics can take back. Each is
a bare C2SP checkpoint: its log signature is checked against the broker keys
of the registry, its origin names the log it is of (``<prefix>/<log id>``),
and it then weighs against that log like any other (broker/auditor/views.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from broker.auditlog.checkpoints import broker_note_keys
from broker.auditlog.log_notes import log_id_of_origin, open_log_note, origin_of
from broker.auditlog.witness_client import WitnessClient
from broker.auditor.source import AuditSource
from broker.auditor.views import HeldCheckpoint
from broker.errors import RejectedInput, VerificationError

__all__ = ["fetch_latest", "open_held"]

HeldByLog = dict[str, list[HeldCheckpoint]]


def open_held(source: AuditSource, notes: Iterable[tuple[str, bytes]]) -> HeldByLog:
    """The held checkpoints by log id; VerificationError naming the first that does not hold.

    ``notes`` are (where it came from, the note's bytes). A note no broker key
    of the registry signed, or of another deployment's log, is refused: it
    cannot be weighed, and silently leaving it out would hide what it shows.
    """
    keys = broker_note_keys(source.registry)
    held: HeldByLog = {}
    for label, data in notes:
        try:
            opened = open_log_note(data, keys)
        except RejectedInput as exc:
            raise VerificationError(
                exc.reason, f"the checkpoint held from {label}: {exc.detail}", stage="audit"
            ) from exc
        log_id = log_id_of_origin(opened.head.origin, source.origin_prefix)
        if log_id is None:
            raise VerificationError(
                "foreign_checkpoint",
                f"the checkpoint held from {label} is of {opened.head.origin}, "
                f"not a log under {source.origin_prefix}",
                stage="audit",
            )
        held.setdefault(log_id, []).append(
            HeldCheckpoint(opened.head.size, opened.head.root, opened.note, label)
        )
    return held


async def fetch_latest(
    source: AuditSource, witnesses: Sequence[WitnessClient], log_ids: Iterable[str]
) -> list[tuple[str, bytes]]:
    """Each witness's last cosigned checkpoint of each log, as (label, note) pairs.

    A witness that never cosigned a log has nothing to give; one that cannot
    be reached is a TransportError: verify cannot vouch for what it did not see.
    """
    found = []
    for log_id in sorted(set(log_ids)):
        origin = origin_of(log_id, source.origin_prefix)
        for witness in witnesses:
            note = await witness.latest(origin)
            if note is not None:
                found.append((f"witness {witness.url}", note))
    return found
