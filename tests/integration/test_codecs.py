"""Every codec a producer may compress with is read, and a batch that cannot be is refused.

Submissions come from librdkafka (another client than the enforcer's),
compressed with gzip, snappy, lz4 or zstd, and must be delivered like any
other. A batch the enforcer's consumer cannot decode (here: a codec it is
denied by a test double, as when its library is missing) must neither halt
the enforcer nor be dropped: it goes to the origin's rejected topic with its
position, logged once, and the records after it flow on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from broker.app.assembly import build_stages
from broker.app.settings import Settings
from broker.enforcer.processor import EnforcerStats
from broker.enforcer.runtime.runner import Enforcer
from broker.errors import TransportError
from broker.kafka.admin import TopicAdmin
from broker.kafka.consumer import SubmissionConsumer
from broker.kafka.producer import OutputProducer
from broker.parties.recipient import FeedProblem, VerifiedDelivery
from broker.wire.records import InboundRecord, OutboundRecord, Partition, UndecodableBatch
from tests.factories import make_report
from tests.integration.conftest import Exchange, enforcer, nl_be_settings
from tests.support.codec_double import deny_codec_double
from tests.support.librdkafka import CODECS, produce

pytestmark = pytest.mark.integration


def _compressible(record: OutboundRecord) -> OutboundRecord:
    """``record`` with a header a codec can shrink.

    A sealed value is ciphertext, which no codec shrinks, and librdkafka sends
    a batch that compression does not shrink as it is (uncompressed): without
    something compressible in the batch, a test of a codec would test none.
    Headers are inside the compressed batch; the enforcer reads none of these.
    """
    return dataclasses.replace(
        record, headers=(*record.headers, ("ixb-test-padding", b"compressible " * 128))
    )


def _verified(items: list[VerifiedDelivery | FeedProblem]) -> list[VerifiedDelivery]:
    assert not [i for i in items if isinstance(i, FeedProblem)], items
    return [i for i in items if isinstance(i, VerifiedDelivery)]


async def _read_submissions(
    settings: Settings,
    topic: str,
    count: int,
    *,
    max_records: int = 100,
    through_offset: int | None = None,
) -> list[InboundRecord]:
    """What a fresh consumer group of the enforcer's consumer reads from ``topic``.

    ``count`` items, or with ``through_offset`` as many as reach that offset.
    """
    consumer = SubmissionConsumer(
        settings.kafka_bootstrap or "",
        group_id=f"g{uuid.uuid4().hex[:8]}",
        pattern="^" + re.escape(topic) + "$",
        max_poll_records=max_records,
        session_timeout_ms=settings.consumer_session_timeout_ms,
    )
    await consumer.start()
    records: list[InboundRecord] = []
    try:
        deadline = time.monotonic() + 20
        while (
            len(records) < count
            if through_offset is None
            else (records[-1].offset if records else -1) < through_offset
        ):
            assert time.monotonic() < deadline, f"read {len(records)} of {count}"
            records += await consumer.fetch(timeout_ms=200, max_records=max_records)
    finally:
        await consumer.stop()
    return records


@pytest.mark.parametrize("codec", CODECS)
async def test_reports_librdkafka_compressed_with_each_codec_are_delivered_and_verify(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    reports = [make_report("NL") for _ in range(3)]
    submit = exchange.topics.submit("NL")
    offsets = produce(
        exchange.bootstrap, [_compressible(exchange.seal(r)) for r in reports], codec=codec
    )
    await exchange.wait_completed(3)

    delivered = _verified(await exchange.feed("BE"))
    assert sorted(str(d.report.report_id) for d in delivered) == sorted(
        str(r.report_id) for r in reports
    )
    assert exchange.stats.rejected == {}
    # They really were compressed with that codec: without it, none is readable.
    # librdkafka is asked for one batch but may send two (seen once with lz4), so
    # the batches read must cover exactly the offsets produced, each unreadable.
    deny_codec_double(monkeypatch, codec)
    batches = await _read_submissions(exchange.settings, submit, 1, through_offset=offsets[-1])
    covered: list[int] = []
    for batch in batches:
        assert isinstance(batch, UndecodableBatch), batch
        assert batch.reason == "unsupported_codec"
        assert f"({codec})" in batch.detail
        covered += range(batch.first_offset, batch.offset + 1)
    assert covered == offsets


async def test_the_consumer_loses_no_record_of_any_partition_around_an_undecodable_batch(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka alone skips records of other partitions drained in a call that fails to decode."""
    settings = await nl_be_settings(tmp_path, kafka_bootstrap, policies_dir)
    topic = f"{settings.topic_namespace}.mixed"
    admin = TopicAdmin(kafka_bootstrap, partitions=2)
    await admin.start()
    try:
        await admin.ensure([topic])
    finally:
        await admin.close()

    def records(n: int) -> list[OutboundRecord]:
        # compressible: librdkafka sends a batch that compression does not shrink as it is
        return [OutboundRecord(topic, None, uuid.uuid4().bytes * 8) for _ in range(n)]

    busy = produce(kafka_bootstrap, records(20), partition=0)
    before = produce(kafka_bootstrap, records(1), partition=1)
    bad = produce(kafka_bootstrap, records(2), codec="snappy", partition=1)
    after = produce(kafka_bootstrap, records(5), partition=1)
    deny_codec_double(monkeypatch, "snappy")

    read = await _read_submissions(settings, topic, 20 + 1 + 1 + 5, max_records=3)

    assert [r.offset for r in read if r.partition == 0] == busy, "each once, in order"
    assert [(r.offset, type(r).__name__) for r in read if r.partition == 1] == [
        *((o, "InboundRecord") for o in before),
        (bad[-1], "UndecodableBatch"),
        *((o, "InboundRecord") for o in after),
    ]


async def test_an_undecodable_batch_is_rejected_with_its_position_and_what_follows_is_delivered(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = await nl_be_settings(tmp_path, kafka_bootstrap, policies_dir)
    deny_codec_double(monkeypatch, "snappy")
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as captured:
        async with enforcer(settings) as exchange:
            before, after = make_report("NL"), make_report("NL")
            undecodable = [_compressible(exchange.seal(make_report("NL"))) for _ in range(3)]
            elsewhere = make_report("BE")  # another partition, of another topic: to NL
            [first] = produce(kafka_bootstrap, [exchange.seal(before)])
            bad = produce(kafka_bootstrap, undecodable, codec="snappy")
            produce(kafka_bootstrap, [exchange.seal(after)])
            await exchange.publish("BE", [exchange.seal(elsewhere)])
            await exchange.wait_completed(4)  # before, the batch, after, elsewhere
            await asyncio.sleep(1.5)  # a stalled enforcer would log again meanwhile

            rejections = await exchange.rejections("NL")
            to_be = _verified(await exchange.feed("BE"))
            to_nl = _verified(await exchange.feed("NL"))

    assert bad == [first + 1, first + 2, first + 3]
    # Delivery is at least once: a rebalance (BE's topic appears mid-test) may
    # redo the batch that refused it, and the refusal is then written again.
    # Every record on NL's rejected topic must be this one refusal, the same each
    # time but for when it was written.
    assert rejections, "the undecodable batch is refused"
    rejection = rejections[0]
    same = [{k: v for k, v in r.items() if k != "rejected_at"} for r in rejections]
    assert all(s == same[0] for s in same), rejections
    assert rejection["reason"] == "unsupported_codec"
    assert rejection["stage"] == "fetch"
    assert rejection["retriable"] is True
    assert rejection["source_topic"] == exchange.topics.submit("NL")
    assert (rejection["source_partition"], rejection["source_offset"]) == (0, bad[0])
    assert f"offsets {bad[0]}..{bad[-1]} (snappy)" in str(rejection["detail"])
    # Nothing of the batch could be read, so nothing of it is passed on.
    assert rejection["original_key"] is None
    assert rejection["original_value"] == b""
    assert {d.report.report_id for d in to_be} == {before.report_id, after.report_id}
    assert len(to_be) == 2
    assert [d.report.report_id for d in to_nl] == [elsewhere.report_id]

    logged = [e for e in captured if e["event"] == "undecodable_batch"]
    assert [(e["first_offset"], e["last_offset"], e["reason"]) for e in logged] == [
        (bad[0], bad[-1], "unsupported_codec")
    ]
    assert not [e for e in captured if e["event"] == "fetch_failed"]


class _RejectionsUnacknowledgedDouble(OutputProducer):
    """The real producer, except that the first ``refusals`` sends holding a rejection fail.

    A fault injected: Kafka does not acknowledge the refusal of the
    undecodable batch for a while. ``events`` notes what happened, in order.
    """

    def __init__(self, bootstrap: str, admin: TopicAdmin, *, rejected: str, refusals: int) -> None:
        super().__init__(bootstrap, admin)
        self.rejected, self.refusals = rejected, refusals
        self.events: list[tuple[str, int]] = []

    async def send_all(self, records: Sequence[OutboundRecord]) -> None:
        holds_rejection = any(r.topic == self.rejected for r in records)
        if holds_rejection and self.refusals > 0:
            self.refusals -= 1
            self.events.append(("rejection_not_acknowledged", 0))
            raise TransportError("test double: not acknowledged")
        await super().send_all(records)
        if holds_rejection:
            self.events.append(("rejection_acknowledged", 0))


class _NotedConsumer(SubmissionConsumer):
    """The real consumer; every commit Kafka took is noted, per partition, in ``events``."""

    events: list[tuple[str, int]]

    async def commit(self, next_offsets: Mapping[Partition, int]) -> None:
        await super().commit(next_offsets)
        self.events.extend(("committed", offset) for offset in next_offsets.values())


async def test_the_offset_moves_past_an_undecodable_batch_only_once_its_rejection_is_acknowledged(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = await nl_be_settings(tmp_path, kafka_bootstrap, policies_dir)
    stages = build_stages(settings)
    deny_codec_double(monkeypatch, "zstd")
    seal = Exchange(settings, kafka_bootstrap, EnforcerStats(), stages.catalog).seal
    [first] = produce(kafka_bootstrap, [seal(make_report("NL"))])
    bad = produce(
        kafka_bootstrap, [_compressible(seal(make_report("NL"))) for _ in range(2)], codec="zstd"
    )
    [last] = produce(kafka_bootstrap, [seal(make_report("NL"))])

    admin = TopicAdmin(kafka_bootstrap)
    producer = _RejectionsUnacknowledgedDouble(
        kafka_bootstrap, admin, rejected=stages.topics.rejected("NL"), refusals=3
    )
    consumer = _NotedConsumer(
        kafka_bootstrap,
        group_id=settings.group_id,
        pattern="^" + re.escape(stages.topics.submit("NL")) + "$",
        max_poll_records=1,  # a batch per record: the one before is committed first
        session_timeout_ms=settings.consumer_session_timeout_ms,
    )
    consumer.events = producer.events  # one timeline
    processor = stages.processor()
    run = Enforcer(
        consumer=consumer,
        producer=producer,
        processor=processor,
        batch_max_records=1,
        retry_backoff_s=0.1,
    )
    stop = asyncio.Event()
    await admin.start()
    await producer.start()
    await consumer.start()
    running = asyncio.create_task(run.run(stop))
    try:
        deadline = time.monotonic() + 30
        while processor.stats.completed < 3:  # first, the batch, last
            assert time.monotonic() < deadline, f"completed {processor.stats.completed} of 3"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)
        await consumer.stop()
        await producer.stop()
        await admin.close()

    acknowledged = producer.events.index(("rejection_acknowledged", 0))
    committed = [
        (i, offset) for i, (what, offset) in enumerate(producer.events) if what == "committed"
    ]
    assert producer.events[:acknowledged].count(("rejection_not_acknowledged", 0)) == 3
    assert all(offset <= bad[0] for i, offset in committed if i < acknowledged)
    assert [offset for i, offset in committed if i > acknowledged] == [bad[-1] + 1, last + 1]
    assert first + 1 == bad[0]
    assert processor.stats.rejected == {"unsupported_codec": 1}
