"""Record batches aiokafka cannot decode: which partition, where, why, and how far to skip.

Any producer may write a batch the consumer cannot read: compressed with a
codec whose library is missing, failing its CRC, or corrupt inside. aiokafka
0.14 decodes a partition's batches lazily, while ``getmany`` hands records
over (``Fetcher.fetched_records`` → ``FetchResult.getall`` →
``PartitionRecords._unpack_records``), and whatever the decoder raises comes
straight out of ``getmany``:

- ``UnsupportedCodecError`` (a ``KafkaError``) when the codec's library is
  missing or the codec id is unknown;
- ``CorruptRecordException`` (a ``KafkaError``) for a CRC mismatch or a
  malformed record;
- the codec library's own error for a compressed payload that does not
  decompress (cramjam's ``DecompressionError``, ``zlib.error``, ``EOFError``,
  ``gzip.BadGzipFile``), which are not ``KafkaError`` at all.

None of them says which partition or offset failed, and the call that raises
loses what it had decoded: the failing partition's records before the bad
batch are fetched again (its position has not moved), but records of *other*
partitions drained in the same call are lost for good (their positions have
moved on; measured here, two of twenty records skipped). The position does
not move past the batch either, so the same error comes back on every fetch:
the enforcer stalled, logging it every half second.

:func:`bad_batch` recovers what aiokafka knew when it failed. The error
passes through the generator frame of ``PartitionRecords._unpack_records``,
whose locals hold the partition (``self._tp``), the offset it had reached
(``self.next_fetch_offset``) and the batch it was reading (``next_batch``, its
header parsed even when its records cannot be): base and next offset, codec,
CRC. This reads aiokafka's private structure, so it is pinned by the version
range in pyproject.toml and held to it by tests (tests/integration/test_codecs.py):
if a new aiokafka moves it, :func:`bad_batch` returns ``None`` and the error
is reported as a fetch failure, as before, instead of skipping anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import UnsupportedCodecError

from broker.kafka.records import inbound
from broker.wire.records import InboundRecord, Partition, UndecodableBatch

log = structlog.get_logger("ixb.transport")

_FETCHER_MODULE = "aiokafka.consumer.fetcher"
_CODECS = {0: "uncompressed", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


@dataclass(frozen=True, slots=True)
class BadBatch:
    """Where decoding failed, and the offset after the batch that failed."""

    topic: str
    partition: int
    first_offset: int  # where the consumer had got to: the batch's start, or inside it
    next_offset: int  # the offset after the batch; first_offset + 1 when its header is unknown
    reason: str  # unsupported_codec, crc_mismatch or corrupt_batch
    codec: str
    error_kind: str  # the exception's type name: never its text, which may quote payload bytes

    @property
    def last_offset(self) -> int:
        return self.next_offset - 1

    @property
    def detail(self) -> str:
        return (
            f"record batch at offsets {self.first_offset}..{self.last_offset} ({self.codec}) "
            f"could not be decoded: {self.error_kind}"
        )


class RecordTaker:
    """Takes records out of an aiokafka consumer's buffer so that no decode error loses any."""

    __slots__ = ("_consumer", "_stop_at")

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        # Per partition, a batch that failed to decode in a call that may have lost
        # records before it: records are taken one at a time until past it.
        self._stop_at: dict[TopicPartition, int] = {}

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Partitions no longer ours: their next owner starts afresh."""
        for partition in partitions:
            self._stop_at.pop(TopicPartition(*partition), None)

    async def take(self, timeout_ms: int, max_records: int) -> list[InboundRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout_ms`` for the first.

        A batch that cannot be decoded is handed over as one
        :class:`~broker.wire.records.UndecodableBatch` in its place, and the
        partition's position moves past it (a seek; what is *committed* is
        the caller's to say, after the refusal is acknowledged).

        ``getmany`` raises whatever a decoder raises, and a call that raises
        loses the records it drained from other partitions before
        (broker/kafka/undecodable.py). So only a call for a single record
        spans every partition: it stops at the first partition that has one,
        and one that raises has decoded nothing. The rest is taken a
        partition at a time, where an error loses only records of that
        partition, which its unmoved position fetches again.
        """
        taken: dict[TopicPartition, list[InboundRecord]] = {}
        if not await self._take_from((), timeout_ms, 1, taken):
            return []
        budget = max_records - sum(map(len, taken.values()))
        try:
            for tp in [*taken, *(tp for tp in self._consumer.assignment() if tp not in taken)]:
                while budget > 0:
                    limit = 1 if tp in self._stop_at else budget
                    got = await self._take_from((tp,), 0, limit, taken)
                    budget -= got
                    if got < limit:
                        break
        except Exception as exc:  # noqa: BLE001 - what was taken has left aiokafka's buffer
            # Hand it over, or it is lost; a lasting error (authorization, the
            # group) comes back on the next call, before anything is taken.
            log.warning(
                "fetch_cut_short",
                error_kind=type(exc).__name__,
                records=sum(map(len, taken.values())),
            )
        return [r for records in taken.values() for r in records]

    async def _take_from(
        self,
        partitions: tuple[TopicPartition, ...],
        timeout_ms: int,
        limit: int,
        taken: dict[TopicPartition, list[InboundRecord]],
    ) -> int:
        """Up to ``limit`` records from ``partitions`` (all when empty) into ``taken``; how many.

        An undecodable batch counts as one record.
        """
        try:
            batches = await self._consumer.getmany(
                *partitions, timeout_ms=timeout_ms, max_records=limit
            )
        except Exception as exc:
            bad = bad_batch(exc)
            if bad is None:
                raise
            return self._refuse(bad, taken, decoded_nothing=limit == 1)
        count = 0
        for tp, messages in batches.items():
            records = [inbound(m) for m in messages]
            taken.setdefault(tp, []).extend(records)
            count += len(records)
            stop_at = self._stop_at.get(tp)
            if stop_at is not None and records and records[-1].offset >= stop_at:
                del self._stop_at[tp]  # past it after all: it decoded this time
        return count

    def _refuse(
        self,
        bad: BadBatch,
        taken: dict[TopicPartition, list[InboundRecord]],
        *,
        decoded_nothing: bool,
    ) -> int:
        """Hand ``bad`` over in its records' place and seek past it; 1, or 0 if not yet."""
        tp = TopicPartition(bad.topic, bad.partition)
        if not decoded_nothing:
            # Records of the partition before the batch may have been decoded in
            # this call and lost with it; its position has not moved, so they are
            # fetched again, and taken one at a time until the batch.
            self._stop_at[tp] = bad.first_offset
            return 0
        if tp not in self._consumer.assignment():
            return 0  # no longer ours: its next owner finds it
        self._stop_at.pop(tp, None)
        self._consumer.seek(tp, bad.next_offset)
        log.error(
            "undecodable_batch",
            topic=bad.topic,
            partition=bad.partition,
            first_offset=bad.first_offset,
            last_offset=bad.last_offset,
            reason=bad.reason,
            codec=bad.codec,
            error_kind=bad.error_kind,
        )
        taken.setdefault(tp, []).append(
            UndecodableBatch(
                topic=bad.topic,
                partition=bad.partition,
                offset=bad.last_offset,
                key=None,
                value=None,
                headers=(),
                timestamp_ms=-1,
                first_offset=bad.first_offset,
                reason=bad.reason,
                detail=bad.detail,
            )
        )
        return 1


def bad_batch(exc: BaseException) -> BadBatch | None:
    """The batch ``exc`` was raised on while aiokafka decoded it, or None if it was not."""
    frame = _unpack_records_frame(exc)
    if frame is None:
        return None
    records = frame.f_locals.get("self")
    tp = getattr(records, "_tp", None)
    first = getattr(records, "next_fetch_offset", None)
    if tp is None or not isinstance(first, int):
        return None
    batch = frame.f_locals.get("next_batch")
    next_offset = getattr(batch, "next_offset", None)
    if not isinstance(next_offset, int) or next_offset <= first:
        # The batch's own header could not be read (or the local is the batch
        # before it): skip one offset, and the next fetch finds out about the rest.
        batch, next_offset = None, first + 1
    return BadBatch(
        topic=tp.topic,
        partition=tp.partition,
        first_offset=first,
        next_offset=next_offset,
        reason=_reason(exc, batch),
        codec=_CODECS.get(getattr(batch, "compression_type", -1), "unknown codec"),
        error_kind=type(exc).__name__,
    )


def _reason(exc: BaseException, batch: object) -> str:
    if isinstance(exc, UnsupportedCodecError):
        return "unsupported_codec"
    validate_crc = getattr(batch, "validate_crc", None)
    if callable(validate_crc) and not validate_crc():
        return "crc_mismatch"
    return "corrupt_batch"


def _unpack_records_frame(exc: BaseException) -> FrameType | None:
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if (
            frame.f_code.co_name == "_unpack_records"
            and frame.f_globals.get("__name__") == _FETCHER_MODULE
        ):
            return frame
        tb = tb.tb_next
    return None
