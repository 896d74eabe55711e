"""aiokafka's consumer records as ixb's :class:`~broker.wire.records.InboundRecord`."""

from __future__ import annotations

from broker.wire.records import InboundRecord

LOG_APPEND_TIME = 1  # a record batch's timestamp type: 0 CreateTime, 1 LogAppendTime


def inbound(message: object) -> InboundRecord:
    m = message  # aiokafka ConsumerRecord; untyped
    return InboundRecord(
        topic=m.topic,  # type: ignore[attr-defined]
        partition=m.partition,  # type: ignore[attr-defined]
        offset=m.offset,  # type: ignore[attr-defined]
        key=m.key,  # type: ignore[attr-defined]
        value=m.value,  # type: ignore[attr-defined]
        headers=tuple(m.headers),  # type: ignore[attr-defined]
        timestamp_ms=m.timestamp,  # type: ignore[attr-defined]
        log_append_time=m.timestamp_type == LOG_APPEND_TIME,  # type: ignore[attr-defined]
    )
