"""The enforcer's loop: fetch a batch, process it, send every output, commit.

The commit path, in order (DESIGN.md decision 2, STYLE.md 6):

1. fetch a batch of submissions from every ``ixb.submit.*`` partition we own
   (when the partitions we own changed, first read the intake ledger back,
   so replay protection knows what the previous owner accepted);
2. build the batch context once (registry, policy, partners, clock);
3. process each submission into outputs: delivery statements and an intake
   ledger line, or one rejection; an exception inside one submission becomes
   that submission's rejection, never the end of the loop; then attest all
   the batch's statements with one signature. A submission the policy could
   not decide is not refused (STYLE.md 3): its partition stops there, and
   neither it nor a later record of that partition is processed in this
   batch, so no output, ledger line, replay memory or audit entry of theirs
   exists;
4. send all outputs of the batch and wait until every one is acknowledged;
5. only then commit, per partition, the offset after the last record
   processed (for a stopped partition: the offset of the undecided record);
6. rewind each stopped partition to its undecided record and pause it for a
   back-off that grows while the policy keeps failing
   (broker/pipeline/backoff.py); the record is fetched and decided again
   after it. The backlog meanwhile stays in Kafka, not in memory.

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
import datetime as dt
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from broker.audit.bundles import BundleArchiver
from broker.audit.entries import AuditEvent, AuditWriter
from broker.audit.events import decision_events, refusal_event, submission_ref
from broker.codec import SchemaCatalog
from broker.errors import PolicyUndecided, RejectedInput, TransportError
from broker.pipeline.backoff import PartitionBackoff
from broker.pipeline.context import BatchContext, batch_context
from broker.pipeline.fanout import FanOut, Pending, Routed
from broker.pipeline.intake import Accepted, Intake
from broker.pipeline.rejections import rejection
from broker.pipeline.replay import ledger_record
from broker.policy.source import PolicySource
from broker.topics import TopicNames
from broker.transport import (
    InboundRecord,
    OutboundRecord,
    OutputProducer,
    Partition,
    SubmissionConsumer,
)
from broker.trust.attestation import BatchAttester
from broker.trust.keys import RegistryFile

log = structlog.get_logger("ixb.enforcer")

Clock = Callable[[], dt.datetime]
LedgerReader = Callable[[], AsyncIterator[InboundRecord]]
BatchHook = Callable[[list[InboundRecord], float], None]  # batch, seconds to acknowledgement
# Longest stretch of CPU work between two yields to the event loop: a cold
# decision cache made 32 submissions take 2 s, long enough to miss heartbeats.
_YIELD_AFTER_S = 0.02


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class EnforcerStats:
    """Counters for operators, the demo and tests (exported by broker/observability)."""

    submissions: int = 0  # processed (outputs computed)
    completed: int = 0  # processed, outputs acknowledged
    deliveries: int = 0
    held: int = 0  # deliveries put under embargo
    batches: int = 0
    retries: int = 0
    undecided_holds: int = 0  # partitions paused at a submission the policy could not decide
    withheld: Counter[str] = field(default_factory=Counter)  # by reason
    rejected: Counter[str] = field(default_factory=Counter)  # by reason


@dataclass(frozen=True, slots=True)
class Processed:
    """What :meth:`Enforcer.process` made of a batch."""

    outputs: tuple[OutboundRecord, ...]
    # Per partition stopped by an undecided submission, that submission's offset:
    # it and the partition's later records in the batch were not processed.
    stalled: Mapping[Partition, int]

    def done(self, batch: list[InboundRecord]) -> list[InboundRecord]:
        """The records of ``batch`` that were processed: all but the stalled tails."""
        stalled = self.stalled
        return [r for r in batch if r.offset < stalled.get((r.topic, r.partition), r.offset + 1)]


class Enforcer:
    def __init__(
        self,
        *,
        consumer: SubmissionConsumer,
        producer: OutputProducer,
        intake: Intake,
        fanout: FanOut,
        attester: BatchAttester,
        catalog: SchemaCatalog,
        topics: TopicNames,
        registry: RegistryFile,
        policy: PolicySource,
        batch_max_records: int = 500,
        clock: Clock = utc_now,
        retry_backoff_s: float = 0.5,
        stats: EnforcerStats | None = None,
        ledger: LedgerReader | None = None,
        audit: AuditWriter | None = None,
        on_acknowledged: BatchHook | None = None,
        archiver: BundleArchiver | None = None,
        policy_backoff: PartitionBackoff | None = None,
    ) -> None:
        self._on_acknowledged = on_acknowledged
        self._consumer = consumer
        self._producer = producer
        self._intake = intake
        self._fanout = fanout
        self._attester = attester
        self._ledger = ledger
        self._audit = audit
        self._archiver = archiver
        self._assignment: frozenset[tuple[str, int]] | None = None
        self._catalog = catalog
        self._topics = topics
        self._registry = registry
        self._policy = policy
        self._batch_max_records = batch_max_records
        self._clock = clock
        self._retry_backoff_s = retry_backoff_s
        self._policy_backoff = policy_backoff or PartitionBackoff()
        self.stats = stats if stats is not None else EnforcerStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set; the batch in flight is finished first."""
        log.info("enforcer_started", bundle_hash=self._policy.current().bundle.content_hash)
        while not stop.is_set():
            try:
                batch = await self._consumer.fetch(  # 1
                    timeout_ms=200, max_records=self._batch_max_records
                )
            except TransportError as exc:
                self.stats.retries += 1
                log.warning("fetch_failed", error=str(exc))
                await asyncio.sleep(self._retry_backoff_s)
                continue
            if not await self._follow_assignment():
                # Without the ledger, replay protection would be blind: the batch waits.
                self._consumer.pause_at(_first_offsets(batch), for_s=self._retry_backoff_s)
                await asyncio.sleep(self._retry_backoff_s)
                continue
            if batch:
                await self._complete(batch, stop)
        log.info("enforcer_stopped", **_summary(self.stats))

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
        replay = self._intake.replay
        before = len(replay)
        try:
            async for line in self._ledger():
                replay.load(self._catalog, line)  # loading a line twice changes nothing
        except TransportError as exc:
            self.stats.retries += 1
            log.warning("ledger_read_failed", error=str(exc))
            return False
        self._assignment = assignment
        replay.forget_older_than(self._clock())
        log.info("ledger_read", partitions=len(assignment), new_ids=len(replay) - before)
        return True

    async def _complete(self, batch: list[InboundRecord], stop: asyncio.Event) -> None:
        """Process ``batch``, send its outputs until acknowledged, commit, hold the undecided."""
        started = time.monotonic()
        processed = await self.process(batch)  # 2, 3
        outputs = list(processed.outputs)
        # 4: a new bundle's archive is acknowledged before anything decided under it is sent
        archives = [o for o in outputs if o.topic == self._topics.bundles]
        rest = [o for o in outputs if o.topic != self._topics.bundles] if archives else outputs
        for part in (archives, rest):
            if part and not await self._send_until_acknowledged(part, stop):
                return  # uncommitted: redone after restart or by the next owner
        done = processed.done(batch)
        self.stats.completed += len(done)
        if self._on_acknowledged is not None:
            self._on_acknowledged(done, time.monotonic() - started)
        try:
            await self._consumer.commit(_next_offsets(done))  # 5
        except TransportError as exc:
            # Outputs are acknowledged. A later commit covers these offsets; if the
            # partitions moved away, their new owner redoes the batch (same delivery ids).
            log.warning("commit_failed", error=str(exc), records=len(batch))
        self._hold(processed.stalled, progressed={(r.topic, r.partition) for r in done})  # 6
        self.stats.batches += 1

    async def _send_until_acknowledged(
        self, outputs: list[OutboundRecord], stop: asyncio.Event
    ) -> bool:
        """True once Kafka acknowledged every one; False if asked to stop first."""
        while True:
            try:
                await self._producer.send_all(outputs)
                return True
            except TransportError as exc:
                self.stats.retries += 1
                log.warning("batch_not_acknowledged", error=str(exc), records=len(outputs))
                if stop.is_set():
                    return False
                await asyncio.sleep(self._retry_backoff_s)

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

    async def process(self, batch: list[InboundRecord]) -> Processed:
        """Every output for ``batch``; no I/O apart from logging and counters.

        A submission the policy cannot decide stops its partition (step 3);
        the other partitions go on. Verification and policy evaluation are
        synchronous CPU work; yielding to the event loop every few submissions
        keeps the consumer's heartbeats flowing during a large batch.
        """
        # 2: a reloaded bundle or registry takes effect here, between batches
        context = batch_context(self._registry, self._policy, self._clock())
        self._intake.replay.forget_older_than(context.now)
        outputs: list[OutboundRecord] = []
        if self._archiver is not None:  # a bundle is archived before anything decided under it
            outputs += self._archiver.records(context.policy.bundle_hash, context.bundle_archive)
        pending: list[Pending] = []
        stalled: dict[Partition, int] = {}
        since = time.monotonic()
        for inbound in batch:
            partition = (inbound.topic, inbound.partition)
            if partition in stalled:
                continue  # records of a partition are processed in order, or not at all
            try:
                outputs.extend(self._one(inbound, context, pending))
            except PolicyUndecided as exc:
                stalled[partition] = inbound.offset
                log.warning(
                    "policy_undecided",
                    topic=inbound.topic,
                    partition=inbound.partition,
                    offset=inbound.offset,
                    error=str(exc),
                )
            if time.monotonic() - since >= _YIELD_AFTER_S:
                await asyncio.sleep(0)
                since = time.monotonic()
        # 3: one signature over the batch's statements; each carries its own proof
        attested = self._attester.attest([p.statement for p in pending])
        held_topic = self._topics.held
        outputs.extend(
            p.record(self._catalog, sealed, held_topic)
            for p, sealed in zip(pending, attested, strict=True)
        )
        return Processed(tuple(outputs), stalled)

    def _one(
        self, inbound: InboundRecord, context: BatchContext, pending: list[Pending]
    ) -> list[OutboundRecord]:
        """The outputs of one submission; its statements go to ``pending`` for attestation.

        PolicyUndecided propagates before anything is recorded (replay memory,
        ledger line, audit entry, counters): the submission is tried again later.
        """
        bound = log.bind(topic=inbound.topic, partition=inbound.partition, offset=inbound.offset)
        try:
            accepted = self._intake.check(inbound, context)
            routed = self._fanout.route(accepted, context)
        except RejectedInput as exc:
            refusal = exc
        except PolicyUndecided:
            raise  # not a deny: the caller holds the partition (step 3)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the enforcer
            # The exception text may carry payload values: record only its kind.
            refusal = RejectedInput(
                "internal_error", f"unexpected {type(exc).__name__}", stage="internal"
            )
            bound.error("submission_failed", error_kind=type(exc).__name__)
        else:
            self.stats.submissions += 1
            return self._routed(
                inbound,
                context=context,
                accepted=accepted,
                routed=routed,
                pending=pending,
                bound=bound,
            )
        self.stats.submissions += 1
        origin = self._topics.nation_of_submit_topic(inbound.topic) or ""
        return [
            self._refuse(inbound, refusal, context, bound),
            *self._audited([refusal_event(inbound, refusal, origin, context.now)]),
        ]

    def _routed(
        self,
        inbound: InboundRecord,
        *,
        context: BatchContext,
        accepted: Accepted,
        routed: Routed,
        pending: list[Pending],
        bound: structlog.typing.FilteringBoundLogger,
    ) -> list[OutboundRecord]:
        """Logs, counters, the ledger line and the audit entries of an accepted submission."""
        report = accepted.report
        for recipient, decision in routed.decisions:
            if decision.allow:
                assert decision.agreement is not None
                bound.debug(
                    "delivered",
                    report_id=str(report.report_id),
                    origin=report.origin,
                    recipient=recipient,
                    agreement=decision.agreement.id,
                    agreement_version=decision.agreement.version,
                )
            else:
                self.stats.withheld.update(decision.reasons)
                bound.info(
                    "withheld",
                    report_id=str(report.report_id),
                    origin=report.origin,
                    recipient=recipient,
                    reasons=list(decision.reasons),
                )
        self.stats.held += routed.held
        self.stats.deliveries += len(routed.pending) - routed.held
        pending.extend(routed.pending)
        report_id = str(report.report_id)
        self._intake.replay.remember(report_id, report.issued_at, accepted.position)
        ledger = ledger_record(
            self._catalog,
            self._topics.accepted,
            report_id=report_id,
            origin=report.origin,
            issued_at=report.issued_at,
            payload_sha256=accepted.payload_sha256,
            source=inbound,
            now=context.now,
        )
        events = decision_events(accepted, routed, submission_ref(inbound), context.now)
        return [ledger, *self._audited(events)]

    def _refuse(
        self,
        inbound: InboundRecord,
        refusal: RejectedInput,
        context: BatchContext,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> OutboundRecord:
        self.stats.rejected[refusal.reason] += 1
        bound.warning("rejected", reason=refusal.reason, retriable=refusal.retriable)
        return rejection(self._catalog, self._topics, inbound, refusal, context.now)

    def _audited(self, events: list[AuditEvent]) -> list[OutboundRecord]:
        """The decision-log entries for ``events``, in order, all under this writer's key."""
        if self._audit is None:
            return []
        key = self._audit.writer.encode()
        return [
            OutboundRecord(topic=self._topics.audit, key=key, value=self._audit.entry(e))
            for e in events
        ]


def _first_offsets(batch: list[InboundRecord]) -> dict[Partition, int]:
    offsets: dict[Partition, int] = {}
    for r in batch:
        key = (r.topic, r.partition)
        offsets[key] = min(offsets.get(key, r.offset), r.offset)
    return offsets


def _next_offsets(batch: list[InboundRecord]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for r in batch:
        key = (r.topic, r.partition)
        offsets[key] = max(offsets.get(key, 0), r.offset + 1)
    return offsets


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
