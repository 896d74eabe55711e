"""The enforcer's runner through Kafka's failures, on the in-memory transport.

The processing is the real one (intake, fan-out, attestation, decision log,
Rego); only Kafka is the in-memory test transport (broker/kafka/memory.py),
so lost acknowledgements, refused sends, failed fetches and commits and
revoked partitions happen exactly when the test says. The same runner runs
against a real Kafka in tests/integration.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from broker.app.assembly import build_stages, provision_keys
from broker.app.settings import Settings
from broker.enforcer.processor import BatchProcessor
from broker.enforcer.runtime.runner import Enforcer
from broker.kafka.memory import MemoryCluster, MemoryConsumer, MemoryProducer
from broker.wire.codec import SchemaCatalog
from broker.wire.records import InboundRecord, OutboundRecord
from broker.wire.report import report_to_record
from broker.wire.topics import TopicNames
from tests.factories import make_report
from tests.integration.conftest import NL_BE_AGREEMENT
from tests.support.submissions import seal_record

BATCH = 4


@dataclass
class _Rig:
    cluster: MemoryCluster
    consumer: MemoryConsumer
    producer: MemoryProducer
    processor: BatchProcessor
    topics: TopicNames
    settings: Settings
    catalog: SchemaCatalog
    ledger_reads: int = 0

    def submit(self, count: int, *, partition: int | None = None) -> list[str]:
        """``count`` NL reports on NL's submit topic (by key, or to ``partition``); their ids."""
        ids = []
        for _ in range(count):
            report = make_report("NL")
            value = seal_record(
                self.settings, self.catalog, report_to_record(report), key_nation="NL"
            )
            self.cluster.append(
                OutboundRecord(self.topics.submit("NL"), str(report.report_id).encode(), value),
                partition=partition,
            )
            ids.append(str(report.report_id))
        return ids

    async def ledger(self) -> AsyncIterator[InboundRecord]:
        self.ledger_reads += 1
        async for line in self.cluster.read_topic(self.topics.accepted, idle_timeout_s=0.1):
            yield line

    def enforcer(self) -> Enforcer:
        return Enforcer(
            consumer=self.consumer,
            producer=self.producer,
            processor=self.processor,
            batch_max_records=BATCH,
            retry_backoff_s=0.01,
            ledger=self.ledger,
        )

    async def run_until(self, completed: int, *, timeout_s: float = 20.0) -> Enforcer:
        """Run an enforcer until ``completed`` submissions are acknowledged, then stop it."""
        enforcer = self.enforcer()
        stop = asyncio.Event()
        running = asyncio.create_task(enforcer.run(stop))
        deadline = time.monotonic() + timeout_s
        while self.processor.stats.completed < completed:
            assert time.monotonic() < deadline, f"completed {self.processor.stats.completed}"
            assert not running.done(), running
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(running, timeout=10)
        return enforcer

    def ends(self) -> dict[tuple[str, int], int]:
        topic = self.topics.submit("NL")
        ends = {
            (topic, p): self.cluster.end((topic, p)) for p in range(self.cluster.partitions(topic))
        }
        return {partition: end for partition, end in ends.items() if end > 0}

    def delivery_ids(self) -> Counter[bytes | None]:
        return Counter(r.key for r in self.cluster.records(self.topics.deliver("BE")))


@pytest.fixture
def rig(tmp_path: Path, catalog: SchemaCatalog, policies_dir: Path) -> _Rig:
    (policies_dir / "agreements" / "test-nl-be.yaml").write_text(NL_BE_AGREEMENT)
    settings = Settings(home=tmp_path / "home", policies_dir=policies_dir)
    provision_keys(settings, ["NL", "BE"])
    stages = build_stages(settings)
    cluster = MemoryCluster(partitions=2)
    cluster.create(stages.topics.submit("NL"))
    consumer = cluster.consumer(group_id="enforcers", pattern=stages.topics.submit_pattern)
    return _Rig(
        cluster,
        consumer,
        cluster.producer(),
        stages.processor(),
        stages.topics,
        settings,
        catalog,
    )


async def test_every_submission_is_delivered_once_and_committed_when_kafka_behaves(
    rig: _Rig,
) -> None:
    rig.submit(10)

    await rig.run_until(10)

    assert rig.consumer.committed == rig.ends()
    deliveries = rig.delivery_ids()
    assert len(deliveries) == 10
    assert set(deliveries.values()) == {1}
    assert len(rig.cluster.records(rig.topics.accepted)) == 10, "one ledger line each"


async def test_outputs_whose_acknowledgement_was_lost_are_sent_again_with_the_same_ids(
    rig: _Rig,
) -> None:
    rig.submit(10)
    # The first batch's deliveries are written, then reported failed.
    rig.producer.lose_acknowledgements(1, carrying=rig.topics.deliver("BE"))

    with capture_logs() as logs:
        enforcer = await rig.run_until(10)

    assert rig.consumer.committed == rig.ends(), "committed once acknowledged"
    deliveries = rig.delivery_ids()
    assert len(deliveries) == 10, "every report reached BE, under its stable delivery id"
    repeated = [key for key, count in deliveries.items() if count > 1]
    assert repeated, "the batch whose answer was lost is in the log twice"
    assert set(deliveries.values()) == {1, 2}
    assert enforcer.stats.retries >= 1
    assert any(e["event"] == "batch_not_acknowledged" for e in logs)


async def test_a_refused_send_is_retried_and_nothing_is_committed_before_it_succeeds(
    rig: _Rig,
) -> None:
    rig.submit(6)
    rig.producer.refuse(3)  # nothing written, three times over
    committed_while_refused: list[dict[tuple[str, int], int]] = []
    original = rig.producer.send_all

    async def noting(records: Sequence[OutboundRecord]) -> None:
        committed_while_refused.append(dict(rig.consumer.committed))
        await original(records)

    rig.producer.send_all = noting  # type: ignore[method-assign]  # observe, not replace

    await rig.run_until(6)

    assert committed_while_refused[:4] == [{}, {}, {}, {}], "no commit before the first ack"
    assert rig.consumer.committed == rig.ends()
    assert set(rig.delivery_ids().values()) == {1}, "a refused send wrote nothing: no repeat"


async def test_failed_fetches_and_a_failed_commit_are_survived_and_nothing_is_lost(
    rig: _Rig,
) -> None:
    first = rig.submit(3, partition=0)
    rig.consumer.fail_fetches(3)
    rig.consumer.fail_commits(1)

    with capture_logs() as logs:
        await rig.run_until(3)
        second = rig.submit(3, partition=0)  # a later batch's commit covers the first's offsets
        await rig.run_until(6)

    events = [e["event"] for e in logs]
    assert events.count("fetch_failed") == 3
    assert events.count("commit_failed") == 1
    assert rig.consumer.committed == rig.ends()
    assert len(rig.delivery_ids()) == len(first) + len(second)


async def test_partitions_taken_away_and_given_back_make_the_running_enforcer_read_the_ledger(
    rig: _Rig,
) -> None:
    rig.submit(2)
    enforcer = rig.enforcer()
    stop = asyncio.Event()
    running = asyncio.create_task(enforcer.run(stop))
    try:
        await _until(lambda: rig.processor.stats.completed == 2)
        assert rig.ledger_reads == 1, "read once, at the first assignment"

        partition = sorted(rig.consumer.assignment())[0]
        await rig.consumer.revoke([partition])
        await _until(lambda: rig.ledger_reads == 2)  # the assignment shrank
        rig.consumer.assign([partition])
        await _until(lambda: rig.ledger_reads == 3)  # and grew again
        rig.submit(1)
        await _until(lambda: rig.processor.stats.completed == 3)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)
    assert rig.consumer.committed == rig.ends()


async def test_the_next_owner_reads_the_ledger_and_refuses_a_replay_the_last_one_accepted(
    rig: _Rig,
) -> None:
    [report_id] = rig.submit(1)
    await rig.run_until(1)
    [original] = rig.cluster.records(rig.topics.submit("NL"))
    assert original.key == report_id.encode()
    # The same bytes again, at another position: a replay.
    rig.cluster.append(OutboundRecord(original.topic, original.key, original.value or b""))
    # Another process takes over, with no memory of its own: only the ledger tells it.
    rig.processor = build_stages(rig.settings).processor()

    await rig.run_until(1)

    assert rig.ledger_reads == 2
    assert rig.processor.stats.rejected == Counter({"replayed_report": 1})
    assert len(rig.delivery_ids()) == 1
    assert rig.consumer.committed == rig.ends()


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_batch_fetched_as_the_stop_arrives_is_left_unprocessed_for_the_next_owner(
    rig: _Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A SIGTERM during a broker outage: whatever the enforcer starts after it (a ledger
    # read, a batch to send to a dead leader) only delays the exit the supervisor waits on.
    rig.submit(BATCH)
    stop = asyncio.Event()
    fetch = rig.consumer.fetch

    async def fetch_as_the_stop_arrives(**kwargs: Any) -> list[InboundRecord]:
        """A test double around the real in-memory fetch: the stop comes while it is out."""
        batch = await fetch(**kwargs)
        if batch:
            stop.set()
        return batch

    monkeypatch.setattr(rig.consumer, "fetch", fetch_as_the_stop_arrives)

    await asyncio.wait_for(rig.enforcer().run(stop), timeout=10)

    assert stop.is_set()
    assert rig.processor.stats.submissions == 0
    assert rig.delivery_ids() == Counter()
    assert rig.consumer.committed == {}
    assert rig.ledger_reads == 0, "no ledger read for partitions it is leaving"


async def test_a_stop_while_a_batch_is_processed_abandons_it_unsent_for_the_next_owner(
    rig: _Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A SIGTERM under load: a batch of 500 takes seconds to process, and finishing it
    # would only delay the exit; nothing of it is sent yet, so nothing is lost.
    rig.submit(BATCH)
    stop = asyncio.Event()
    start = rig.processor.start
    fed: list[InboundRecord] = []

    class StopAfterFirstFeed:
        """A test double around the real batch run: the stop comes after its first record."""

        def __init__(self) -> None:
            self.run = start()

        def feed(self, inbound: InboundRecord) -> None:
            self.run.feed(inbound)
            fed.append(inbound)
            stop.set()

        def close(self) -> Any:
            return self.run.close()

    monkeypatch.setattr(rig.processor, "start", StopAfterFirstFeed)
    monkeypatch.setattr("broker.enforcer.runtime.runner.YIELD_AFTER_S", 0.0)  # yield per record

    await asyncio.wait_for(rig.enforcer().run(stop), timeout=10)

    assert len(fed) == 1, "it stopped after the first record"
    # What the abandoned batch counted is taken back: its next owner counts it.
    assert rig.processor.stats.submissions == 0
    assert rig.processor.stats.deliveries == 0
    assert rig.delivery_ids() == Counter()
    assert rig.cluster.records(rig.topics.accepted) == []
    assert rig.consumer.committed == {}
