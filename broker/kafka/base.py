"""The transport interface: the three Kafka-shaped things the enforcer's runtime uses.

Small protocols, in the spirit of httpx's transports, and deliberately
Kafka-shaped (partitions, offsets, commits, consumer groups): ixb stays
Kafka-native and does not abstract over "any broker". There are two
implementations:

- aiokafka's (:class:`~broker.kafka.consumer.SubmissionConsumer`,
  :class:`~broker.kafka.producer.OutputProducer`,
  :func:`~broker.kafka.reader.read_topic`), the one that runs;
- an in-memory one (:mod:`broker.kafka.memory`) with faults a test can
  inject (acknowledgements lost, partitions revoked, fetches and commits
  failing), for fast tests of the runner, the embargo releaser and the
  checkpoint publisher without a broker.

Both raise :class:`~broker.errors.TransportError` for anything Kafka did
not do; callers never see a client's own errors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from broker.wire.records import InboundRecord, OutboundRecord, Partition

RevokeHook = Callable[[frozenset[Partition]], Awaitable[None]]
"""Called with the partitions a group takes away, before the group rejoins."""


class BatchConsumer(Protocol):
    """A consumer-group member that fetches batches and commits explicit offsets.

    Nothing is committed on its own: the caller commits, per partition, the
    offset after the last record whose outputs Kafka acknowledged.
    """

    def assignment(self) -> frozenset[Partition]:
        """The partitions this member owns right now."""
        ...

    async def fetch(
        self, *, timeout_ms: int, max_records: int, overlapping: bool = False
    ) -> list[InboundRecord]:
        """The next batch, or none after ``timeout_ms``.

        Fetching again means the last batch is finished, unless
        ``overlapping``: it is still being committed and stays in flight.
        """
        ...

    async def commit(self, next_offsets: Mapping[Partition, int]) -> None:
        """Commit, per partition, the offset of the next record to process."""
        ...

    def pause_at(self, offsets: Mapping[Partition, int], *, for_s: float) -> None:
        """Rewind each partition to its offset and fetch nothing from it for ``for_s``."""
        ...


class BatchProducer(Protocol):
    """Sends a batch of records and returns only once Kafka acknowledged every one."""

    async def send_all(self, records: Sequence[OutboundRecord]) -> None: ...


class TopicReader(Protocol):
    """Reads one topic from its start (or a time, or given offsets) without a group."""

    def __call__(
        self,
        topic: str,
        *,
        idle_timeout_s: float,
        follow: bool = False,
        since: dt.datetime | None = None,
        start: Mapping[int, int] | None = None,
    ) -> AsyncIterator[InboundRecord]: ...
