"""The producer of outputs: a whole batch sent, and returned from only once acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from broker.errors import TransportError
from broker.kafka.admin import TopicAdmin
from broker.kafka.security import client_options
from broker.wire.codec import schema_headers
from broker.wire.records import OutboundRecord

# One produce batch per partition and send: a bench batch's deliveries to one
# recipient partition fit in one (statements are some 6 KB each).
_BATCH_BYTES = 1024 * 1024


class OutputProducer:
    """Sends batches of outputs; returns only when every one is acknowledged.

    Idempotent unless told otherwise: Kafka then writes a batch that the
    client retried (a lost acknowledgement, a leader that moved) once, not
    twice. That removes the producer's own duplicates; a batch redone after
    a crash is still sent again, and its records carry the same delivery ids
    for the receiver to de-duplicate (at least once, see broker/kafka/__init__.py).
    Only a broker that cannot serve InitProducerId (Tansu) needs it off.

    Every topic it writes to is registered with the client's metadata
    tracking before the first send. aiokafka tracks only topics it did not
    already know at start-up; once it tracks any, its metadata refreshes ask
    for those alone and forget the rest, and a record queued for a forgotten
    topic then fails after the request timeout with NotLeaderForPartition.
    """

    __slots__ = ("_admin", "_partitioner", "_producer", "_tracked")

    def __init__(
        self, bootstrap: str, admin: TopicAdmin, *, client_id: str = "ixb", idempotent: bool = True
    ) -> None:
        self._admin = admin
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            **client_options(bootstrap),
            client_id=client_id,
            acks="all",
            enable_idempotence=idempotent,
            linger_ms=5,
            max_request_size=4 * 1024 * 1024,
            max_batch_size=_BATCH_BYTES,
        )
        self._partitioner = DefaultPartitioner()
        self._tracked: set[str] = set()

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as exc:
            raise TransportError(f"cannot start producer: {exc}") from exc

    async def stop(self) -> None:
        await self._producer.stop()

    async def send_all(self, records: Sequence[OutboundRecord]) -> None:
        """Enqueue all records without waiting on each, then wait for every ack."""
        if not records:
            return
        topics = {r.topic for r in records}
        await self._admin.ensure(topics)
        try:
            untracked = topics - self._tracked
            if untracked:
                await asyncio.gather(*(self._producer.client.add_topic(t) for t in untracked))
                self._tracked |= untracked
            pending = []
            for (topic, partition), group in (await self._by_partition(records)).items():
                pending += await self._send_batches(topic, partition, group)
            await asyncio.gather(*pending)
        except KafkaError as exc:
            raise TransportError(f"output not acknowledged: {exc}") from exc

    async def _by_partition(
        self, records: Sequence[OutboundRecord]
    ) -> dict[tuple[str, int], list[OutboundRecord]]:
        """Records grouped by the partition aiokafka's default partitioner gives their key."""
        partitions: dict[str, list[int]] = {}
        groups: dict[tuple[str, int], list[OutboundRecord]] = {}
        for r in records:
            known = partitions.get(r.topic)
            if known is None:
                known = partitions[r.topic] = sorted(await self._producer.partitions_for(r.topic))
            partition = self._partitioner(r.key, known, known)
            groups.setdefault((r.topic, partition), []).append(r)
        return groups

    async def _send_batches(
        self, topic: str, partition: int, records: list[OutboundRecord]
    ) -> list[asyncio.Future[Any]]:
        """One batch per partition (more if it fills): no future and no lookup per record."""
        futures = []
        batch = self._producer.create_batch()
        for r in records:
            headers = list(schema_headers(r.value, r.headers))  # every record names its schema
            if batch.append(key=r.key, value=r.value, timestamp=None, headers=headers) is None:
                batch.close()
                futures.append(await self._producer.send_batch(batch, topic, partition=partition))
                batch = self._producer.create_batch()
                # An empty batch takes any record (Kafka's max.request.size still applies).
                batch.append(key=r.key, value=r.value, timestamp=None, headers=headers)
        batch.close()
        futures.append(await self._producer.send_batch(batch, topic, partition=partition))
        return futures
