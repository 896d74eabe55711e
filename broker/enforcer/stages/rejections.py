"""Refused submissions, kept whole on ``ixb.rejected.<ORIGIN>`` with the reason.

Nothing is dropped: the record carries the original key and value bytes and
where they came from, so an operator can inspect the refusal or re-drive the
message once the cause is fixed (``retriable`` says when that may help).

A record batch the consumer could not decode has no bytes to carry (none of
its records could be read, and its raw bytes are not one submission's): its
refusal names where it is instead, from its first offset (``source_offset``)
to its last (the ``ixb-source-last-offset`` header), for as long as the
submission topic keeps it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from broker.errors import RejectedInput
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord, UndecodableBatch
from broker.wire.topics import TopicNames

REJECTION_SCHEMA = "ixb.v1.Rejection"
UNKNOWN_ORIGIN = "XX"  # used only if a record reached us on a non-submission topic
UNDECODABLE_STAGE = "fetch"  # the consumer could not decode the batch it fetched


def rejection(
    catalog: SchemaCatalog,
    topics: TopicNames,
    inbound: InboundRecord,
    refusal: RejectedInput,
    now: dt.datetime,
    *,
    origin: str | None = None,
) -> OutboundRecord:
    """The refusal record for ``inbound``, on its origin's rejected topic.

    The origin is the nation of the submission topic unless given (a held
    delivery that may not be released comes from the held topic).
    """
    value = catalog.encode(
        REJECTION_SCHEMA,
        {
            "reason": refusal.reason,
            "detail": refusal.detail,
            "stage": refusal.stage,
            "retriable": refusal.retriable,
            "source_topic": inbound.topic,
            "source_partition": inbound.partition,
            "source_offset": inbound.offset,
            "rejected_at": now,
            "original_key": inbound.key,
            "original_value": inbound.value or b"",
        },
    )
    origin = origin or topics.nation_of_submit_topic(inbound.topic) or UNKNOWN_ORIGIN
    return OutboundRecord(
        topic=topics.rejected(origin),
        key=inbound.key,
        value=value,
        headers=(("ixb-reason", refusal.reason.encode()), ("ixb-stage", refusal.stage.encode())),
    )


def undecodable_rejection(
    catalog: SchemaCatalog, topics: TopicNames, batch: UndecodableBatch, now: dt.datetime
) -> OutboundRecord:
    """The refusal of a batch the consumer could not decode, on its origin's rejected topic.

    Retriable only for a codec the consumer lacked: a consumer that has it can
    read the same batch from Kafka.
    """
    refusal = RejectedInput(
        batch.reason,
        batch.detail,
        stage=UNDECODABLE_STAGE,
        retriable=batch.reason == "unsupported_codec",
    )
    first = InboundRecord(
        batch.topic, batch.partition, batch.first_offset, None, None, (), batch.timestamp_ms
    )
    record = rejection(catalog, topics, first, refusal, now)
    last_offset = ("ixb-source-last-offset", str(batch.offset).encode())
    return dataclasses.replace(record, headers=(*record.headers, last_offset))
