"""Commit on revoke: a rebalance lets the batch in flight commit before its partitions move.

Two consumers of one group on the session's broker. The first fetches a
batch covering both partitions and holds it, as a slow enforcer would while
its outputs are acknowledged; the second joins, which takes a partition away
from the first. Whether the second then reads that batch again depends only
on whether the first could commit it before the partition moved.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import pytest

from broker.errors import TransportError
from broker.kafka.admin import TopicAdmin
from broker.kafka.base import RevokeHook
from broker.kafka.consumer import SubmissionConsumer
from broker.kafka.producer import OutputProducer
from broker.wire.records import InboundRecord, OutboundRecord, Partition, offsets_after
from broker.wire.topics import TopicNames
from tests.support.kafka import SESSION_TIMEOUT_MS

pytestmark = pytest.mark.integration

HOLD_S = 3.0  # how long the first consumer "processes" its batch
SESSION_MS = SESSION_TIMEOUT_MS  # the first member hears of the rebalance within a fifth


@dataclass
class Rebalanced:
    batch: list[InboundRecord]  # what the first consumer held when the second joined
    committed: bool  # whether its commit of that batch went through
    second: list[InboundRecord]  # what the second consumer read after the rebalance
    first: SubmissionConsumer
    revoked: list[frozenset[Partition]]  # what the first consumer's hook was told


async def _rebalance_during_a_batch(bootstrap: str, *, revoke_wait_s: float) -> Rebalanced:
    topics = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    group = f"g{uuid.uuid4().hex[:8]}"
    admin = TopicAdmin(bootstrap, partitions=2)
    await admin.start()
    await admin.ensure([topics.submit("NL")])
    producer = OutputProducer(bootstrap, admin)
    await producer.start()

    async def publish(first: int, count: int) -> None:
        records = range(first, first + count)
        await producer.send_all(
            [OutboundRecord(topics.submit("NL"), f"k{i}".encode(), b"v") for i in records]
        )

    await publish(0, 200)

    revoked: list[frozenset[Partition]] = []

    async def hook(partitions: frozenset[Partition]) -> None:
        revoked.append(partitions)

    def consumer(wait_s: float, on_revoke: RevokeHook | None = None) -> SubmissionConsumer:
        return SubmissionConsumer(
            bootstrap,
            group_id=group,
            pattern=topics.submit_pattern,
            max_poll_records=500,
            session_timeout_ms=SESSION_MS,
            revoke_wait_s=wait_s,
            on_revoke=on_revoke,
        )

    first = consumer(revoke_wait_s, hook)
    second = consumer(10.0)
    await first.start()
    batch: list[InboundRecord] = []
    deadline = time.monotonic() + 20
    while not batch and time.monotonic() < deadline:
        batch = await first.fetch(timeout_ms=500, max_records=500)
    assert {r.partition for r in batch} == {0, 1}, "the batch must span both partitions"
    await publish(200, 200)  # more, after the batch, for whoever owns the partitions next
    await producer.stop()
    await admin.close()

    read_by_second: list[InboundRecord] = []
    until = time.monotonic() + HOLD_S + 5

    async def second_reads() -> None:
        await second.start()
        while time.monotonic() < until:
            read_by_second.extend(await second.fetch(timeout_ms=200, max_records=500))

    reading = asyncio.create_task(second_reads())
    await asyncio.sleep(HOLD_S)  # processing; meanwhile the group rebalances
    try:
        await first.commit(offsets_after(batch))
        committed = True
    except TransportError:
        committed = False
    while time.monotonic() < until:
        await first.fetch(timeout_ms=200, max_records=500)  # stays a live member
    await reading
    await first.stop()
    await second.stop()
    return Rebalanced(batch, committed, read_by_second, first, revoked)


async def test_a_batch_in_flight_is_committed_before_its_partitions_move_so_nobody_reads_it_again(
    kafka_bootstrap: str,
) -> None:
    run = await _rebalance_during_a_batch(kafka_bootstrap, revoke_wait_s=HOLD_S + 5)

    assert run.committed
    assert run.first.revocations.drained == 1
    assert run.first.revocations.abandoned == 0
    assert run.second, "the second consumer got a partition and read from it"
    held = {(r.partition, r.offset) for r in run.batch}
    assert not held & {(r.partition, r.offset) for r in run.second}
    moved = {r.partition for r in run.second}
    first_read = min(r.offset for r in run.second if r.partition in moved)
    assert first_read == max(r.offset for r in run.batch if r.partition in moved) + 1


async def test_a_batch_that_does_not_finish_in_time_is_not_committed_and_is_redone_whole(
    kafka_bootstrap: str,
) -> None:
    run = await _rebalance_during_a_batch(kafka_bootstrap, revoke_wait_s=0.2)

    assert not run.committed, "a commit after the partitions moved must be refused"
    assert run.first.revocations.abandoned == 1
    moved = {r.partition for r in run.second}
    assert moved, "the second consumer got a partition and read from it"
    held_there = {(r.partition, r.offset) for r in run.batch if r.partition in moved}
    assert held_there <= {(r.partition, r.offset) for r in run.second}


async def test_the_revoke_hook_is_told_every_partition_taken_away(kafka_bootstrap: str) -> None:
    run = await _rebalance_during_a_batch(kafka_bootstrap, revoke_wait_s=HOLD_S + 5)

    topic = run.batch[0].topic
    assert run.revoked[0] == frozenset({(topic, 0), (topic, 1)})


async def test_a_fetch_returns_within_its_timeout_while_the_group_rebalances(
    kafka_bootstrap: str,
) -> None:
    topics = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    admin = TopicAdmin(kafka_bootstrap, partitions=2)
    await admin.start()
    await admin.ensure([topics.submit("NL")])
    producer = OutputProducer(kafka_bootstrap, admin)
    await producer.start()
    await producer.send_all([OutboundRecord(topics.submit("NL"), b"k", b"v")])
    await producer.stop()
    await admin.close()
    group = f"g{uuid.uuid4().hex[:8]}"
    # A longer session: the first member then hears of the rebalance only at its next
    # heartbeat (a fifth of it, 1.2 s), so the join round lasts longer than a fetch.
    members = [
        SubmissionConsumer(
            kafka_bootstrap,
            group_id=group,
            pattern=topics.submit_pattern,
            max_poll_records=100,
            session_timeout_ms=6000,
        )
        for _ in range(2)
    ]
    first, second = members
    await first.start()
    deadline = time.monotonic() + 30
    while not await first.fetch(timeout_ms=200, max_records=100):  # owns the partitions
        assert time.monotonic() < deadline
    joining = asyncio.create_task(second.start())
    slowest = 0.0
    until = time.monotonic() + 8
    while time.monotonic() < until:  # the second member's join makes the group rebalance
        started = time.monotonic()
        await first.fetch(timeout_ms=200, max_records=100)
        slowest = max(slowest, time.monotonic() - started)
    await joining
    await first.stop()
    await second.stop()

    assert slowest < 1.0, f"a 200 ms fetch took {slowest:.1f} s"


async def test_a_submit_topic_created_during_a_batch_neither_stops_its_commit_nor_goes_unread(
    kafka_bootstrap: str,
) -> None:
    # Issue 18: with a pattern subscription aiokafka dropped the assignment as soon as its
    # metadata showed the new topic, the batch's commit failed and the batch was redone.
    topics = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    admin = TopicAdmin(kafka_bootstrap, partitions=2)
    await admin.start()
    await admin.ensure([topics.submit("NL")])
    producer = OutputProducer(kafka_bootstrap, admin)
    await producer.start()
    await producer.send_all(
        [OutboundRecord(topics.submit("NL"), f"k{i}".encode(), b"v") for i in range(50)]
    )
    consumer = SubmissionConsumer(
        kafka_bootstrap,
        group_id=f"g{uuid.uuid4().hex[:8]}",
        pattern=topics.submit_pattern,
        max_poll_records=500,
        session_timeout_ms=SESSION_MS,
        metadata_max_age_ms=300,  # the new topic is seen well within the hold below
    )
    await consumer.start()
    try:
        batch: list[InboundRecord] = []
        deadline = time.monotonic() + 20
        while not batch and time.monotonic() < deadline:
            batch = await consumer.fetch(timeout_ms=500, max_records=500)
        assert batch
        # BE's first publish creates its topic while the batch is being "processed".
        await producer.send_all(
            [OutboundRecord(topics.submit("BE"), f"b{i}".encode(), b"v") for i in range(10)]
        )
        until = time.monotonic() + 3
        while time.monotonic() < until:  # the runner fetches the next batch meanwhile
            batch += await consumer.fetch(timeout_ms=200, max_records=500, overlapping=True)
        await consumer.commit(offsets_after(batch))  # raised "No partitions assigned" before
        later: list[InboundRecord] = []
        until = time.monotonic() + 15
        while len(later) < 10 and time.monotonic() < until:
            later += await consumer.fetch(timeout_ms=200, max_records=500)
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.close()

    assert {r.topic for r in later} == {topics.submit("BE")}, "nothing committed is read again"
    assert len(later) == 10
    assert consumer.subscribed == {topics.submit("NL"), topics.submit("BE")}
    assert consumer.revocations.abandoned == 0


async def test_a_consumer_started_before_any_submit_topic_reads_the_first_one_created(
    kafka_bootstrap: str,
) -> None:
    topics = TopicNames(f"t{uuid.uuid4().hex[:12]}")
    consumer = SubmissionConsumer(
        kafka_bootstrap,
        group_id=f"g{uuid.uuid4().hex[:8]}",
        pattern=topics.submit_pattern,
        max_poll_records=500,
        session_timeout_ms=SESSION_MS,
        metadata_max_age_ms=300,
    )
    await consumer.start()
    admin = TopicAdmin(kafka_bootstrap, partitions=2)
    producer = OutputProducer(kafka_bootstrap, admin)
    try:
        assert await consumer.fetch(timeout_ms=200, max_records=500) == []
        assert not consumer.joined, "no topic to consume: no group to be in yet"
        await admin.start()
        await producer.start()
        await producer.send_all(
            [OutboundRecord(topics.submit("NL"), f"k{i}".encode(), b"v") for i in range(5)]
        )
        read: list[InboundRecord] = []
        deadline = time.monotonic() + 15
        while len(read) < 5 and time.monotonic() < deadline:
            read += await consumer.fetch(timeout_ms=200, max_records=500)
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.close()

    assert len(read) == 5
    assert consumer.joined
    assert consumer.subscribed == {topics.submit("NL")}
