"""Records as ixb's code sees them, whatever client moved them.

The enforcer's stages, the decision log and the parties' libraries build
and read these plain values; only :mod:`broker.kafka` turns them into a
Kafka client's records and back, so nothing above it needs a client to name
a record type.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

Headers = tuple[tuple[str, bytes], ...]
Partition = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True, slots=True)
class InboundRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int
    # True when ``timestamp_ms`` is the time Kafka appended the record (the topic's
    # message.timestamp.type=LogAppendTime), which no producer chooses; False when
    # it is whatever the producer wrote (CreateTime).
    log_append_time: bool = False

    @property
    def appended_at(self) -> dt.datetime | None:
        """When Kafka appended the record, if Kafka stamped it; None otherwise."""
        if not self.log_append_time:
            return None
        return dt.datetime.fromtimestamp(self.timestamp_ms / 1000, dt.UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class UndecodableBatch(InboundRecord):
    """A record batch the consumer could not decode, standing in its records' place.

    Any producer may write a batch the consumer cannot read (a codec it
    lacks, a corrupt or CRC-failing batch), and the batch's records cannot be
    told apart, so it takes one place in the batch handed to the caller: the
    caller refuses it like a record and the commit path moves past it only
    once that refusal is acknowledged. ``offset`` is the batch's *last*
    offset, so committing it (``offsets_after``) moves past the whole batch;
    ``first_offset`` is where reading it failed. It has no key, value or
    headers: nothing of it could be read.
    """

    first_offset: int
    reason: str  # unsupported_codec, crc_mismatch or corrupt_batch
    detail: str  # for people; never payload bytes


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


def offsets_after(records: Iterable[InboundRecord]) -> dict[Partition, int]:
    """Per partition, the offset after the last of ``records``: what committing them means."""
    offsets: dict[Partition, int] = {}
    for r in records:
        key = (r.topic, r.partition)
        offsets[key] = max(offsets.get(key, 0), r.offset + 1)
    return offsets
