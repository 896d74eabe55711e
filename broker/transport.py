"""Kafka, through aiokafka: the only module that imports it.

The enforcer sees three small things here: a consumer of submission topics
that fetches batches and commits explicit offsets, a producer that sends a
whole batch of outputs and returns only once every one is acknowledged, and
a feed reader for recipients and auditors. aiokafka's errors are wrapped in
:class:`~broker.errors.TransportError` at this boundary.

Tansu (the embedded broker) cannot serve aiokafka's idempotent producer, so
the producer uses ``acks=all`` without idempotence: delivery is at least
once, and every output carries a stable id for the receiver to de-duplicate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, NoError, TopicAlreadyExistsError, for_code

from broker.errors import TransportError

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class InboundRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


def _inbound(message: object) -> InboundRecord:
    m = message  # aiokafka ConsumerRecord; untyped
    return InboundRecord(
        topic=m.topic,  # type: ignore[attr-defined]
        partition=m.partition,  # type: ignore[attr-defined]
        offset=m.offset,  # type: ignore[attr-defined]
        key=m.key,  # type: ignore[attr-defined]
        value=m.value,  # type: ignore[attr-defined]
        headers=tuple(m.headers),  # type: ignore[attr-defined]
        timestamp_ms=m.timestamp,  # type: ignore[attr-defined]
    )


async def wait_until_ready(bootstrap: str, *, timeout_s: float = 30.0) -> None:
    """Return once the cluster answers a metadata request; TransportError after timeout."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    await _wait_for_listener(bootstrap, deadline)  # quietly, before aiokafka logs refusals
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.1)
        finally:
            await admin.close()
    raise TransportError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s: {last}")


async def _wait_for_listener(bootstrap: str, deadline: float) -> None:
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


class TopicAdmin:
    """Creates topics on demand (a real cluster may not auto-create them)."""

    __slots__ = ("_admin", "_known", "partitions", "replication")

    def __init__(self, bootstrap: str, *, partitions: int = 3, replication: int = 1) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._known: set[str] = set()
        self.partitions = partitions
        self.replication = replication

    async def start(self) -> None:
        try:
            await self._admin.start()
            self._known.update(await self._admin.list_topics())
        except KafkaError as exc:
            raise TransportError(f"cannot reach Kafka admin: {exc}") from exc

    async def close(self) -> None:
        await self._admin.close()

    async def ensure(self, topics: Iterable[str]) -> None:
        missing = sorted(set(topics) - self._known)
        if not missing:
            return
        new = [NewTopic(t, self.partitions, self.replication) for t in missing]
        try:
            response = await self._admin.create_topics(new)
        except KafkaError as exc:
            raise TransportError(f"cannot create topics {missing}: {exc}") from exc
        # aiokafka reports per-topic failures in the response, not by raising.
        failures = creation_failures(
            (entry[0], entry[1], entry[2]) for entry in response.topic_errors
        )
        if failures:
            raise TransportError(f"cannot create topics: {'; '.join(failures)}")
        self._known.update(missing)


def creation_failures(topic_errors: Iterable[tuple[str, int, str | None]]) -> list[str]:
    """The topics a CreateTopics response did not create, with why.

    "Already exists" is success for us: another enforcer or publisher won the race.
    """
    failures = []
    for topic, code, message in topic_errors:
        if code in (NoError.errno, TopicAlreadyExistsError.errno):
            continue
        failures.append(f"{topic}: {for_code(code).__name__} {message or ''}".rstrip())
    return failures


class OutputProducer:
    """Sends batches of outputs; returns only when every one is acknowledged.

    Every topic it writes to is registered with the client's metadata
    tracking before the first send. aiokafka tracks only topics it did not
    already know at start-up; once it tracks any, its metadata refreshes ask
    for those alone and forget the rest, and a record queued for a forgotten
    topic then fails after the request timeout with NotLeaderForPartition.
    """

    __slots__ = ("_admin", "_producer", "_tracked")

    def __init__(self, bootstrap: str, admin: TopicAdmin, *, client_id: str = "ixb") -> None:
        self._admin = admin
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=False,  # Tansu cannot serve InitProducerId (DESIGN.md)
            linger_ms=5,
            max_request_size=4 * 1024 * 1024,
        )
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
            pending = [
                await self._producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                for r in records
            ]
            await asyncio.gather(*pending)
        except KafkaError as exc:
            raise TransportError(f"output not acknowledged: {exc}") from exc


class SubmissionConsumer:
    """Consumes every topic matching a pattern as a member of a consumer group.

    Auto-commit is off: the runner commits explicit offsets after the batch's
    outputs are acknowledged.
    """

    __slots__ = ("_consumer", "_pattern")

    def __init__(
        self,
        bootstrap: str,
        *,
        group_id: str,
        pattern: str,
        max_poll_records: int,
        session_timeout_ms: int = 10_000,
        metadata_max_age_ms: int = 5000,
    ) -> None:
        self._pattern = pattern
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            fetch_max_wait_ms=100,
            metadata_max_age_ms=metadata_max_age_ms,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(100, session_timeout_ms // 5),
        )

    async def start(self) -> None:
        self._consumer.subscribe(pattern=self._pattern)
        try:
            await self._consumer.start()
        except KafkaError as exc:
            raise TransportError(f"cannot start consumer: {exc}") from exc

    async def stop(self) -> None:
        await self._consumer.stop()

    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member owns right now."""
        return frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())

    async def fetch(self, *, timeout_ms: int, max_records: int) -> list[InboundRecord]:
        try:
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise TransportError(f"fetch failed: {exc}") from exc
        return [_inbound(m) for messages in batches.values() for m in messages]

    async def commit(self, next_offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit, per partition, the offset of the next record to process."""
        if not next_offsets:
            return
        offsets = {TopicPartition(t, p): o for (t, p), o in next_offsets.items()}
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            raise TransportError(f"commit failed: {exc}") from exc


async def read_topic(
    bootstrap: str, topic: str, *, idle_timeout_s: float, follow: bool = False
) -> AsyncIterator[InboundRecord]:
    """Every record of ``topic`` from the beginning, without joining a group.

    Without ``follow`` it stops at the end of the topic as it was when the
    read began, or after ``idle_timeout_s`` without progress, whichever comes
    first; with ``follow`` it keeps waiting for new records.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    try:
        await consumer.start()
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            partitions = await _wait_for_partitions(consumer, topic, idle_timeout_s)
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return  # the topic does not exist (yet): nothing to read
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(assigned)
        idle_since = time.monotonic()
        while follow or time.monotonic() - idle_since < idle_timeout_s:
            if not follow and await _caught_up(consumer, ends):
                return
            batches = await consumer.getmany(timeout_ms=200)
            if batches:
                idle_since = time.monotonic()
            for messages in batches.values():
                for message in messages:
                    yield _inbound(message)
    except KafkaError as exc:
        raise TransportError(f"cannot read {topic}: {exc}") from exc
    finally:
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def _wait_for_partitions(
    consumer: AIOKafkaConsumer, topic: str, timeout_s: float
) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await consumer.topics()  # refreshes metadata
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        await asyncio.sleep(0.2)
    return set()
