"""``python -m bench.transactions``: what Kafka transactions would cost the enforcer's commit path.

The enforcer is at least once: per batch it sends every output (idempotent
producer, ``acks=all``), waits for all acknowledgements, then commits the
consumer offsets; a crash in between redoes the batch with the same
delivery ids. Exactly once would wrap each batch in a transaction instead:
begin, send, add the offsets to the transaction, commit.

Both are run here as a raw consume -> produce x3 -> commit loop (the
bench's passthrough shape, no enforcer work in it) on the same one-node
Apache Kafka, alternately, over the same backlog of 6 KB records, at the
enforcer's batch size. The figures are the Kafka side's cost alone: the
enforcer spends about 1 ms of CPU per report besides, so a fixed cost per
batch matters less to it than to this loop (the README says how much).
"""

# ruff: noqa: TID251 - the transactional producer is what is measured; ixb has none

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.embedded import Kafka, kafka_for
from broker.app.settings import Settings
from broker.kafka.admin import TopicAdmin

RECORD_BYTES = 6000  # a delivery statement is some 6 KB
FAN_OUT = 3


@dataclass(frozen=True, slots=True)
class Run:
    mode: str
    records: int
    seconds: float
    batches: int

    @property
    def per_s(self) -> float:
        return self.records / self.seconds


async def _backlog(kafka: Kafka, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        value = os.urandom(RECORD_BYTES)
        pending = [await producer.send(topic, value, key=str(i).encode()) for i in range(count)]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _loop(
    kafka: Kafka, source: str, outputs: list[str], *, count: int, batch: int, transactional: bool
) -> Run:
    group = f"txn-bench-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=kafka.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch,
        fetch_max_wait_ms=100,
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
        transactional_id=f"{group}-0" if transactional else None,
    )
    await consumer.start()
    await producer.start()
    done = batches = 0
    started = 0.0
    try:
        while done < count:
            fetched = await consumer.getmany(timeout_ms=500, max_records=batch)
            records = [m for messages in fetched.values() for m in messages]
            if not records:
                continue
            if not started:
                started = time.perf_counter()
            offsets = {tp: messages[-1].offset + 1 for tp, messages in fetched.items() if messages}
            if transactional:
                async with producer.transaction():
                    sent = [
                        await producer.send(t, m.value, key=m.key) for m in records for t in outputs
                    ]
                    await asyncio.gather(*sent)
                    await producer.send_offsets_to_transaction(offsets, group)
            else:
                sent = [
                    await producer.send(t, m.value, key=m.key) for m in records for t in outputs
                ]
                await asyncio.gather(*sent)
                await consumer.commit(offsets)
            done += len(records)
            batches += 1
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()
    return Run("transactions" if transactional else "at least once", done, seconds, batches)


async def measure(count: int, batch: int, rounds: int) -> list[Run]:
    runs = []
    async with kafka_for(Settings()) as kafka:
        admin = TopicAdmin(kafka.bootstrap, partitions=4)
        await admin.start()
        try:
            for round_ in range(rounds):
                for transactional in (False, True):
                    tag = uuid.uuid4().hex[:8]
                    source = f"txn-bench-{tag}.in"
                    outputs = [f"txn-bench-{tag}.out{i}" for i in range(FAN_OUT)]
                    await admin.ensure([source, *outputs])
                    await _backlog(kafka, source, count)
                    run = await _loop(
                        kafka,
                        source,
                        outputs,
                        count=count,
                        batch=batch,
                        transactional=transactional,
                    )
                    print(
                        f"round {round_ + 1}: {run.mode:>13}: {run.per_s:7,.0f} records/s "
                        f"({run.batches} batches, {1000 * run.seconds / run.batches:5.1f} ms each)",
                        flush=True,
                    )
                    runs.append(run)
        finally:
            await admin.close()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transactions", description=__doc__)
    parser.add_argument("--records", type=int, default=10_000, help="per run")
    parser.add_argument(
        "--batch", type=int, default=500, help="records per batch (IXB_BATCH_MAX_RECORDS)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating pairs of runs")
    args = parser.parse_args(argv)
    runs = asyncio.run(measure(args.records, args.batch, args.rounds))
    plain = statistics.median(r.per_s for r in runs if r.mode == "at least once")
    txn = statistics.median(r.per_s for r in runs if r.mode == "transactions")
    per_batch = statistics.median(r.seconds / r.batches for r in runs if r.mode == "transactions")
    plain_batch = statistics.median(r.seconds / r.batches for r in runs if r.mode != "transactions")
    extra_ms = 1000 * (per_batch - plain_batch)
    print(
        f"median: at least once {plain:,.0f}/s, transactions {txn:,.0f}/s "
        f"({txn / plain:.2f}x); {extra_ms:+.1f} ms per batch of {args.batch}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
