"""Reading a topic back from a point in time: every record stamped after it, and no earlier one.

Kafka finds the first record at or after a time (ListOffsets by timestamp),
so a read since a time starts there instead of at the partition's start.
"""

# ruff: noqa: TID251 - the records need explicit timestamps, which OutputProducer does not set

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from broker.kafka.admin import TopicAdmin
from broker.kafka.reader import read_topic
from broker.kafka.security import client_options

pytestmark = pytest.mark.integration


async def test_a_read_since_a_time_yields_every_record_stamped_at_or_after_it_and_none_before(
    kafka_bootstrap: str,
) -> None:
    topic = f"t{uuid.uuid4().hex[:12]}.read-since"
    now = dt.datetime.now(dt.UTC)
    stamps = {  # value: (partition, time)
        b"two hours ago": (0, now - dt.timedelta(hours=2)),
        b"an hour ago": (0, now - dt.timedelta(hours=1)),
        b"now": (0, now),
        b"alone, two hours ago": (1, now - dt.timedelta(hours=2)),  # nothing since in 1
    }
    admin = TopicAdmin(kafka_bootstrap)  # three partitions: 2 holds nothing at all
    await admin.start()
    await admin.ensure([topic])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, **client_options(kafka_bootstrap)
    )
    await producer.start()
    try:
        for value, (partition, stamp) in stamps.items():
            await producer.send_and_wait(
                topic, value, partition=partition, timestamp_ms=int(stamp.timestamp() * 1000)
            )
    finally:
        await producer.stop()

    since = now - dt.timedelta(minutes=90)
    read = {
        r.value async for r in read_topic(kafka_bootstrap, topic, idle_timeout_s=5, since=since)
    }

    assert read == {b"an hour ago", b"now"}
