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
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path

import pytest

from broker.app.assembly import build_stages, provision_keys
from broker.app.settings import Settings
from broker.enforcer.processor import BatchRun, Processed
from broker.enforcer.runtime.runner import Enforcer
from broker.errors import TransportError
from broker.kafka.admin import TopicAdmin
from broker.kafka.consumer import SubmissionConsumer
from broker.kafka.producer import OutputProducer
from broker.wire.codec import SchemaCatalog
from broker.wire.records import OutboundRecord, Partition
from broker.wire.report import report_to_record
from tests.factories import make_report
from tests.integration.conftest import NL_BE_AGREEMENT, make_settings
from tests.support.submissions import seal_record

pytestmark = pytest.mark.integration

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


class _Rig:
    """A real enforcer over a backlog of NL reports, its every step noted in ``events``."""

    def __init__(self, kafka_bootstrap: str, settings: Settings) -> None:
        self.settings = settings
        self.stages = build_stages(settings)
        self.admin = TopicAdmin(kafka_bootstrap)
        self.producer = _NotedProducer(kafka_bootstrap, self.admin)
        self.consumer = _NotedConsumer(
            kafka_bootstrap,
            group_id=settings.group_id,
            pattern=self.stages.topics.submit_pattern,
            max_poll_records=BATCH,
            session_timeout_ms=settings.consumer_session_timeout_ms,
        )
        self.processor = self.stages.processor()
        self.events: list[tuple[str, int]] = []  # (what, batch number), in order
        self.committed: list[Mapping[Partition, int]] = []
        self._batch_of: dict[int, int] = {}  # id of a batch's outputs -> its number
        self._kept: list[tuple[OutboundRecord, ...]] = []  # so that no id is reused meanwhile
        self.producer.note = self.sending
        self.consumer.note = self._committed

    @property
    def batches(self) -> int:
        return len(self._batch_of)

    def batch_of(self, records: Sequence[OutboundRecord]) -> int | None:
        """The number of the batch whose outputs these are (None: a bundle archive)."""
        return self._batch_of.get(id(records))

    async def start(self, monkeypatch: pytest.MonkeyPatch, *, reports: int = REPORTS) -> None:
        await self.admin.start()
        await self.producer.start()
        catalog = SchemaCatalog.load()
        backlog = [
            OutboundRecord(
                self.stages.topics.submit("NL"),
                str(report.report_id).encode(),
                seal_record(self.settings, catalog, report_to_record(report), key_nation="NL"),
            )
            for report in (make_report("NL") for _ in range(reports))
        ]
        await self.producer.send_all(backlog)  # all waiting before the enforcer starts
        monkeypatch.setattr(self.processor, "start", self._starting(self.processor.start))
        monkeypatch.setattr(BatchRun, "close", self._closing(BatchRun.close))
        await self.consumer.start()

    async def run(self, stop: asyncio.Event, *, until_completed: int) -> None:
        enforcer = Enforcer(
            consumer=self.consumer,
            producer=self.producer,
            processor=self.processor,
            batch_max_records=BATCH,
        )
        running = asyncio.create_task(enforcer.run(stop))
        try:
            deadline = time.monotonic() + 30
            while self.processor.stats.completed < until_completed and not stop.is_set():
                assert time.monotonic() < deadline, f"completed {self.processor.stats.completed}"
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(running, timeout=30)
        finally:
            running.cancel()  # only if it did not end: nothing outlives the test

    async def close(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()
        await self.admin.close()

    def _starting(self, start: Callable[[], BatchRun]) -> Callable[[], BatchRun]:
        def starting() -> BatchRun:
            self.events.append(("processing", len(self._batch_of)))
            return start()

        return starting

    def _closing(self, close: Callable[[BatchRun], Processed]) -> Callable[[BatchRun], Processed]:
        def closing(run: BatchRun) -> Processed:
            processed = close(run)
            self._batch_of[id(processed.outputs)] = len(self._batch_of)
            self._kept.append(processed.outputs)
            return processed

        return closing

    def sending(self, records: Sequence[OutboundRecord]) -> None:
        number = self.batch_of(records)
        if number is not None:
            self.events.append(("sending", number))

    def _committed(self, next_offsets: Mapping[Partition, int]) -> None:
        self.events.append(("committed", len(self.committed)))
        self.committed.append(dict(next_offsets))


@pytest.fixture
async def rig(tmp_path: Path, kafka_bootstrap: str, policies_dir: Path) -> AsyncIterator[_Rig]:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = make_settings(tmp_path, kafka_bootstrap, policies_dir)
    provision_keys(settings, ["NL", "BE"])
    rig = _Rig(kafka_bootstrap, settings)
    try:
        yield rig
    finally:
        await rig.close()


async def test_the_next_batch_is_processed_while_the_last_is_acknowledged_and_sent_after_it(
    rig: _Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rig.start(monkeypatch)
    await rig.run(asyncio.Event(), until_completed=REPORTS)

    events, committed = rig.events, rig.committed
    position = {event: i for i, event in enumerate(events)}
    assert rig.batches >= REPORTS // BATCH
    assert len(committed) == rig.batches, "every batch committed once, at the end"
    overlapped = [
        n for n in range(1, rig.batches) if position["processing", n] < position["committed", n - 1]
    ]
    assert overlapped, f"no batch was processed while the one before was in flight: {events}"
    for n in range(1, rig.batches):
        assert position["committed", n - 1] < position["sending", n], (
            f"batch {n} was sent before batch {n - 1} was committed: {events}"
        )
    for earlier, later in itertools.pairwise(committed):
        for partition, offset in later.items():
            assert offset > earlier.get(partition, -1), "commits went backwards"
    assert rig.processor.stats.deliveries == REPORTS, "each report delivered to BE"


async def test_a_batch_given_up_at_stop_is_not_passed_by_the_next_one_already_processed(
    rig: _Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = asyncio.Event()

    def kafka_refuses_the_first_batch(records: Sequence[OutboundRecord]) -> None:
        rig.sending(records)
        if rig.batch_of(records) == 0:
            stop.set()  # the operator stops the enforcer while Kafka refuses
            raise TransportError("not acknowledged (injected)")

    rig.producer.note = kafka_refuses_the_first_batch
    await rig.start(monkeypatch)
    await rig.run(stop, until_completed=REPORTS)

    assert ("processing", 1) in rig.events, "the next batch was processed meanwhile"
    assert ("sending", 1) not in rig.events, f"batch 1 was sent after batch 0 failed: {rig.events}"
    assert rig.committed == [], "nothing committed: both batches are redone after the restart"


async def test_a_cancelled_enforcer_ends_even_while_the_batch_in_flight_is_being_retried(
    rig: _Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    retried = asyncio.Event()
    attempts = 0

    def kafka_refuses_the_batch(records: Sequence[OutboundRecord]) -> None:
        nonlocal attempts
        rig.sending(records)
        if rig.batch_of(records) == 0:
            attempts += 1
            if attempts > 1:
                retried.set()
            raise TransportError("not acknowledged (injected)")

    rig.producer.note = kafka_refuses_the_batch
    # One batch only: while it is retried, the loop goes on fetching (nothing).
    await rig.start(monkeypatch, reports=BATCH)
    enforcer = Enforcer(
        consumer=rig.consumer,
        producer=rig.producer,
        processor=rig.processor,
        batch_max_records=BATCH,
        retry_backoff_s=0.05,
    )
    running = asyncio.create_task(enforcer.run(asyncio.Event()))  # never asked to stop
    try:
        await asyncio.wait_for(retried.wait(), timeout=30)
        await asyncio.sleep(0.3)  # the loop is back in a fetch
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=5)
    finally:
        running.cancel()  # a no-op once it ended

    assert done, "the cancelled enforcer still retries the batch in flight"
    assert running.cancelled()
    assert rig.committed == []
