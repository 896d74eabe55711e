"""Replay protection: a report id is accepted once, and only while it is fresh.

Two rules, together bounded in memory:

1. a report whose ``issued_at`` is older than the freshness window (or ahead
   of the broker's clock by more than the allowed skew, checked by the
   intake) is refused as ``stale_report``;
2. a report id already accepted is refused as ``replayed_report`` when it
   comes again from another position (topic, partition, offset). The same
   position again is not a replay but the at-least-once redo of a batch
   whose offsets were not committed, and goes through (with the same
   delivery ids, so recipients de-duplicate it).

Only ids inside the window need remembering: anything older is refused by
rule 1. The memory is rebuilt from Kafka, not trusted to the process: every
accepted submission writes one :data:`ACCEPTED_SCHEMA` record to the intake
ledger (``ixb.accepted``) in the same batch as its outputs, before the
offsets are committed, and an enforcer reads the ledger back before its
first batch and whenever its partition assignment changes.

Across processes: two copies of one report published on two partitions
owned by two processes at the same moment can both be accepted before
either sees the other's ledger line. They carry the same signed bytes, so
their deliveries have the same delivery ids and recipients de-duplicate
them; a publisher that keys submissions by report id (``ixb publish`` does)
puts every copy on one partition, where this cannot happen.
"""

from __future__ import annotations

import datetime as dt
import heapq
from typing import Any

from broker.errors import RejectedInput
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord

ACCEPTED_SCHEMA = "ixb.v1.AcceptedSubmission"

Position = tuple[str, int, int]  # topic, partition, offset


class ReplayGuard:
    """The report ids accepted inside the freshness window, and where each was accepted."""

    __slots__ = ("_expiry", "_seen", "window")

    def __init__(self, window: dt.timedelta) -> None:
        self.window = window
        self._seen: dict[str, Position] = {}  # report id -> where it was accepted
        self._expiry: list[tuple[dt.datetime, str]] = []  # heap of (issued_at, report id)

    def __len__(self) -> int:
        return len(self._seen)

    def check(
        self, report_id: str, issued_at: dt.datetime, position: Position, now: dt.datetime
    ) -> None:
        """Raise :class:`RejectedInput` for a stale report or a replay; otherwise return."""
        if issued_at < now - self.window:
            raise RejectedInput(
                "stale_report",
                f"issued_at is more than {int(self.window.total_seconds())} s old",
                stage="replay",
            )
        seen = self._seen.get(report_id)
        if seen is not None and seen != position:
            topic, partition, offset = seen
            raise RejectedInput(
                "replayed_report",
                f"report {report_id} was already accepted at {topic}/{partition}@{offset}",
                stage="replay",
            )

    def remember(self, report_id: str, issued_at: dt.datetime, position: Position) -> None:
        if report_id in self._seen:
            return  # the first acceptance stands; a redo changes nothing
        self._seen[report_id] = position
        heapq.heappush(self._expiry, (issued_at, report_id))

    def forget_older_than(self, now: dt.datetime) -> None:
        """Drop ids whose reports rule 1 now refuses anyway."""
        horizon = now - self.window
        while self._expiry and self._expiry[0][0] < horizon:
            _, report_id = heapq.heappop(self._expiry)
            self._seen.pop(report_id, None)

    def load(self, catalog: SchemaCatalog, ledger: InboundRecord) -> None:
        """Take one ledger record read back from Kafka; skip what is not a ledger line."""
        if ledger.value is None:
            return
        line = catalog.decode(ledger.value, ACCEPTED_SCHEMA)
        self.remember(
            line["report_id"], line["issued_at"], (line["topic"], line["partition"], line["offset"])
        )


def ledger_record(
    catalog: SchemaCatalog,
    topic: str,
    *,
    report_id: str,
    origin: str,
    issued_at: dt.datetime,
    payload_sha256: bytes,
    source: InboundRecord,
    now: dt.datetime,
) -> OutboundRecord:
    """The intake-ledger line for one accepted submission."""
    line: dict[str, Any] = {
        "report_id": report_id,
        "origin": origin,
        "issued_at": issued_at,
        "payload_sha256": payload_sha256,
        "topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
        "accepted_at": now,
    }
    return OutboundRecord(
        topic=topic, key=report_id.encode(), value=catalog.encode(ACCEPTED_SCHEMA, line)
    )
