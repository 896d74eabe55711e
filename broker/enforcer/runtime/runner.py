"""The enforcer's loop: fetch a batch, process it, send every output, commit.

The commit path, in order (docs/ARCHITECTURE.md, decision 2):

1. fetch a batch of submissions from every ``ixb.submit.*`` partition we own
   (when the partitions we own changed, first read the intake ledger back,
   so replay protection knows what the previous owner accepted);
2. and 3. process the batch (broker/enforcer/processor.py): every output
   computed, no I/O; a partition stops at a submission the policy could not
   decide. The processor is synchronous; the runner yields to the event loop
   every couple of milliseconds of it, so heartbeats and the previous
   batch's acknowledgements go on meanwhile;
4. and 5. through the one commit path (broker/enforcer/runtime/commit.py):
   send all outputs of the batch and wait until every one is acknowledged
   (a policy bundle archived for the first time, before the rest), only
   then commit, per partition, the offset after the last record processed
   (for a stopped partition: the offset of the undecided record);
6. rewind each stopped partition to its undecided record and pause it for a
   back-off that grows while the policy keeps failing
   (broker/enforcer/runtime/backoff.py); the record is fetched and decided again
   after it. The backlog meanwhile stays in Kafka, not in memory.

Steps 4 and 5 of one batch overlap steps 1 to 3 of the next: while Kafka
acknowledges a batch's outputs and takes its commit, the next batch is
fetched and processed (the CPU work). The next batch's outputs are sent
only after that commit, so outputs and commits keep their order and a
batch is never committed before the one before it. A batch in which a
partition stopped is finished whole (send, commit, rewind) before the next
fetch, which must not read past the rewound record; so is the batch in
flight before the ledger is read back or a batch is handed back.

If step 4 fails (Kafka unavailable), nothing is committed and the same
outputs are sent again after a back-off until acknowledged; a failed fetch
or intake-ledger read is likewise tried again after a back-off. If the process
stops or dies first, the uncommitted batch is processed again after the
restart (or by the partitions' next owner). Outputs may therefore repeat (at
least once); each delivery carries a stable delivery id for the receiver to
de-duplicate.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping

import structlog

from broker.enforcer.processor import BatchProcessor, EnforcerStats, Processed
from broker.enforcer.runtime.backoff import PartitionBackoff
from broker.enforcer.runtime.commit import CommitPath, Outputs
from broker.errors import TransportError
from broker.kafka.base import BatchConsumer, BatchProducer
from broker.wire.records import InboundRecord, Partition, UndecodableBatch, offsets_after

log = structlog.get_logger("ixb.enforcer")

LedgerReader = Callable[[], AsyncIterator[InboundRecord]]
BatchHook = Callable[[list[InboundRecord], float], None]  # batch, seconds to acknowledgement
# Longest stretch of CPU work between two yields to the event loop: a cold
# decision cache made 32 submissions take 2 s, long enough to miss heartbeats.
YIELD_AFTER_S = 0.002


class Enforcer:
    """The loop around a :class:`BatchProcessor`: fetch, send, commit, hold."""

    def __init__(
        self,
        *,
        consumer: BatchConsumer,
        producer: BatchProducer,
        processor: BatchProcessor,
        batch_max_records: int = 500,
        retry_backoff_s: float = 0.5,
        ledger: LedgerReader | None = None,
        on_acknowledged: BatchHook | None = None,
        policy_backoff: PartitionBackoff | None = None,
    ) -> None:
        self._consumer = consumer
        self._commits = CommitPath(producer, archiver=processor.archiver, consumer=consumer)
        self._processor = processor
        self._batch_max_records = batch_max_records
        self._retry_backoff_s = retry_backoff_s
        self._ledger = ledger
        self._on_acknowledged = on_acknowledged
        self._policy_backoff = policy_backoff or PartitionBackoff()
        self._assignment: frozenset[tuple[str, int]] | None = None
        self._pending: asyncio.Future[bool] | None = None  # the batch being acknowledged
        self.stats = processor.stats

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set; the batches in flight are finished first."""
        bundle_hash = self._processor.policy.current().bundle.content_hash
        log.info("enforcer_started", bundle_hash=bundle_hash)
        try:
            while not stop.is_set():
                await self._step(stop)
        except asyncio.CancelledError:
            if self._pending is not None:  # its sends would retry until stop is set
                self._pending.cancel()  # uncommitted: redone after restart
                self._pending = None
            raise
        finally:
            await self._finish_pending()
        log.info("enforcer_stopped", **_summary(self.stats))

    async def _step(self, stop: asyncio.Event) -> None:
        """One batch: fetched and processed while the one before is acknowledged."""
        try:
            batch = await self._consumer.fetch(  # 1
                timeout_ms=200,
                max_records=self._batch_max_records,
                overlapping=self._pending is not None,
            )
        except TransportError as exc:
            self.stats.retries += 1
            log.warning("fetch_failed", error=str(exc))
            await asyncio.sleep(self._retry_backoff_s)
            return
        if stop.is_set():
            # Asked to stop while fetching: this batch is neither sent nor committed, so
            # its next owner reads it again. Starting it (a ledger read, sends to a leader
            # that may be down) would only delay the exit a supervisor is waiting on.
            return
        if self._consumer.assignment() != self._assignment and not await self._finish_pending():
            return  # stopping, the batch before given up: this one must not pass it
        if not await self._follow_assignment():
            # Without the ledger, replay protection would be blind: the batch waits.
            self._consumer.pause_at(_first_offsets(batch), for_s=self._retry_backoff_s)
            await asyncio.sleep(self._retry_backoff_s)
            return
        if not batch:
            return
        started = time.monotonic()
        processed = await self._process(batch, stop)  # 2, 3
        if processed is None or not await self._finish_pending():
            # Asked to stop while processing (nothing of it sent: the next owner redoes it),
            # or stopping with the batch before given up (committing this one would pass it).
            return
        finishing = self._finish(batch, processed, started, stop)
        if processed.stalled:
            await finishing  # the rewind must come before the next fetch
        else:
            self._pending = asyncio.ensure_future(finishing)

    async def _process(self, batch: list[InboundRecord], stop: asyncio.Event) -> Processed | None:
        """The processor's plain loop, with a yield to the event loop every ``YIELD_AFTER_S``.

        None if ``stop`` is set at one of those yields: a batch of 500 takes
        seconds on a loaded machine, and finishing it would only delay the exit
        a supervisor waits on (found by the resilience run: a SIGTERMed enforcer
        was still processing 8 s on). Nothing of it has been sent or committed
        yet, so its partitions' next owner processes it whole; what the
        processor remembered of it goes with the process, and what it counted
        is taken back (the counters say what this process did, and the next
        owner counts it again).
        """
        before = _decided_counts(self.stats)
        run = self._processor.start()
        since = time.monotonic()
        for inbound in batch:
            run.feed(inbound)
            if time.monotonic() - since >= YIELD_AFTER_S:
                await asyncio.sleep(0)
                if stop.is_set():
                    _restore_decided_counts(self.stats, before)
                    return None
                since = time.monotonic()
        return run.close()

    async def _finish_pending(self) -> bool:
        """Wait for the batch in flight; False if it was given up (asked to stop first)."""
        pending, self._pending = self._pending, None
        return True if pending is None else await pending

    async def _follow_assignment(self) -> bool:
        """Read the intake ledger back when the partitions we own change (and at the start).

        False when it could not be read (Kafka unavailable): it is read again next time.
        """
        assignment = self._consumer.assignment()
        if assignment == self._assignment:
            return True
        if self._ledger is None:
            self._assignment = assignment
            return True
        try:
            lines = [line async for line in self._ledger()]
        except TransportError as exc:
            self.stats.retries += 1
            log.warning("ledger_read_failed", error=str(exc))
            return False
        self._assignment = assignment
        new_ids = self._processor.intake.recall(lines, self._processor.clock())
        log.info("ledger_read", partitions=len(assignment), new_ids=new_ids)
        return True

    async def _finish(
        self, batch: list[InboundRecord], processed: Processed, started: float, stop: asyncio.Event
    ) -> bool:
        """Send ``processed`` until acknowledged, commit ``batch``, hold the undecided.

        False if asked to stop before Kafka acknowledged every output: the
        batch stays uncommitted, and so must every batch after it.
        """
        outputs = Outputs(processed.archives, processed.outputs)

        def not_acknowledged(exc: TransportError) -> None:
            self.stats.retries += 1
            log.warning("batch_not_acknowledged", error=str(exc), records=len(outputs))

        if not await self._commits.send_until_acknowledged(  # 4
            outputs, stop, retry_after_s=self._retry_backoff_s, on_failure=not_acknowledged
        ):
            return False  # uncommitted: redone after restart or by the next owner
        done = processed.done(batch)
        self.stats.completed += len(done)
        if self._on_acknowledged is not None:
            self._on_acknowledged(done, time.monotonic() - started)
        try:
            await self._commits.commit(offsets_after(done))  # 5
        except TransportError as exc:
            # Outputs are acknowledged. A later commit covers these offsets; if the
            # partitions moved away, their new owner redoes the batch (same delivery ids).
            log.warning("commit_failed", error=str(exc), records=len(batch))
        self._hold(processed.stalled, progressed={(r.topic, r.partition) for r in done})  # 6
        self.stats.batches += 1
        return True

    def _hold(self, stalled: Mapping[Partition, int], *, progressed: set[Partition]) -> None:
        """Pause each stalled partition at its undecided record, for its next back-off."""
        self._policy_backoff.reset(progressed)
        for (topic, partition), offset in stalled.items():
            backoff_s = self._policy_backoff.next_delay((topic, partition))
            self.stats.undecided_holds += 1
            log.warning(
                "policy_undecided_hold",
                topic=topic,
                partition=partition,
                offset=offset,
                backoff_s=backoff_s,
            )
            self._consumer.pause_at({(topic, partition): offset}, for_s=backoff_s)


def _first_offsets(batch: list[InboundRecord]) -> dict[Partition, int]:
    offsets: dict[Partition, int] = {}
    for r in batch:
        key = (r.topic, r.partition)
        first = r.first_offset if isinstance(r, UndecodableBatch) else r.offset
        offsets[key] = min(offsets.get(key, first), first)
    return offsets


_DecidedCounts = tuple[int, int, int, Counter[str], Counter[str]]


def _decided_counts(stats: EnforcerStats) -> _DecidedCounts:
    """The counters the processor moves as it decides (the runner's own are left out).

    The batch acknowledged meanwhile (the one before, in flight) moves only
    the runner's counters, so restoring these takes back just one batch's.
    """
    return (
        stats.submissions,
        stats.deliveries,
        stats.held,
        Counter(stats.withheld),
        Counter(stats.rejected),
    )


def _restore_decided_counts(stats: EnforcerStats, counts: _DecidedCounts) -> None:
    stats.submissions, stats.deliveries, stats.held, withheld, rejected = counts
    stats.withheld.clear()
    stats.withheld.update(withheld)
    stats.rejected.clear()
    stats.rejected.update(rejected)


def _summary(stats: EnforcerStats) -> dict[str, object]:
    return {
        "submissions": stats.submissions,
        "deliveries": stats.deliveries,
        "held": stats.held,
        "batches": stats.batches,
        "retries": stats.retries,
        "undecided_holds": stats.undecided_holds,
        "withheld": dict(stats.withheld),
        "rejected": dict(stats.rejected),
    }
