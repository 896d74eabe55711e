"""Audit entries: one per outcome, chained per writer, encoded as ``ixb.v1.AuditEntry``.

Several enforcer processes append to the same partition of ``ixb.audit``,
so none of them knows the index its entry will get. Each process therefore
keeps its own hash chain instead: a random ``writer`` id drawn at start-up, a
``writer_seq`` counting 0, 1, 2, ... and ``writer_prev``, the SHA-256 of the
writer's previous entry bytes (32 zero bytes before the first). Editing an
entry breaks the chain at the same writer's next entry, deleting one leaves
a gap in the sequence, and reordering makes the sequence go back, whatever
the other writers interleave (broker/auditor/verify.py reads it so).

For the chain to hold in one log, all of a writer's entries must land in
one partition, in the order written: key the records by the writer id and
produce them in order (one in flight, or an idempotent producer).

An entry names, digests and counts; it never carries a report value, withheld
or not: field paths, reason codes, ids and SHA-256 digests only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from broker.errors import DecodeError
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord

__all__ = [
    "AUDIT_ENTRY_SCHEMA",
    "ZERO_HASH",
    "AuditEntry",
    "AuditEvent",
    "AuditWriter",
    "FirstWritten",
    "Outcome",
    "SubmissionRef",
    "decode_entry",
    "entry_from_record",
    "epoch_ms",
    "from_epoch_ms",
]

AUDIT_ENTRY_SCHEMA = "ixb.v1.AuditEntry"
ZERO_HASH = bytes(32)
"""``writer_prev`` of a writer's first entry."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def epoch_ms(when: dt.datetime) -> int:
    """Milliseconds since the epoch, exactly (no float), as Avro timestamp-millis stores it."""
    if when.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return (when - _EPOCH) // _MS


def from_epoch_ms(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ms)


class Outcome(StrEnum):
    """What became of one submission for one recipient (or of a held delivery)."""

    DELIVERED = "delivered"
    WITHHELD = "withheld"  # the policy denied this recipient
    HELD = "held"  # allowed, but under embargo: on the held topic until due
    RELEASED = "released"  # a held delivery went out when due
    RELEASE_REFUSED = "release_refused"  # a held delivery was refused when due
    REFUSED = "refused"  # the submission was refused at intake


@dataclass(frozen=True, slots=True)
class SubmissionRef:
    """Where a submission was read, and the digest of its exact bytes."""

    topic: str
    partition: int
    offset: int
    sha256: bytes


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, as the pipeline reports it; the writer adds the chain."""

    outcome: Outcome
    at: dt.datetime
    origin: str
    recipient: str | None = None
    report_id: str | None = None
    submission: SubmissionRef | None = None
    delivery_id: str | None = None
    delivery_sha256: bytes | None = None
    agreement_id: str | None = None
    agreement_version: int | None = None
    policy_bundle_hash: str | None = None
    reasons: tuple[str, ...] = ()
    withheld_fields: tuple[str, ...] = ()
    derived_fields: tuple[str, ...] = ()
    registry_hash: str | None = None  # the registry version signatures were checked against


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A decoded entry: the writer's chain link and the event."""

    writer: str
    writer_seq: int
    writer_prev: bytes
    event: AuditEvent


class FirstWritten:
    """Holds back the exact copies of an entry the log holds more than once.

    Kafka producers are at-least-once: an entry whose acknowledgement was
    lost is sent again, and the log holds the same bytes twice. Counting or
    replaying both would report one decision as two. A copy is the same
    writer, number *and* bytes, as ``ixb audit verify`` tolerates it
    (broker/auditlog/chains.py); another entry under a used number is not a
    copy but tampering or a bug, which verify names (``sequence_reorder``),
    and it is passed on here so that it is counted and replayed, not hidden.
    """

    __slots__ = ("_digests", "repeats")

    def __init__(self) -> None:
        self._digests: dict[tuple[str, int], bytes] = {}  # (writer, seq) -> SHA-256 of bytes
        self.repeats = 0  # exact copies held back

    def first(self, entry: AuditEntry, value: bytes) -> bool:
        """False for an exact copy of an entry already passed on."""
        key, digest = (entry.writer, entry.writer_seq), hashlib.sha256(value).digest()
        first = self._digests.get(key)
        if first is None:
            self._digests[key] = digest
            return True
        if first == digest:
            self.repeats += 1
            return False
        return True  # another entry under a used number: verify names it


class AuditWriter:
    """One process's hash chain: encodes events as entries and advances the chain.

    Pure and not thread-safe: one per process (and per audit partition, if
    there are several), used by one task. ``entry`` advances the chain as
    soon as it returns, so every entry it returns must be written, in
    order; an entry lost on the way shows as a sequence gap in the audit.
    """

    __slots__ = ("_catalog", "_prev", "_seq", "writer")

    def __init__(self, catalog: SchemaCatalog, writer: str | None = None) -> None:
        self._catalog = catalog
        self.writer = writer if writer is not None else secrets.token_hex(8)
        self._seq = 0
        self._prev = ZERO_HASH

    @property
    def next_seq(self) -> int:
        return self._seq

    def record(self, topic: str, event: AuditEvent) -> OutboundRecord:
        """The entry for ``event`` as a record of ``topic``, keyed by this writer.

        The key keeps a writer's chain in one partition of the decision log.
        """
        return OutboundRecord(topic=topic, key=self.writer.encode(), value=self.entry(event))

    def entry(self, event: AuditEvent) -> bytes:
        """The encoded entry for ``event``, chained after this writer's previous one."""
        data = self._catalog.encode(
            AUDIT_ENTRY_SCHEMA, _record(self.writer, self._seq, self._prev, event)
        )
        self._seq += 1
        self._prev = hashlib.sha256(data).digest()
        return data


def _record(writer: str, seq: int, prev: bytes, event: AuditEvent) -> dict[str, Any]:
    sub = event.submission
    return {
        "writer": writer,
        "writer_seq": seq,
        "writer_prev": prev,
        "at": epoch_ms(event.at),
        "outcome": event.outcome.value,
        "origin": event.origin,
        "recipient": event.recipient,
        "report_id": event.report_id,
        "submission": None
        if sub is None
        else {
            "topic": sub.topic,
            "partition": sub.partition,
            "offset": sub.offset,
            "sha256": sub.sha256,
        },
        "delivery_id": event.delivery_id,
        "delivery_sha256": event.delivery_sha256,
        "agreement_id": event.agreement_id,
        "agreement_version": event.agreement_version,
        "policy_bundle_hash": event.policy_bundle_hash,
        "registry_hash": event.registry_hash,
        "reasons": list(event.reasons),
        "withheld_fields": list(event.withheld_fields),
        "derived_fields": list(event.derived_fields),
    }


def decode_entry(catalog: SchemaCatalog, data: bytes) -> AuditEntry:
    """Decode one entry; :class:`DecodeError` (by reason) for anything else."""
    return entry_from_record(catalog.decode(data, AUDIT_ENTRY_SCHEMA))


def entry_from_record(record: dict[str, Any]) -> AuditEntry:
    """The typed entry of a record the catalog decoded as ``ixb.v1.AuditEntry``."""
    sub = record["submission"]
    try:
        outcome = Outcome(record["outcome"])
    except ValueError:  # the schema's enum and Outcome disagree: a bug, not bad input
        raise DecodeError("unexpected_schema", "audit entry outcome is not known") from None
    event = AuditEvent(
        outcome=outcome,
        at=record["at"],
        origin=record["origin"],
        recipient=record["recipient"],
        report_id=record["report_id"],
        submission=None
        if sub is None
        else SubmissionRef(sub["topic"], sub["partition"], sub["offset"], sub["sha256"]),
        delivery_id=record["delivery_id"],
        delivery_sha256=record["delivery_sha256"],
        agreement_id=record["agreement_id"],
        agreement_version=record["agreement_version"],
        policy_bundle_hash=record["policy_bundle_hash"],
        reasons=tuple(record["reasons"]),
        withheld_fields=tuple(record["withheld_fields"]),
        derived_fields=tuple(record["derived_fields"]),
        registry_hash=record["registry_hash"],
    )
    return AuditEntry(record["writer"], record["writer_seq"], record["writer_prev"], event)
