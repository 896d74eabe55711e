"""Kafka, through aiokafka: the only module that imports it.

The enforcer sees three small things here: a consumer of submission topics
that fetches batches and commits explicit offsets, a producer that sends a
whole batch of outputs and returns only once every one is acknowledged, and
a feed reader for recipients and auditors. aiokafka's errors are wrapped in
:class:`~broker.errors.TransportError` at this boundary.

Tansu (the embedded broker) cannot serve aiokafka's idempotent producer, so
the producer uses ``acks=all`` without idempotence: delivery is at least
once, and every output carries a stable id for the receiver to de-duplicate.

When the consumer group rebalances, the submission consumer lets the batch
in flight finish and commit before its partitions go (see
:class:`SubmissionConsumer`), so a rebalance does not make the next owner
redo work that was already delivered.

A partition can also be paused at a record the caller cannot process yet
(the policy engine could not decide): :meth:`SubmissionConsumer.pause_at`
rewinds it there and fetches nothing from it until the pause ends, so an
outage leaves the backlog in Kafka instead of in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, NoError, TopicAlreadyExistsError, for_code
from aiokafka.partitioner import DefaultPartitioner

from broker.errors import TransportError
from broker.topics import shape_of

log = structlog.get_logger("ixb.transport")

Headers = tuple[tuple[str, bytes], ...]
# One produce batch per partition and send: a bench batch's deliveries to one
# recipient partition fit in one (statements are some 6 KB each).
_BATCH_BYTES = 1024 * 1024
_GRACE_S = 0.1  # beyond a fetch's own timeout, before it stops waiting for the group
# What one fetch response may hold. A response stays in memory until every
# partition's share of it is consumed, so these bound the fetch buffer: at
# 8 MiB a 40,000-report backlog peaked 27 MB above a 20,000 one, at 2 MiB
# 2 MB, at the same throughput (bench/backlog_memory.py, 12 partitions). A
# record up to the codec's 1 MB limit still comes through (a partition's share
# is 1 MiB, and Kafka returns at least one batch).
FETCH_MAX_BYTES = 2 * 1024 * 1024
PARTITION_FETCH_MAX_BYTES = 1024 * 1024
Partition = tuple[str, int]  # (topic, partition)
RevokeHook = Callable[[frozenset[Partition]], Awaitable[None]]


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

    __slots__ = ("_admin", "_known", "ledger_retention", "partitions", "replication")

    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int = 3,
        replication: int = 1,
        ledger_retention: dt.timedelta | None = None,
    ) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._known: set[str] = set()
        self.partitions = partitions
        self.replication = replication
        self.ledger_retention = ledger_retention  # see broker.topics.shape_of

    async def start(self) -> None:
        try:
            await self._admin.start()
            self._known.update(await self._admin.list_topics())
        except KafkaError as exc:
            raise TransportError(f"cannot reach Kafka admin: {exc}") from exc

    async def close(self) -> None:
        await self._admin.close()

    async def topics(self) -> frozenset[str]:
        """Every topic the cluster has now (asked afresh, not from what ``ensure`` knows)."""
        try:
            return frozenset(await self._admin.list_topics())
        except KafkaError as exc:
            raise TransportError(f"cannot list topics: {exc}") from exc

    async def ensure(self, topics: Iterable[str]) -> None:
        missing = sorted(set(topics) - self._known)
        if not missing:
            return
        new = []
        for topic in missing:
            shape = shape_of(topic, ledger_retention=self.ledger_retention)
            partitions = shape.partitions or self.partitions
            configs = dict(shape.configs)
            new.append(NewTopic(topic, partitions, self.replication, topic_configs=configs))
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

    async def drift(self, topic: str) -> dict[str, str | None]:
        """The settings of :func:`broker.topics.shape_of` that ``topic`` does not have.

        Each maps to what the cluster holds instead (None: not reported). A
        topic made before ixb set them, or by hand, keeps what it was made
        with; the enforcer says so at start rather than changing it.
        """
        wanted = shape_of(topic, ledger_retention=self.ledger_retention).configs
        if not wanted:
            return {}
        # All of them: Tansu drops the connection when asked for named keys.
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        try:
            responses = await self._admin.describe_configs([resource])
        except KafkaError as exc:
            raise TransportError(f"cannot describe {topic}: {exc}") from exc
        held: dict[str, str | None] = {}
        for response in responses:
            for _code, _message, _type, _name, entries in response.resources:
                held.update((entry[0], entry[1]) for entry in entries)
        return {key: held.get(key) for key, value in wanted.items() if held.get(key) != value}


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

    __slots__ = ("_admin", "_partitioner", "_producer", "_tracked")

    def __init__(self, bootstrap: str, admin: TopicAdmin, *, client_id: str = "ixb") -> None:
        self._admin = admin
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=False,  # Tansu cannot serve InitProducerId (DESIGN.md)
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
            headers = list(r.headers)
            if batch.append(key=r.key, value=r.value, timestamp=None, headers=headers) is None:
                batch.close()
                futures.append(await self._producer.send_batch(batch, topic, partition=partition))
                batch = self._producer.create_batch()
                # An empty batch takes any record (Kafka's max.request.size still applies).
                batch.append(key=r.key, value=r.value, timestamp=None, headers=headers)
        batch.close()
        futures.append(await self._producer.send_batch(batch, topic, partition=partition))
        return futures


class SubmissionConsumer:
    """Consumes every topic matching a pattern as a member of a consumer group.

    Auto-commit is off: the caller commits explicit offsets after the batch's
    outputs are acknowledged.

    The batch in flight is the records the last :meth:`fetch` returned, from
    that return until :meth:`commit` covers them or the caller fetches again
    (it has finished with them, committed or not). A caller that commits
    one batch while it processes the next fetches with ``overlapping``: both
    are then in flight until committed. When the group takes
    partitions away, aiokafka has already stopped fetching and waits for our
    listener before it rejoins; the listener waits, at most ``revoke_wait_s``,
    for a batch in flight on those partitions to be committed, so their next
    owner starts after it instead of delivering it again. The consumer never
    commits anything itself: a batch the caller did not finish in time is
    simply not committed, and the next owner redoes all of it (at least once,
    never a half-processed batch). ``on_revoke`` then runs with the revoked
    partitions, for callers that keep per-partition state.

    Memory does not grow with the backlog: a fetch hands the caller at most
    ``max_poll_records`` records, and aiokafka fetches again for a partition
    only once everything it buffered for it was handed over. A response
    (at most :data:`PARTITION_FETCH_MAX_BYTES` per partition and
    :data:`FETCH_MAX_BYTES` in all) stays in memory until the last of its
    partitions is handed over, so the buffer is bounded by the number of
    partitions owned times a response, whatever waits in Kafka
    (bench/backlog_memory.py measures it).
    """

    __slots__ = (
        "_commit_failed",
        "_consumer",
        "_fetching",
        "_in_flight",
        "_last_committed",
        "_on_revoke",
        "_pattern",
        "_paused",
        "_revoke_wait_s",
        "_settled",
        "revocations",
    )

    def __init__(
        self,
        bootstrap: str,
        *,
        group_id: str,
        pattern: str,
        max_poll_records: int,
        session_timeout_ms: int = 10_000,
        metadata_max_age_ms: int = 5000,
        revoke_wait_s: float = 10.0,
        on_revoke: RevokeHook | None = None,
    ) -> None:
        self._pattern = pattern
        self._revoke_wait_s = revoke_wait_s
        self._on_revoke = on_revoke
        self._in_flight: dict[Partition, int] = {}  # next offset, per partition of the batch
        self._settled = asyncio.Event()  # no batch in flight
        self._settled.set()
        self._last_committed = False  # whether the last batch ended committed
        self._commit_failed = False  # a commit failed since the consumer last settled
        self._fetching: asyncio.Future[Any] | None = None  # a getmany still waiting
        self._paused: dict[Partition, float] = {}  # monotonic time each pause ends
        self.revocations = RevocationStats()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            fetch_max_wait_ms=100,
            fetch_max_bytes=FETCH_MAX_BYTES,
            max_partition_fetch_bytes=PARTITION_FETCH_MAX_BYTES,
            metadata_max_age_ms=metadata_max_age_ms,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(100, session_timeout_ms // 5),
        )

    async def start(self) -> None:
        self._consumer.subscribe(pattern=self._pattern, listener=_Listener(self._revoked))
        try:
            await self._consumer.start()
        except KafkaError as exc:
            raise TransportError(f"cannot start consumer: {exc}") from exc

    async def stop(self) -> None:
        self._settle()
        if self._fetching is not None:
            self._fetching.cancel()  # nobody is there to process what it would return
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await self._fetching
            self._fetching = None
        await self._consumer.stop()

    def assignment(self) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this member owns right now."""
        return frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())

    async def lag(self, *, timeout_s: float = 0.5) -> dict[Partition, int]:
        """Per partition owned, records not fetched yet: the highwater minus the position.

        For operators (the ``ixb_consumer_lag`` metric). A partition is left
        out while either number is unknown (no fetch response for it yet, or no
        position within ``timeout_s``), so asking never waits on the group.
        """
        lags: dict[Partition, int] = {}
        for tp in self._consumer.assignment():
            # Synchronous checks right before the call: the assignment cannot move in between.
            if tp not in self._consumer.assignment():
                continue
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await asyncio.wait_for(self._consumer.position(tp), timeout_s)
            except (TimeoutError, KafkaError):  # not positioned yet, or no longer ours
                continue
            lags[tp.topic, tp.partition] = max(0, highwater - position)
        return lags

    async def fetch(
        self, *, timeout_ms: int, max_records: int, overlapping: bool = False
    ) -> list[InboundRecord]:
        """The next batch, or none after ``timeout_ms``, even while the group rebalances.

        Calling it again means the caller has finished the last batch, unless
        ``overlapping``: the last batch is still being committed, and stays in
        flight with this one (see the class docstring).

        aiokafka's ``getmany`` waits out a rebalance in progress whatever its
        timeout, which would keep the caller from seeing its stop signal for
        as long as the group keeps rebalancing. So the wait goes on in a task
        that the next call picks up: no record is taken from the fetcher's
        buffer before the caller is there to receive it.
        """
        if not overlapping:
            self._settle()
        self._resume_due()
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(
                self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
            )
        done, _ = await asyncio.wait({self._fetching}, timeout=timeout_ms / 1000 + _GRACE_S)
        if not done:
            return []
        fetching, self._fetching = self._fetching, None
        try:
            batches = fetching.result()
        except KafkaError as exc:
            raise TransportError(f"fetch failed: {exc}") from exc
        records = [_inbound(m) for messages in batches.values() for m in messages]
        if records:
            for partition, offset in offsets_after(records).items():
                self._in_flight[partition] = max(self._in_flight.get(partition, 0), offset)
            self._last_committed = False
            self._settled.clear()
        return records

    async def commit(self, next_offsets: Mapping[Partition, int]) -> None:
        """Commit, per partition, the offset of the next record to process."""
        if not next_offsets:
            return
        offsets = {TopicPartition(t, p): o for (t, p), o in next_offsets.items()}
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # Those records stay uncommitted (their next owner redoes them); a later
            # batch fetched meanwhile is still in flight, and still waited for.
            self._commit_failed = True
            self._no_longer_in_flight(next_offsets)
            raise TransportError(f"commit failed: {exc}") from exc
        self._no_longer_in_flight(next_offsets)

    def _no_longer_in_flight(self, next_offsets: Mapping[Partition, int]) -> None:
        for partition, offset in next_offsets.items():
            if self._in_flight.get(partition, offset + 1) <= offset:
                del self._in_flight[partition]
        if not self._in_flight:
            self._settle(committed=True)

    def pause_at(self, offsets: Mapping[Partition, int], *, for_s: float) -> None:
        """Rewind each partition to its offset and fetch nothing from it for ``for_s`` seconds.

        For a record the caller cannot process yet: it commits what it
        processed before that record, then gives the rest of the batch in
        flight on that partition back with this call. Those records are
        fetched again when the pause ends (by :meth:`fetch`), or by the
        partition's next owner from the committed offset, which is the same
        place. Partitions no longer ours are skipped for that reason.
        """
        owned = self._consumer.assignment()
        resume_at = time.monotonic() + for_s
        for partition, offset in offsets.items():
            self._in_flight.pop(partition, None)  # given back: not waited for on revoke
            tp = TopicPartition(*partition)
            if tp not in owned:
                continue
            self._consumer.seek(tp, offset)  # also drops what aiokafka buffered beyond it
            self._consumer.pause(tp)
            self._paused[partition] = resume_at
        if not self._in_flight:
            self._settle(committed=True)

    def _resume_due(self) -> None:
        if not self._paused:
            return
        now = time.monotonic()
        owned = self._consumer.assignment()
        for partition in [p for p, at in self._paused.items() if at <= now]:
            del self._paused[partition]
            tp = TopicPartition(*partition)
            if tp in owned:
                self._consumer.resume(tp)

    def _settle(self, *, committed: bool = False) -> None:
        """No batch is in flight any more; ``committed`` says how the last one ended."""
        if not self._settled.is_set():
            self._last_committed = committed and not self._commit_failed
        self._commit_failed = False
        self._in_flight = {}
        self._settled.set()

    async def _revoked(self, revoked: frozenset[Partition]) -> None:
        """Called by aiokafka before the group rejoins; see the class docstring."""
        if not revoked:
            return  # the first join: nothing was ours yet
        self.revocations.revoked += 1
        for partition in revoked:
            self._paused.pop(partition, None)  # a partition comes back unpaused
        waiting_on = revoked & self._in_flight.keys()
        if waiting_on:
            await self._wait_for_batch(len(waiting_on))
        if self._on_revoke is not None:
            await self._on_revoke(revoked)

    async def _wait_for_batch(self, partitions: int) -> None:
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), self._revoke_wait_s)
        waited_s = round(time.monotonic() - started, 3)
        if self._settled.is_set() and self._last_committed:
            self.revocations.drained += 1
            log.info("revoke_waited_for_batch", partitions=partitions, waited_s=waited_s)
        else:
            self.revocations.abandoned += 1
            log.warning("revoked_with_batch_in_flight", partitions=partitions, waited_s=waited_s)


@dataclass(slots=True)
class RevocationStats:
    """What became of the batch in flight when the group took partitions away."""

    revoked: int = 0  # rebalances that took partitions from this consumer
    drained: int = 0  # ... with a batch in flight that then committed in time
    abandoned: int = 0  # ... with a batch in flight that did not (its next owner redoes it)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's rebalance callbacks, as plain partition sets for the consumer."""

    def __init__(self, revoked: RevokeHook) -> None:
        self._revoked = revoked

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._revoked(frozenset((tp.topic, tp.partition) for tp in revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Nothing to do: a new owner starts at the group's committed offsets."""


def offsets_after(records: Iterable[InboundRecord]) -> dict[Partition, int]:
    """Per partition, the offset after the last of ``records``: what committing them means."""
    offsets: dict[Partition, int] = {}
    for r in records:
        key = (r.topic, r.partition)
        offsets[key] = max(offsets.get(key, 0), r.offset + 1)
    return offsets


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    idle_timeout_s: float,
    follow: bool = False,
    since: dt.datetime | None = None,
    start: Mapping[int, int] | None = None,
) -> AsyncIterator[InboundRecord]:
    """Every record of ``topic`` from the beginning, without joining a group.

    Without ``follow`` it stops at the end of the topic as it was when the
    read began, or after ``idle_timeout_s`` without progress, whichever comes
    first; with ``follow`` it keeps waiting for new records. With ``since``
    each partition is read from its first record stamped at or after that
    time, where the cluster can say which that is (Kafka can; the embedded
    broker answers with the first record, so everything is read). ``start``
    gives partitions (by number) an offset to begin at instead.
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
        await _seek_to_start(consumer, assigned, since)
        for tp in assigned:
            if start is not None and tp.partition in start:
                consumer.seek(tp, start[tp.partition])
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


async def _seek_to_start(
    consumer: AIOKafkaConsumer, assigned: list[TopicPartition], since: dt.datetime | None
) -> None:
    """Each partition's first record, or its first stamped at or after ``since``."""
    if since is None:
        await consumer.seek_to_beginning(*assigned)
        return
    stamp = int(since.timestamp() * 1000)
    found = await consumer.offsets_for_times(dict.fromkeys(assigned, stamp))
    for tp in assigned:
        at = found.get(tp)  # None: nothing that recent in the partition
        if at is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, at.offset)


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
