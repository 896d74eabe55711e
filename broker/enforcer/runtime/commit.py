"""The one commit path: archive bundles, send outputs, wait for acknowledgement, commit.

Every task of the enforcer that writes to Kafka goes through here — the
runner (submissions to deliveries), the embargo releaser (held deliveries
to recipients) and the checkpoint publisher (the decision log's signed
checkpoints) — so the order below is written once (docs/ARCHITECTURE.md,
decision 2):

1. policy bundles archived for the first time are sent first and must be
   acknowledged before anything decided under them is sent: no output may
   name a bundle an auditor cannot load;
2. then the outputs, as one batch;
3. :meth:`CommitPath.send` returns only once Kafka acknowledged every
   record, and raises :class:`~broker.errors.TransportError` otherwise
   (nothing is then known to be written: the caller sends the same records
   again, and readers de-duplicate by stable ids);
4. only then does the caller commit the offsets the outputs came from
   (:meth:`CommitPath.commit`). Which offsets those are is the caller's
   business (the runner's batch, the releaser's first still-pending item);
   that they come after the acknowledgement is this module's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from broker.auditlog.bundles import BundleArchiver
from broker.errors import TransportError
from broker.kafka.base import BatchConsumer, BatchProducer
from broker.wire.records import OutboundRecord, Partition


@dataclass(frozen=True, slots=True)
class Outputs:
    """What one unit of work produced, in the two parts that are acknowledged in order."""

    archives: Sequence[OutboundRecord] = ()  # bundles not archived before (step 1)
    records: Sequence[OutboundRecord] = ()  # everything else (step 2)

    def __len__(self) -> int:
        return len(self.archives) + len(self.records)


class CommitPath:
    """Sends :class:`Outputs` in order and commits only what they were acknowledged for."""

    __slots__ = ("_archiver", "_consumer", "_producer")

    def __init__(
        self,
        producer: BatchProducer,
        *,
        archiver: BundleArchiver | None = None,
        consumer: BatchConsumer | None = None,
    ) -> None:
        self._producer = producer
        self._archiver = archiver
        self._consumer = consumer

    async def send(self, outputs: Outputs) -> None:
        """Steps 1 to 3: archives, then records, each acknowledged; TransportError if not."""
        for part in (outputs.archives, outputs.records):
            if part:
                await self._producer.send_all(part)
        if self._archiver is not None and outputs.archives:
            self._archiver.acknowledged(outputs.archives)

    async def send_until_acknowledged(
        self,
        outputs: Outputs,
        stop: asyncio.Event,
        *,
        retry_after_s: float,
        on_failure: Callable[[TransportError], None],
    ) -> bool:
        """:meth:`send` again after each failure; False if asked to stop first."""
        while True:
            try:
                await self.send(outputs)
                return True
            except TransportError as exc:
                on_failure(exc)
                if stop.is_set():
                    return False
                await asyncio.sleep(retry_after_s)

    async def commit(self, next_offsets: Mapping[Partition, int]) -> None:
        """Step 4, for outputs :meth:`send` returned from; TransportError if Kafka refused it."""
        if self._consumer is None:
            raise TypeError("this commit path has no consumer to commit for")
        if next_offsets:
            await self._consumer.commit(next_offsets)
