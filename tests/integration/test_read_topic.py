"""Reading a topic back from a point in time never skips a record stamped after it."""

# ruff: noqa: TID251 - the records need explicit timestamps, which OutputProducer does not set

from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from broker.kafka.reader import read_topic

pytestmark = pytest.mark.integration


async def test_a_read_since_a_time_yields_every_record_stamped_at_or_after_it(
    kafka_bootstrap: str,
) -> None:
    topic = f"t{uuid.uuid4().hex[:12]}.read-since"
    now = dt.datetime.now(dt.UTC)
    stamps = {
        b"two hours ago": now - dt.timedelta(hours=2),
        b"an hour ago": now - dt.timedelta(hours=1),
        b"now": now,
    }
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for value, stamp in stamps.items():
            await producer.send_and_wait(
                topic, value, partition=0, timestamp_ms=int(stamp.timestamp() * 1000)
            )
    finally:
        await producer.stop()

    since = now - dt.timedelta(minutes=90)
    read = {
        r.value async for r in read_topic(kafka_bootstrap, topic, idle_timeout_s=5, since=since)
    }

    if os.environ.get("IXB_KAFKA_BOOTSTRAP"):  # Kafka starts at the first record that recent
        assert read == {b"an hour ago", b"now"}
    else:  # the embedded broker cannot find a record by time: it starts at the first
        assert read == set(stamps)
