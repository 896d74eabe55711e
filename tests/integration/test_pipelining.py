"""The enforcer overlaps batches, and that never reorders outputs or commits.

Batch N+1 is fetched and processed while Kafka acknowledges batch N's
outputs and takes its commit; batch N+1's outputs go out only once batch N
is committed. The enforcer here is the real one, on the session's broker,
with its producer, consumer and processor observed (not replaced): each
call is noted, then passed on unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from broker.codec import SchemaCatalog
from broker.pipeline.processor import Processed
from broker.pipeline.runner import Enforcer
from broker.report_codec import report_to_record
from broker.service import build_stages, provision_keys
from broker.transport import (
    InboundRecord,
    OutboundRecord,
    OutputProducer,
    Partition,
    SubmissionConsumer,
    TopicAdmin,
)
from tests.factories import make_report
from tests.integration.conftest import NL_BE_AGREEMENT, make_settings
from tests.support.submissions import seal_record

REPORTS = 40
BATCH = 5


class _NotedProducer(OutputProducer):
    """The real producer; ``note`` sees each batch of records before it is sent."""

    note: Callable[[Sequence[OutboundRecord]], None] = staticmethod(lambda records: None)

    async def send_all(self, records: Sequence[OutboundRecord]) -> None:
        self.note(records)
        await super().send_all(records)


class _NotedConsumer(SubmissionConsumer):
    """The real consumer; ``note`` sees each commit once Kafka has taken it."""

    note: Callable[[Mapping[Partition, int]], None] = staticmethod(lambda offsets: None)

    async def commit(self, next_offsets: Mapping[Partition, int]) -> None:
        await super().commit(next_offsets)
        self.note(next_offsets)


async def test_the_next_batch_is_processed_while_the_last_is_acknowledged_and_sent_after_it(
    tmp_path: Path, kafka_bootstrap: str, policies_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = make_settings(tmp_path, kafka_bootstrap, policies_dir)
    provision_keys(settings, ["NL", "BE"])
    catalog = SchemaCatalog.load()
    stages = build_stages(settings)
    topics = stages.topics
    admin = TopicAdmin(kafka_bootstrap)
    producer = _NotedProducer(kafka_bootstrap, admin)
    await admin.start()
    await producer.start()
    backlog = [
        OutboundRecord(
            topics.submit("NL"),
            str(report.report_id).encode(),
            seal_record(settings, catalog, report_to_record(report), key_nation="NL"),
        )
        for report in (make_report("NL") for _ in range(REPORTS))
    ]
    await producer.send_all(backlog)  # all waiting before the enforcer starts

    events: list[tuple[str, int]] = []  # (what, batch number), in the order it happened
    processor = stages.processor()
    batch_of: dict[int, int] = {}  # id of a batch's outputs -> its number
    kept: list[tuple[OutboundRecord, ...]] = []  # so that no id is reused meanwhile

    process = processor.process

    async def processing(batch: list[InboundRecord]) -> Processed:
        number = len(batch_of)
        events.append(("processing", number))
        processed = await process(batch)
        batch_of[id(processed.outputs)] = number
        kept.append(processed.outputs)
        return processed

    def sending(records: Sequence[OutboundRecord]) -> None:
        number = batch_of.get(id(records))
        if number is not None:  # a batch's outputs (not its bundle archive)
            events.append(("sending", number))

    committed: list[Mapping[Partition, int]] = []

    def committing(next_offsets: Mapping[Partition, int]) -> None:
        events.append(("committed", len(committed)))
        committed.append(dict(next_offsets))

    producer.note = sending
    consumer = _NotedConsumer(
        kafka_bootstrap,
        group_id=settings.group_id,
        pattern=topics.submit_pattern,
        max_poll_records=BATCH,
        session_timeout_ms=settings.consumer_session_timeout_ms,
    )
    consumer.note = committing
    monkeypatch.setattr(processor, "process", processing)
    enforcer = Enforcer(
        consumer=consumer, producer=producer, processor=processor, batch_max_records=BATCH
    )
    await consumer.start()
    stop = asyncio.Event()
    running = asyncio.create_task(enforcer.run(stop))
    deadline = time.monotonic() + 30
    while processor.stats.completed < REPORTS:
        assert time.monotonic() < deadline, f"completed {processor.stats.completed} of {REPORTS}"
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, timeout=30)
    await consumer.stop()
    await producer.stop()
    await admin.close()

    position = {event: i for i, event in enumerate(events)}
    batches = len(batch_of)
    assert batches >= REPORTS // BATCH
    assert len(committed) == batches, "every batch committed once, at the end"
    overlapped = [
        n for n in range(1, batches) if position["processing", n] < position["committed", n - 1]
    ]
    assert overlapped, f"no batch was processed while the one before was in flight: {events}"
    for n in range(1, batches):
        assert position["committed", n - 1] < position["sending", n], (
            f"batch {n} was sent before batch {n - 1} was committed: {events}"
        )
    for earlier, later in itertools.pairwise(committed):
        for partition, offset in later.items():
            assert offset > earlier.get(partition, -1), "commits went backwards"
    assert processor.stats.deliveries == REPORTS, "each report delivered to BE"
