"""An in-memory Kafka for tests of the runtime, with faults a test injects.

Not a broker: one process, one consumer per group, no network. It keeps
what the runtime depends on — partitions with offsets, keys hashed to
partitions, committed offsets per group, pausing and rewinding, reading a
topic from a time — so the enforcer's runner, the embargo releaser and the
checkpoint publisher can be driven through their failure paths in
milliseconds:

- :meth:`MemoryProducer.lose_acknowledgements`: the next sends are written
  but reported as failed (Kafka wrote them; the answer was lost), so the
  caller sends them again and the log holds both;
- :meth:`MemoryProducer.refuse`: the next sends fail and write nothing;
- :meth:`MemoryConsumer.fail_fetches` and :meth:`MemoryConsumer.fail_commits`;
- :meth:`MemoryConsumer.revoke` / :meth:`MemoryConsumer.assign`: the group
  takes partitions away (the revoke hook runs first, as aiokafka's listener
  does) and gives them back from the committed offsets.

Integration tests run the same code against a real Kafka.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence

from broker.errors import TransportError
from broker.kafka.base import RevokeHook
from broker.wire.records import InboundRecord, OutboundRecord, Partition


class MemoryCluster:
    """Topics, their partitions' records, and each group's committed offsets."""

    def __init__(self, *, partitions: int = 3, clock: Callable[[], float] = time.time) -> None:
        self._default_partitions = partitions
        self._clock = clock
        self._logs: dict[str, list[list[InboundRecord]]] = {}
        self._round_robin = itertools.count()
        self.committed: dict[str, dict[Partition, int]] = {}  # by group

    def create(self, topic: str, partitions: int | None = None) -> None:
        self._logs.setdefault(topic, [[] for _ in range(partitions or self._default_partitions)])

    def topics(self) -> list[str]:
        return sorted(self._logs)

    def partitions(self, topic: str) -> int:
        return len(self._logs.get(topic, ()))

    def append(self, record: OutboundRecord, *, partition: int | None = None) -> InboundRecord:
        """Write one record (creating its topic) where its key hashes to, or to ``partition``."""
        self.create(record.topic)
        log = self._logs[record.topic]
        if partition is None:
            spread = zlib.crc32(record.key) if record.key is not None else next(self._round_robin)
            partition = spread % len(log)
        stored = InboundRecord(
            record.topic,
            partition,
            len(log[partition]),
            record.key,
            record.value,
            record.headers,
            int(self._clock() * 1000),
            log_append_time=True,  # the cluster's own clock, as LogAppendTime stamps it
        )
        log[partition].append(stored)
        return stored

    def records(self, topic: str) -> list[InboundRecord]:
        """Every record of ``topic``, partition by partition, in offset order."""
        return [r for log in self._logs.get(topic, ()) for r in log]

    def values(self, topic: str) -> list[bytes | None]:
        return [r.value for r in self.records(topic)]

    def read_from(self, partition: Partition, offset: int, limit: int) -> list[InboundRecord]:
        topic, number = partition
        log = self._logs.get(topic, ())
        return list(log[number][offset : offset + limit]) if number < len(log) else []

    def end(self, partition: Partition) -> int:
        topic, number = partition
        log = self._logs.get(topic, ())
        return len(log[number]) if number < len(log) else 0

    def producer(self) -> MemoryProducer:
        return MemoryProducer(self)

    def consumer(
        self, *, group_id: str, pattern: str, on_revoke: RevokeHook | None = None
    ) -> MemoryConsumer:
        return MemoryConsumer(self, group_id=group_id, pattern=pattern, on_revoke=on_revoke)

    async def read_topic(
        self,
        topic: str,
        *,
        idle_timeout_s: float,
        follow: bool = False,
        since: dt.datetime | None = None,
        start: Mapping[int, int] | None = None,
    ) -> AsyncIterator[InboundRecord]:
        """As :func:`broker.kafka.reader.read_topic`: to the end as it was, or on if ``follow``."""
        stamp = None if since is None else int(since.timestamp() * 1000)
        positions: dict[int, int] = {}
        for number in range(self.partitions(topic)):
            records = self.read_from((topic, number), 0, self.end((topic, number)))
            recent = (r.offset for r in records if stamp is None or r.timestamp_ms >= stamp)
            first = next(recent, None)
            positions[number] = self.end((topic, number)) if first is None else first
            if start is not None and number in start:
                positions[number] = start[number]
        ends = {number: self.end((topic, number)) for number in positions}
        while True:
            progressed = False
            for number, at in positions.items():
                limit = (ends[number] if not follow else self.end((topic, number))) - at
                for record in self.read_from((topic, number), at, max(0, limit)):
                    positions[number] = record.offset + 1
                    progressed = True
                    yield record
            if not follow and all(positions[n] >= ends[n] for n in positions):
                return
            if not progressed:
                await asyncio.sleep(min(0.01, idle_timeout_s))


class MemoryProducer:
    """Writes to a :class:`MemoryCluster`; faults are counted down one send at a time."""

    def __init__(self, cluster: MemoryCluster) -> None:
        self._cluster = cluster
        self._lost: list[str | None] = []  # one entry per send to fail; a topic it must carry
        self._refused: list[str | None] = []
        self.sends = 0  # send_all calls, failed ones included

    def lose_acknowledgements(self, sends: int = 1, *, carrying: str | None = None) -> None:
        """The next ``sends`` (with a record for that topic) are written, but reported failed."""
        self._lost += [carrying] * sends

    def refuse(self, sends: int = 1, *, carrying: str | None = None) -> None:
        """The next ``sends`` (with a record for that topic) fail and write nothing."""
        self._refused += [carrying] * sends

    async def send_all(self, records: Sequence[OutboundRecord]) -> None:
        self.sends += 1
        await asyncio.sleep(0)  # a real send yields to the loop; so does this one
        topics = {r.topic for r in records}
        if _due(self._refused, topics):
            raise TransportError("not acknowledged: the broker refused the batch (injected)")
        for record in records:
            self._cluster.append(record)
        if _due(self._lost, topics):
            raise TransportError("not acknowledged: the answer was lost (injected)")


def _due(faults: list[str | None], topics: set[str]) -> bool:
    """Whether the first fault waiting applies to a send to ``topics``; it is used up if so."""
    if faults and (faults[0] is None or faults[0] in topics):
        del faults[0]
        return True
    return False


class MemoryConsumer:
    """The only member of its group: it owns every partition of matching topics, unless revoked."""

    def __init__(
        self,
        cluster: MemoryCluster,
        *,
        group_id: str,
        pattern: str,
        on_revoke: RevokeHook | None = None,
    ) -> None:
        self._cluster = cluster
        self._group = group_id
        self._pattern = re.compile(pattern)
        self._on_revoke = on_revoke
        self._revoked: set[Partition] = set()
        self._positions: dict[Partition, int] = {}
        self._paused: dict[Partition, float] = {}  # monotonic time each pause ends
        self._failing_fetches = 0
        self._failing_commits = 0
        cluster.committed.setdefault(group_id, {})

    @property
    def committed(self) -> dict[Partition, int]:
        return self._cluster.committed[self._group]

    def fail_fetches(self, fetches: int = 1) -> None:
        self._failing_fetches += fetches

    def fail_commits(self, commits: int = 1) -> None:
        self._failing_commits += commits

    def assignment(self) -> frozenset[Partition]:
        owned = {
            (topic, number)
            for topic in self._cluster.topics()
            if self._pattern.fullmatch(topic)
            for number in range(self._cluster.partitions(topic))
        }
        return frozenset(owned - self._revoked)

    async def revoke(self, partitions: Iterable[Partition]) -> None:
        """The group takes ``partitions`` away: the revoke hook runs, then they are gone."""
        gone = frozenset(partitions) & self.assignment()
        if self._on_revoke is not None:
            await self._on_revoke(gone)
        self._revoked |= gone
        for partition in gone:
            self._positions.pop(partition, None)
            self._paused.pop(partition, None)

    def assign(self, partitions: Iterable[Partition]) -> None:
        """The group gives ``partitions`` back; they are read from the committed offsets."""
        self._revoked -= set(partitions)

    async def fetch(
        self, *, timeout_ms: int, max_records: int, overlapping: bool = False
    ) -> list[InboundRecord]:
        await asyncio.sleep(0)
        if self._failing_fetches:
            self._failing_fetches -= 1
            raise TransportError("fetch failed (injected)")
        now = time.monotonic()
        batch: list[InboundRecord] = []
        for partition in sorted(self.assignment()):
            if self._paused.get(partition, 0.0) > now:
                continue
            self._paused.pop(partition, None)
            at = self._positions.get(partition, self.committed.get(partition, 0))
            records = self._cluster.read_from(partition, at, max_records - len(batch))
            if records:
                self._positions[partition] = records[-1].offset + 1
                batch.extend(records)
            if len(batch) >= max_records:
                break
        if not batch:
            await asyncio.sleep(min(timeout_ms / 1000, 0.01))
        return batch

    async def commit(self, next_offsets: Mapping[Partition, int]) -> None:
        await asyncio.sleep(0)
        if self._failing_commits:
            self._failing_commits -= 1
            raise TransportError("commit failed (injected)")
        self.committed.update(next_offsets)

    def pause_at(self, offsets: Mapping[Partition, int], *, for_s: float) -> None:
        owned = self.assignment()
        resume_at = time.monotonic() + for_s
        for partition, offset in offsets.items():
            if partition in owned:
                self._positions[partition] = offset
                self._paused[partition] = resume_at
