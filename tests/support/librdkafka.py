"""Another Kafka client for tests: librdkafka (the ``confluent-kafka`` wheel) as a producer.

Agencies publish with whatever client they have, and librdkafka is the most
common one besides Java's. Here it compresses batches with any codec the
enforcer must read, on a partition chosen by the test, so the test knows
which offsets one compressed batch holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import confluent_kafka

from broker.kafka import security
from broker.wire.records import OutboundRecord

CODECS = ("gzip", "snappy", "lz4", "zstd")


def produce(
    bootstrap: str,
    records: Sequence[OutboundRecord],
    *,
    codec: str = "none",
    partition: int = 0,
    timeout_s: float = 20.0,
) -> list[int]:
    """Send ``records`` to ``partition`` as one batch compressed with ``codec``; their offsets.

    Returns once every record is acknowledged (``acks=all``), or fails the test.
    """
    producer = confluent_kafka.Producer(
        {
            **security_properties(bootstrap),
            "bootstrap.servers": bootstrap,
            "compression.codec": codec,
            "acks": "all",
            # Held until flush(): everything goes in one request, one batch per partition.
            "linger.ms": 60_000,
            "batch.num.messages": max(1, len(records)),
        }
    )
    offsets: list[int] = []
    errors: list[str] = []

    def delivered(
        error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message
    ) -> None:
        if error is not None:
            errors.append(str(error))
        else:
            offset = message.offset()
            assert offset is not None
            offsets.append(offset)

    for record in records:
        producer.produce(
            record.topic,
            value=record.value,
            key=record.key,
            headers=list(record.headers),
            partition=partition,
            on_delivery=delivered,
        )
    left = producer.flush(timeout_s)
    assert not errors, f"librdkafka could not deliver: {errors}"
    assert left == 0, f"librdkafka: {left} records not acknowledged in {timeout_s} s"
    return sorted(offsets)


def security_properties(bootstrap: str) -> dict[str, str]:
    """The identity this process speaks to ``bootstrap`` with, as librdkafka's properties."""
    config = security.bound(bootstrap)
    return config.properties() if config is not None else {}
