"""Reading a topic from the start (or a time) without joining a group: feeds and logs."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from broker.errors import TransportError
from broker.kafka.admin import on_some_broker
from broker.kafka.closing import close_consumer
from broker.kafka.records import inbound
from broker.kafka.security import client_options
from broker.wire.records import InboundRecord


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    idle_timeout_s: float,
    follow: bool = False,
    since: dt.datetime | None = None,
    start: Mapping[int, int] | None = None,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[InboundRecord]:
    """Every record of ``topic`` from the beginning, without joining a group.

    Without ``follow`` it stops at the end of the topic as it was when the
    read began, or after ``idle_timeout_s`` without progress, whichever comes
    first; with ``follow`` it keeps waiting for new records. With ``since``
    each partition is read from its first record stamped at or after that
    time, where the cluster can say which that is (Kafka can; the embedded
    broker answers with the first record, so everything is read). ``start``
    gives partitions (by number) an offset to begin at instead. Setting
    ``stop`` ends the read at its next poll (within 200 ms) and closes the
    consumer: a follower stopped that way leaves no connection behind, which
    cancelling it in the middle of a connect can.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **client_options(bootstrap),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    try:
        await consumer.start()
        partitions = await _wait_for_partitions(bootstrap, topic, idle_timeout_s, stop)
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
        while (stop is None or not stop.is_set()) and (
            follow or time.monotonic() - idle_since < idle_timeout_s
        ):
            if not follow and await _caught_up(consumer, ends):
                return
            batches = await consumer.getmany(timeout_ms=200)
            if batches:
                idle_since = time.monotonic()
            for messages in batches.values():
                for message in messages:
                    yield inbound(message)
    except KafkaError as exc:
        raise TransportError(f"cannot read {topic}: {exc}") from exc
    finally:
        await close_consumer(consumer)


async def _seek_to_start(
    consumer: AIOKafkaConsumer, assigned: list[TopicPartition], since: dt.datetime | None
) -> None:
    """Each partition's first record, or its first stamped at or after ``since``.

    A partition with nothing that recent is positioned at its end offset by
    number, not with ``seek_to_end``: that asks for a reset, and the reset
    to the earliest offset that assigning the partition started may land
    after it and win (measured: the one old record of such a partition was
    read every time).
    """
    if since is None:
        await consumer.seek_to_beginning(*assigned)
        return
    stamp = int(since.timestamp() * 1000)
    found = await consumer.offsets_for_times(dict.fromkeys(assigned, stamp))
    nothing_since = [tp for tp in assigned if found.get(tp) is None]
    ends = await consumer.end_offsets(nothing_since) if nothing_since else {}
    for tp in assigned:
        at = found.get(tp)
        consumer.seek(tp, at.offset if at is not None else ends[tp])


async def _caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def _wait_for_partitions(
    bootstrap: str, topic: str, timeout_s: float, stop: asyncio.Event | None
) -> set[int]:
    """The topic's partitions, once the cluster's metadata lists them (none after timeout).

    Asked of an admin client: a consumer that has not subscribed asks Kafka
    for the metadata of no topic (Tansu answered with every topic, Kafka
    answers as asked), and ``consumer.topics()`` fetches every topic's
    without keeping any. Assigning the partitions then makes the consumer
    track the topic.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, **client_options(bootstrap), request_timeout_ms=5000
    )
    deadline = time.monotonic() + timeout_s
    try:
        await admin.start()
        while True:
            for described in await on_some_broker(lambda: admin.describe_topics([topic])):
                if described.get("error_code") == 0 and described.get("partitions"):
                    return {p["partition"] for p in described["partitions"]}
                if described.get("error_code") == TopicAuthorizationFailedError.errno:
                    # Kafka's refusal, not a topic still to come: say so, do not wait it out.
                    raise TransportError(
                        f"Kafka refused access to {topic}: TopicAuthorizationFailedError "
                        "(this principal has no ACL for it)"
                    )
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return set()
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
