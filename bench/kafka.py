"""Raw aiokafka for the bench: the passthrough baseline and the probes that watch ixb.

The passthrough is the yardstick for the pipeline, so it uses the client
settings of ``broker/kafka/`` (group consumer without auto-commit,
``acks=all`` producer without idempotence, closed batches, the same fetch wait)
and does everything the enforcer does except ixb's own work: consume a
batch, produce each record to three topics, wait for every acknowledgement,
commit. The probes only read committed offsets and group membership, or
receive deliveries, to time ixb from outside its process.
"""
# ruff: noqa: TID251 - a baseline without ixb, and probes outside it, must talk to Kafka directly

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from broker.kafka.admin import TopicAdmin
from broker.kafka.producer import OutputProducer
from broker.kafka.security import client_options
from broker.wire.records import OutboundRecord


@dataclass(frozen=True, slots=True)
class Span:
    """Reports completed over time, from the first observation in the window to the last."""

    total: int  # completed reports in the window, in the end
    at_start: int  # already completed at the first observation
    start_s: float  # perf_counter of the first observation
    end_s: float  # perf_counter when ``total`` was first observed

    @property
    def elapsed_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def per_s(self) -> float:
        elapsed = self.elapsed_s
        return (self.total - self.at_start) / elapsed if elapsed > 0 else float("nan")


class RunFailed(RuntimeError):
    """A measured run did not complete (an enforcer died, a group did not form, time ran
    out): no figure is better than a wrong one."""


def _producer(bootstrap: str, client_id: str, *, idempotent: bool) -> AIOKafkaProducer:
    # As broker.kafka.producer.OutputProducer, except the linger: ixb (the enforcer and
    # the publisher) sends closed batches, which never linger; the paced producer
    # sends record by record, and a linger would add its wait to every latency.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **client_options(bootstrap),
        client_id=client_id,
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=0,
        max_request_size=4 * 1024 * 1024,
    )


async def passthrough(
    bootstrap: str,
    *,
    pattern: str,
    group_id: str,
    routes: Mapping[str, Sequence[str]],
    warm_up: int,
    expected: int,
    batch_max: int,
    session_timeout_ms: int,
    timeout_s: float,
    idempotent: bool,
) -> Span:
    """Consume ``expected`` records, produce each to its ``routes``; commit per batch.

    The clock starts after the first ``warm_up`` records, as for the enforcers.
    """
    consumer = AIOKafkaConsumer(  # as broker.kafka.consumer.SubmissionConsumer
        bootstrap_servers=bootstrap,
        **client_options(bootstrap),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch_max,
        fetch_max_wait_ms=100,
        metadata_max_age_ms=5000,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(100, session_timeout_ms // 5),
    )
    # Produced as the enforcer produces (broker.kafka.producer: one batch per partition).
    admin = TopicAdmin(bootstrap)
    producer = OutputProducer(
        bootstrap, admin, client_id="ixb-bench-passthrough", idempotent=idempotent
    )
    consumer.subscribe(pattern=pattern)
    await consumer.start()
    await admin.start()
    await producer.start()
    done, first, first_done, last = 0, 0.0, 0, 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while done < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=batch_max)
            outputs = [
                OutboundRecord(topic, m.key, m.value)
                for messages in batches.values()
                for m in messages
                for topic in routes[m.topic]
            ]
            if not outputs:
                continue
            await producer.send_all(outputs)
            await consumer.commit(
                {tp: messages[-1].offset + 1 for tp, messages in batches.items() if messages}
            )
            done += sum(len(messages) for messages in batches.values())
            last = time.perf_counter()
            if not first and done > warm_up:
                first, first_done = last, done - warm_up
    finally:
        await producer.stop()
        await admin.close()
        await consumer.stop()
    if done < expected or not first:
        raise RunFailed(f"passthrough moved {done} of {expected} records in {timeout_s:.0f} s")
    return Span(done - warm_up, first_done, first, last)


class GroupProbe:
    """A consumer group's committed offsets and membership, watched without joining it.

    Committed offsets, not end offsets: Tansu's ListOffsets answers are not
    the high watermark (measured: 13 for 50 records in one produce batch).
    On Apache Kafka both would do.
    """

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self._group = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            **client_options(bootstrap),
            group_id=group_id,
            enable_auto_commit=False,
        )
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(bootstrap))
        self._group_id = group_id

    async def start(self) -> None:
        await self._group.start()
        await self._admin.start()

    async def stop(self) -> None:
        await self._group.stop()
        await self._admin.close()

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        """Every partition of ``topics`` (asked of the cluster: the probe tracks no topic)."""
        described = await self._admin.describe_topics(list(topics))
        return sorted(
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if t["error_code"] == 0
            for p in t["partitions"]
        )

    async def committed_total(self, partitions: Sequence[TopicPartition]) -> int:
        """Records committed over ``partitions`` (offsets are contiguous from 0 here)."""
        committed = await asyncio.gather(*(self._group.committed(tp) for tp in partitions))
        return sum(c or 0 for c in committed)

    async def members(self) -> tuple[str, int]:
        """The group's state (e.g. ``Stable``) and how many consumers are in it."""
        responses = await self._admin.describe_consumer_groups([self._group_id])
        groups = [group for response in responses for group in response.groups]
        if not groups:
            return "", 0
        return str(groups[0][2]), len(groups[0][5])


class DeliveryWatcher:
    """Receives every record of some topics and reports its key, arrival time and stamp."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            **client_options(bootstrap),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Tansu answers a waiting fetch as soon as a record arrives (as Kafka does), so
            # a longer wait adds no latency; it spares the shared broker empty polls.
            fetch_max_wait_ms=100,
            max_poll_records=5000,
        )

    async def start(self, partitions: Sequence[TopicPartition]) -> None:
        await self._consumer.start()
        self._consumer.assign(list(partitions))
        await self._consumer.seek_to_beginning(*partitions)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def run(
        self, on_arrival: Callable[[bytes, float, int], None], stop: asyncio.Event
    ) -> None:
        """``on_arrival(key, perf_counter now, the record's timestamp in ms)`` per record."""
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for messages in batches.values():
                for m in messages:
                    on_arrival(m.key or b"", now, m.timestamp)


class PacedProducer:
    """Sends records at a fixed rate and notes when each one was handed to Kafka."""

    def __init__(self, bootstrap: str, *, idempotent: bool) -> None:
        self._producer = _producer(bootstrap, "ixb-bench-paced", idempotent=idempotent)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(
        self,
        records: Sequence[tuple[str, bytes, bytes]],
        *,
        rate_per_s: float,
        on_sent: Callable[[int, float], None],
        tick_s: float = 0.002,
    ) -> float:
        """Send (topic, key, value) records on schedule; return the achieved rate."""
        pending = []
        start = time.perf_counter()
        sent = 0
        while sent < len(records):
            due = min(len(records), int((time.perf_counter() - start) * rate_per_s) + 1)
            while sent < due:
                topic, key, value = records[sent]
                on_sent(sent, time.perf_counter())
                pending.append(await self._producer.send(topic, value, key=key))
                sent += 1
            await asyncio.sleep(tick_s)
        elapsed = time.perf_counter() - start
        await asyncio.gather(*pending)
        return len(records) / elapsed if elapsed > 0 else 0.0
